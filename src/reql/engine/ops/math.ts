// Arithmetic, bitwise operations and random numbers.
import { randomInt } from 'node:crypto';
import { checkArraySize, isTime, printDatum, type Datum, type DatumObject } from '../datum.js';
import { logicError } from '../errors.js';
import { OpFamily, arr, num, str, type Ctx } from '../eval.js';
import type { Term } from '../term.js';
import { T } from '../termtypes.js';

/** The math terms, joined into the engine's table by registry.ts. */
export const mathOps = new OpFamily('math');
const def = mathOps.def;

type Time = { $reql_type$: 'TIME'; epoch_time: number; timezone: string };

/** A finite number, or RethinkDB's error for an overflowing result. */
function finite(n: number): number {
  if (!Number.isFinite(n)) throw logicError(`Non-finite number: ${Number.isNaN(n) ? 'nan' : n > 0 ? 'inf' : '-inf'}`);
  return n;
}

/** Times are kept to millisecond precision. */
function shiftTime(t: Time, secs: number): DatumObject {
  const epoch = Math.round((t.epoch_time + secs) * 1000) / 1000;
  return { $reql_type$: 'TIME', epoch_time: epoch, timezone: t.timezone };
}

function timeDiff(a: Time, b: Time): number {
  return Math.round((a.epoch_time - b.epoch_time) * 1000) / 1000;
}

/** The integer RethinkDB accepts where an integer is required (array repetition, mod). */
function integer(n: number): number {
  if (!Number.isInteger(n)) throw logicError(`Number not an integer: ${printDatum(n)}`);
  return n;
}

def(T.ADD, 1, Infinity, (c, t) => {
  const vals = c.dargs(t);
  let acc: Datum = vals[0];
  if (typeof acc === 'string') return vals.map(str).join('');
  if (Array.isArray(acc)) {
    const out: Datum[] = [];
    for (const v of vals) out.push(...arr(v));
    checkArraySize(out.length, c.global.arrayLimit);
    return out;
  }
  if (isTime(acc)) {
    let secs = 0;
    for (const v of vals.slice(1)) secs += num(v);
    return shiftTime(acc, secs);
  }
  acc = num(acc);
  for (const v of vals.slice(1)) acc += num(v);
  return finite(acc);
});

def(T.SUB, 1, Infinity, (c, t) => {
  const vals = c.dargs(t);
  const first = vals[0];
  if (isTime(first)) {
    if (vals.length === 2 && isTime(vals[1])) return timeDiff(first, vals[1]);
    let secs = 0;
    for (const v of vals.slice(1)) secs += num(v);
    return shiftTime(first, -secs);
  }
  let acc = num(first);
  for (const v of vals.slice(1)) acc -= num(v);
  return finite(acc);
});

function repeat(a: Datum[], times: number, c: Ctx): Datum[] {
  const n = integer(times);
  const out: Datum[] = [];
  if (n <= 0 || a.length === 0) return out;
  checkArraySize(a.length * n, c.global.arrayLimit);
  for (let i = 0; i < n; i++) out.push(...a);
  return out;
}

def(T.MUL, 1, Infinity, (c, t) => {
  const vals = c.dargs(t);
  let acc: number | Datum[] = Array.isArray(vals[0]) ? vals[0] : num(vals[0]);
  for (const v of vals.slice(1)) {
    if (Array.isArray(acc)) acc = repeat(acc, num(v), c);
    else if (Array.isArray(v)) acc = repeat(v, acc, c);
    else acc = finite(acc * num(v));
  }
  return acc;
});

def(T.DIV, 1, Infinity, (c, t) => {
  const vals = c.dargs(t);
  let acc = num(vals[0]);
  for (const v of vals.slice(1)) {
    const d = num(v);
    if (d === 0) throw logicError('Cannot divide by zero.');
    acc = finite(acc / d);
  }
  return acc;
});

def(T.MOD, 2, 2, (c, t) => {
  const [a, b] = c.dargs(t).map(num);
  integer(a);
  integer(b);
  if (b === 0) throw logicError('Cannot take a number modulo 0.');
  const r = a % b;
  return r === 0 ? 0 : r; // no negative zero
});

