// Control flow, variables, functions, comparison, logic, and literal construction.
import { randomUUID, createHash } from 'node:crypto';
import { checkArraySize, compare, equal, isObject, MAXVAL, MINVAL, printDatum, typeName, type Datum, type DatumObject } from '../datum.js';
import { isNonExistence, logicError, nonExistence, ReqlError, userError } from '../errors.js';
import { OpFamily, toDatum, valTypeName, num, str, type Ctx } from '../eval.js';
import type { Term } from '../term.js';
import { T } from '../termtypes.js';
import { DbVal, Func, Single, Stream, type Val } from '../values.js';
import { iterOf } from '../seq.js';
import { jsonText } from './convert.js';

/** The core terms, joined into the engine's table by registry.ts. */
export const coreOps = new OpFamily('core');
const def = coreOps.def;

def(T.MAKE_ARRAY, 0, Infinity, (c, t) => {
  const a = c.dargs(t);
  checkArraySize(a.length, c.global.arrayLimit);
  return a;
});

// r.args is spliced into its parent's arguments by Ctx.args(); evaluated on its own it is its array.
def(T.ARGS, 1, 1, (c, t) => c.datum(t.args[0]));

def(T.MAKE_OBJ, 0, 0, (c, t) => {
  const out: DatumObject = {};
  for (const [k, v] of Object.entries(t.optargs)) out[k] = c.datum(v);
  return out;
});

def(T.VAR, 1, 1, (c, t) => {
  const id = t.args[0].datum as number;
  if (!c.vars.has(id)) throw logicError(`Variable ${id} is not bound.`);
  return c.vars.get(id)!;
});

def(T.IMPLICIT_VAR, 0, 0, (c) => {
  if (c.implicit.length === 0) throw logicError('r.row is not defined in this context.');
  return c.implicit[c.implicit.length - 1];
});

def(T.FUNC, 2, 2, (c, t) => {
  const params = c.datum(t.args[0]);
  if (!Array.isArray(params)) throw logicError('Expected an array of parameters.');
  return new Func(params as number[], t.args[1], c.vars);
});

def(T.FUNCALL, 1, Infinity, (c, t) => {
  const vals = c.args(t);
  const [f, ...args] = vals;
  // A non-function is a constant (r.do(1) is 1).
  if (!(f instanceof Func)) {
    if (f instanceof DbVal || f instanceof Stream) throw logicError(`Expected type FUNCTION but found ${valTypeName(f)}.`);
    return f;
  }
  if (!f.native && f.params.length !== 0 && f.params.length !== args.length) {
    const n = f.params.length;
    throw logicError(`Expected function with ${args.length} argument${args.length === 1 ? '' : 's'} but found function with ${n} argument${n === 1 ? '' : 's'}.`);
  }
  return c.call(f, args);
});

def(T.BRANCH, 3, Infinity, (c, t) => {
  if (t.args.length % 2 === 0) throw logicError('Cannot call `branch` term with an even number of arguments.');
  for (let i = 0; i + 1 < t.args.length; i += 2) {
    const cv = c.ev(t.args[i]);
    if (cv instanceof Stream) {
      const shown = cv.typeName === 'TABLE' && cv.opts.table ? `table("${cv.opts.table.name}")` : cv.typeName.toLowerCase();
      throw logicError(`Expected type DATUM but found ${cv.typeName}:\n${shown}`);
    }
    const cond = toDatum(cv, c);
    if (cond !== false && cond !== null) return c.ev(t.args[i + 1]);
  }
  return c.ev(t.args[t.args.length - 1]);
});

/** The arguments as datums, evaluated one at a time as they are read (r.args spliced in). */
function* lazyDatums(c: Ctx, t: Term): Generator<Datum> {
  for (const a of t.args) {
    if (a.type === T.ARGS) {
      const spliced = c.datum(a.args[0]);
      if (!Array.isArray(spliced)) throw logicError(`Expected type ARRAY but found ${typeName(spliced)}.`);
      yield* spliced;
    } else yield c.datum(a);
  }
}

def(T.OR, 0, Infinity, (c, t) => {
  let last: Datum = false;
  for (const d of lazyDatums(c, t)) {
    last = d;
    if (last !== false && last !== null) return last;
  }
  return last;
});

def(T.AND, 0, Infinity, (c, t) => {
  let last: Datum = true;
  for (const d of lazyDatums(c, t)) {
    last = d;
    if (last === false || last === null) return last;
  }
  return last;
});

def(T.NOT, 1, 1, (c, t) => {
  const v = c.datum(t.args[0]);
  return v === false || v === null;
});

function cmpChain(pred: (r: number) => boolean) {
  return (c: Ctx, t: Term): Val => {
    const vals = c.dargs(t);
    for (let i = 0; i + 1 < vals.length; i++) if (!pred(compare(vals[i], vals[i + 1]))) return false;
    return true;
  };
}
def(T.EQ, 2, Infinity, cmpChain((r) => r === 0));
def(T.LT, 2, Infinity, cmpChain((r) => r < 0));
def(T.LE, 2, Infinity, cmpChain((r) => r <= 0));
def(T.GT, 2, Infinity, cmpChain((r) => r > 0));
def(T.GE, 2, Infinity, cmpChain((r) => r >= 0));
def(T.NE, 2, Infinity, (c, t) => {
  const vals = c.dargs(t);
  for (let i = 0; i + 1 < vals.length; i++) if (equal(vals[i], vals[i + 1])) return false;
  return true;
});

