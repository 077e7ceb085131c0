// Arithmetic.
import { typeName, type Datum } from '../datum.js';
import { logicError } from '../errors.js';
import { def, num, type Ctx } from '../eval.js';
import type { Term } from '../term.js';
import { T } from '../termtypes.js';

function fold(op: (a: number, b: number) => number) {
  return (c: Ctx, t: Term): Datum => {
    const vals = c.dargs(t);
    let acc = num(vals[0]);
    for (const v of vals.slice(1)) acc = op(acc, num(v));
    return acc;
  };
}

def(T.ADD, 1, Infinity, (c, t) => {
  const vals = c.dargs(t);
  const first = vals[0];
  if (typeof first === 'string') {
    return vals.map((v) => {
      if (typeof v !== 'string') throw logicError(`Expected type STRING but found ${typeName(v)}.`);
      return v;
    }).join('');
  }
  if (Array.isArray(first)) {
    return vals.flatMap((v) => {
      if (!Array.isArray(v)) throw logicError(`Expected type ARRAY but found ${typeName(v)}.`);
      return v;
    });
  }
  let acc = num(first);
  for (const v of vals.slice(1)) acc += num(v);
  return acc;
});
def(T.SUB, 1, Infinity, fold((a, b) => a - b));
def(T.MUL, 1, Infinity, fold((a, b) => a * b));
def(T.DIV, 1, Infinity, fold((a, b) => {
  if (b === 0) throw logicError('Cannot divide by zero.');
  return a / b;
}));
def(T.MOD, 2, 2, fold((a, b) => {
  if (b === 0) throw logicError('Cannot take a number modulo 0.');
  return a % b;
}));
def(T.FLOOR, 1, 1, (c, t) => Math.floor(num(c.datum(t.args[0]))));
def(T.CEIL, 1, 1, (c, t) => Math.ceil(num(c.datum(t.args[0]))));
def(T.ROUND, 1, 1, (c, t) => {
  const n = num(c.datum(t.args[0]));
  return n < 0 ? -Math.round(-n) : Math.round(n);
});