def(T.FLOOR, 1, 1, (c, t) => Math.floor(num(c.datum(t.args[0]))));
def(T.CEIL, 1, 1, (c, t) => Math.ceil(num(c.datum(t.args[0]))));
def(T.ROUND, 1, 1, (c, t) => {
  const n = num(c.datum(t.args[0]));
  return n < 0 ? -Math.round(-n) : Math.round(n);
});

// --- bitwise operations on 53-bit integers, computed in 64 bits ---
const TWO53 = 2 ** 53;

function bitInt(v: Datum): bigint {
  const n = num(v);
  if (n > TWO53) throw logicError(`Number not an integer (>2^53): ${printDatum(n)}`);
  if (n < -TWO53) throw logicError(`Number not an integer (<-2^53): ${printDatum(n)}`);
  if (!Number.isInteger(n)) throw logicError(`Number not an integer: ${printDatum(n)}`);
  if (n === TWO53) throw logicError(`Integer too large: ${printDatum(n)}`);
  return BigInt(n);
}

function bitFold(op: (a: bigint, b: bigint) => bigint) {
  return (c: Ctx, t: Term): Datum => {
    const vals = c.dargs(t).map(bitInt);
    let acc = vals[0];
    for (const v of vals.slice(1)) acc = BigInt.asIntN(64, op(acc, v));
    return Number(acc);
  };
}

def(T.BIT_AND, 1, Infinity, bitFold((a, b) => a & b));
def(T.BIT_OR, 1, Infinity, bitFold((a, b) => a | b));
def(T.BIT_XOR, 1, Infinity, bitFold((a, b) => a ^ b));
def(T.BIT_NOT, 1, 1, (c, t) => Number(BigInt.asIntN(64, ~bitInt(c.datum(t.args[0])))));

function shiftBy(b: bigint): bigint {
  if (b < 0n) throw logicError('Cannot bit-shift by a negative value');
  return b > 64n ? 64n : b;
}
def(T.BIT_SAL, 2, Infinity, bitFold((a, b) => a << shiftBy(b)));
def(T.BIT_SAR, 2, Infinity, bitFold((a, b) => a >> shiftBy(b)));

// --- r.random ---
def(T.RANDOM, 0, 2, (c, t) => {
  const bounds = c.dargs(t).map(num);
  const fl = c.opt(t, 'float');
  const isFloat = fl === undefined ? bounds.length === 0 : fl === true || (fl !== false && fl !== null);
  if (isFloat) {
    const [lo, hi] = bounds.length === 0 ? [0, 1] : bounds.length === 1 ? [0, bounds[0]] : [bounds[0], bounds[1]];
    if (lo === hi) return lo;
    // Within [lo, hi) (or (hi, lo] when reversed), computed without overflowing.
    const r = Math.random();
    const x = lo * (1 - r) + hi * r;
    if (lo < hi) return x >= hi ? lo : Math.max(lo, x);
    return x <= hi ? lo : Math.min(lo, x);
  }
  if (bounds.length === 0) throw logicError('Generating a random integer requires one or two bounds.');
  const [lo, hi] = bounds.length === 1 ? [0, bounds[0]] : [bounds[0], bounds[1]];
  const safe = (n: number) => Number.isInteger(n) && Math.abs(n) <= TWO53;
  if (!safe(lo)) throw logicError(`Lower bound (${printDatum(lo)}) could not be safely converted to an integer.`);
  if (!safe(hi)) throw logicError(`Upper bound (${printDatum(hi)}) could not be safely converted to an integer.`);
  if (lo >= hi) throw logicError(`Lower bound (${printDatum(lo)}) is not less than upper bound (${printDatum(hi)}).`);
  const span = hi - lo;
  if (span <= 2 ** 48 - 1) return lo + randomInt(span);
  // Wide ranges (up to 2^54 values): a double draw is fine-grained enough.
  return lo + Math.min(span - 1, Math.floor(Math.random() * span));
}, ['float']);