/** Errors thrown by r.error() with no message: inside default(), they re-raise the original error. */
const emptyErrors = new WeakSet<object>();
export const isEmptyError = (e: unknown): boolean => typeof e === 'object' && e !== null && emptyErrors.has(e);

def(T.DEFAULT, 2, 2, (c, t) => {
  let err: ReqlError | undefined;
  try {
    const v = c.ev(t.args[0]);
    if (v !== null && !(v instanceof Single && v.doc === null)) return v;
  } catch (e) {
    if (!isNonExistence(e)) throw e;
    err = e;
  }
  try {
    const f = c.ev(t.args[1]);
    return f instanceof Func ? c.call(f, [err ? err.message : null]) : f;
  } catch (e) {
    if (!isEmptyError(e)) throw e;
    if (err) throw err;
    return null;
  }
});

def(T.ERROR, 0, 1, (c, t) => {
  if (t.args.length === 0) {
    const e = logicError('Empty ERROR term outside a default block.');
    emptyErrors.add(e);
    throw e;
  }
  throw userError(str(c.datum(t.args[0])));
});

def(T.TYPE_OF, 1, 1, (c, t) => valTypeName(c.ev(t.args[0])));

def(T.UUID, 0, 1, (c, t) => {
  if (t.args.length === 0) return randomUUID();
  // Version 5 UUID of the string in RethinkDB's namespace (91461c99-f89d-49d2-af96-d8e2e14e9b58).
  const ns = Buffer.from('91461c99f89d49d2af96d8e2e14e9b58', 'hex');
  const h = createHash('sha1').update(ns).update(str(c.datum(t.args[0]))).digest();
  h[6] = (h[6] & 0x0f) | 0x50;
  h[8] = (h[8] & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
});

def(T.NOW, 0, 0, (c) => c.now);
def(T.MINVAL, 0, 0, () => MINVAL);
def(T.MAXVAL, 0, 0, () => MAXVAL);

// asc/desc are markers read by orderBy; on their own they are an error.
export class Order {
  constructor(readonly desc: boolean, readonly key: Val) {}
}
def(T.ASC, 1, 1, (c, t) => new Order(false, c.ev(t.args[0])) as unknown as Val);
def(T.DESC, 1, 1, (c, t) => new Order(true, c.ev(t.args[0])) as unknown as Val);

def(T.FOR_EACH, 2, 2, (c, t) => {
  const src = c.ev(t.args[0]);
  const f = c.ev(t.args[1]);
  const total: DatumObject = {};
  const NOT_WRITE = 'FOR_EACH expects one or more basic write queries.';
  for (const x of iterOf(src, c)) {
    const res = c.call(f, [x]);
    if (!(res === null || typeof res !== 'object' || Array.isArray(res) || isObject(res))) throw logicError(NOT_WRITE);
    const rd = toDatum(res, c);
    const results = isObject(rd) ? [rd] : Array.isArray(rd) ? rd : undefined;
    if (results === undefined) throw logicError(`${NOT_WRITE}  Expected type ARRAY but found ${typeName(rd)}.`);
    for (const r of results) {
      if (!isObject(r)) throw logicError(`${NOT_WRITE}  Expected type OBJECT but found ${typeName(r)}.`);
      mergeWriteResults(total, r);
    }
  }
  return total;
});

export function mergeWriteResults(total: DatumObject, r: DatumObject): void {
  for (const [k, v] of Object.entries(r)) {
    const cur = total[k];
    if (typeof v === 'number' && (cur === undefined || typeof cur === 'number')) total[k] = (cur ?? 0) + v;
    else if (Array.isArray(v)) total[k] = [...((cur as Datum[]) ?? []), ...v];
    else if (k === 'first_error' && cur === undefined) total[k] = v;
    else if (cur === undefined) total[k] = v;
  }
}

def(T.JSON, 1, 1, (c, t) => {
  const s = str(c.datum(t.args[0]));
  try {
    return JSON.parse(s) as Datum;
  } catch {
    throw logicError(`Failed to parse "${s}" as JSON: The document is not a valid JSON value.`);
  }
});

def(T.TO_JSON_STRING, 1, 1, (c, t) => jsonText(c.datum(t.args[0])));

def(T.BINARY, 1, 1, (c, t) => {
  const v = c.datum(t.args[0]);
  if (isObject(v) && v.$reql_type$ === 'BINARY') return v;
  if (typeof v !== 'string') throw logicError(`Expected type STRING but found ${typeName(v)}.`);
  return { $reql_type$: 'BINARY', data: Buffer.from(v, 'utf8').toString('base64') };
});

def(T.RANGE, 0, 2, (c, t) => {
  const a = c.dargs(t).map(num);
  if (a.length === 0) {
    return new Stream('STREAM', function* () {
      for (let i = 0; ; i++) yield i;
    }, { infinite: true });
  }
  const [lo, hi] = a.length === 1 ? [0, a[0]] : [a[0], a[1]];
  for (const x of [lo, hi]) {
    if (x > 2 ** 53) throw logicError(`Number not an integer (>2^53): ${printDatum(x)}`);
    if (x < -(2 ** 53)) throw logicError(`Number not an integer (<-2^53): ${printDatum(x)}`);
    if (!Number.isInteger(x)) throw logicError(`Number not an integer: ${printDatum(x)}`);
  }
  return new Stream('STREAM', function* () {
    for (let i = lo; i < hi; i++) yield i;
  });
});

export { nonExistence };
