// rethinkdb-ts as the spec runner uses it: the same queries RethinkDB's own JavaScript driver
// would send for the spec texts.
//
// rethinkdb-ts differs from RethinkDB's drivers in two ways that matter for the spec files, and
// `r` here (rSpec) corrects both, so that a failure is the server's and not the driver's:
// - r.row: rethinkdb-ts turns every object or array that mentions r.row into a function, at any
//   depth (`forEach(tbl.insert({'id': r.row}))` becomes an insert of a function). RethinkDB's
//   drivers wrap r.row into a function only for the arguments of the terms that take functions
//   (filter, map, update, forEach, ...), and only up to the nearest enclosing function. rSpec
//   builds argument terms itself and wraps like those drivers.
// - arity: rethinkdb-ts refuses calls with the wrong number of arguments before sending them;
//   RethinkDB's drivers send them and the server answers with a compile error, which the spec
//   files test. rSpec builds and sends such terms.
// It also hooks the driver's cursor so that errors carry the response's type codes (rethinkdb-ts
// names a compile error 'ReqlUnknownError').
import { createRequire } from 'node:module';
import { RESPONSE_INFO, type ResponseInfo } from './expect.js';

export type AnyFn = (...args: unknown[]) => unknown;

export interface TermLike {
  term: unknown;
  run(conn?: unknown, opts?: Record<string, unknown>): Promise<unknown>;
}
export interface CursorLike {
  next(): Promise<unknown>;
  close(): Promise<void>;
  getType(): string;
}
export interface ConnectionLike {
  close(opts?: { noreplyWait?: boolean }): Promise<void>;
  open: boolean;
}
export interface RethinkDBErrorLike {
  type?: number;
  msg?: string;
  name?: string;
}

type TermConfig = [number, string, number, number, 'required' | 'optional' | 'last' | 'last-optional' | false];

const require = createRequire(import.meta.url);
const driver = require('rethinkdb-ts') as { r: AnyFn & Record<string, AnyFn> };
const queryModule = require('rethinkdb-ts/lib/query-builder/query.js') as { isQuery(x: unknown): boolean };
const queryRunner = require('rethinkdb-ts/lib/query-builder/query-runner.js') as { toQuery(term: unknown): unknown };
const paramParser = require('rethinkdb-ts/lib/query-builder/param-parser.js') as { parseParam(x: unknown): unknown };
const optParser = require('rethinkdb-ts/lib/query-builder/parse-opt-arg.js') as { parseOptarg(x: unknown): unknown };
const globals = (require('rethinkdb-ts/lib/query-builder/globals.js') as { globals: { nextVarId: number } }).globals;
const queryConfig = require('rethinkdb-ts/lib/query-builder/query-config.js') as {
  termConfig: TermConfig[];
  rConfig: TermConfig[];
  rConsts: Array<[number, string]>;
  funcall: TermConfig;
  bracket: TermConfig;
};
const cursorModule = require('rethinkdb-ts/lib/response/cursor.js') as {
  Cursor: { prototype: { handleErrors(response: { t?: number; e?: number }): void } };
  isCursor(x: unknown): boolean;
};
const TermType = (require('rethinkdb-ts/lib/proto/enums.js') as { TermType: Record<string, number> }).TermType;

const MAKE_ARRAY = TermType.MAKE_ARRAY;
const VAR = TermType.VAR;
const IMPLICIT_VAR = TermType.IMPLICIT_VAR;
const FUNC = TermType.FUNC;
const ARGS = TermType.ARGS;
const FUNCALL = queryConfig.funcall[0];
const BRACKET = queryConfig.bracket[0];
/** rethinkdb-ts's RethinkDBErrorType.ARITY */
const ERROR_TYPE_ARITY = 9;

/** The unmodified rethinkdb-ts `r` (for the runner's own housekeeping queries). */
export const rRaw = driver.r;
export const isTerm = (x: unknown): boolean => queryModule.isQuery(x);
export const isCursor = (x: unknown): x is CursorLike => cursorModule.isCursor(x);
const toQuery = (term: unknown): unknown => queryRunner.toQuery(term);

let hooked = false;
/** Marks errors that come from a server response with the response and error type codes. */
export function installErrorHook(): void {
  if (hooked) return;
  hooked = true;
  const proto = cursorModule.Cursor.prototype;
  const original = proto.handleErrors;
  proto.handleErrors = function handleErrors(this: unknown, response: { t?: number; e?: number }): void {
    try {
      original.call(this, response);
    } catch (e) {
      if (typeof e === 'object' && e !== null) {
        const info: ResponseInfo = { responseType: response.t, errorType: response.e };
        Object.defineProperty(e, RESPONSE_INFO, { value: info, enumerable: false });
      }
      throw e;
    }
  };
}

// rethinkdb-ts wraps r.row into a function only while globals.nextVarId is 1 (its own
// top-level test); keep it from doing so for terms: rSpec does the wrapping.
globals.nextVarId = 1_000_000;

// ---------------------------------------------------------------------------------------------
// Arguments → terms, as RethinkDB's drivers build them

let varCounter = 0;

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x) && !isTerm(x) && !Buffer.isBuffer(x) && !(x instanceof Date);
}

/** The term JSON of a value. */
export function toTermJson(x: unknown): unknown {
  if (isTerm(x)) return (x as TermLike).term;
  if (Array.isArray(x)) return [MAKE_ARRAY, x.map(toTermJson)];
  if (typeof x === 'function') return funcTerm(x as AnyFn);
  if (isPlainObject(x)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(x)) {
      if (v !== undefined) out[k] = toTermJson(v);
    }
    return out;
  }
  return paramParser.parseParam(x);
}

function funcTerm(fn: AnyFn): unknown {
  const ids = Array.from({ length: fn.length }, () => 2_000_000 + ++varCounter);
  const vars = ids.map((id) => wrapTerm(toQuery([VAR, [id]])));
  const body = fn(...vars);
  if (body === undefined) {
    throw Object.assign(new Error('Anonymous function returned `undefined`. Did you forget a `return`?'), { name: 'ReqlDriverCompileError' });
  }
  return [FUNC, [[MAKE_ARRAY, ids], toTermJson(body)]];
}

/** Does a term mention r.row outside of any function? */
function hasImplicitVar(term: unknown): boolean {
  if (Array.isArray(term)) {
    if (term[0] === IMPLICIT_VAR) return true;
    if (term[0] === FUNC) return false;
    const args = term[1];
    const opts = term[2];
    return (Array.isArray(args) && args.some(hasImplicitVar)) || (opts !== undefined && hasImplicitVar(opts));
  }
  if (term !== null && typeof term === 'object') return Object.values(term).some(hasImplicitVar);
  return false;
}

/** An argument for rethinkdb-ts: primitives as they are (its checks apply), the rest as a term. */
function toArg(x: unknown, wrapRow: boolean): unknown {
  if (x === null || typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean' || x === undefined) return x;
  let json = toTermJson(x);
  if (wrapRow && hasImplicitVar(json)) json = [FUNC, [[MAKE_ARRAY, [2_000_000 + ++varCounter]], json]];
  if (isTerm(x) && json === (x as TermLike).term) return x;
  return toQuery(json);
}

function toOptarg(x: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(x)) out[k] = toArg(v, false);
  return out;
}

/**
 * Which positional arguments RethinkDB's JavaScript driver wraps into a function when they
 * mention r.row: 'all', 'last', or indexes (for the method form; `r.name(seq, ...)` shifts by 1).
 */
const FUNC_WRAP: Record<string, 'all' | 'last' | number[]> = {
  filter: [0],
  map: 'last',
  concatMap: [0],
  orderBy: 'all',
  group: 'all',
  reduce: [0],
  fold: [1],
  forEach: [0],
  update: [0],
  replace: [0],
  merge: 'all',
  sum: [0],
  avg: [0],
  min: [0],
  max: [0],
  eqJoin: [0],
  innerJoin: [1],
  outerJoin: [1],
  contains: 'all',
  count: [0],
  offsetsOf: [0],
  indexCreate: [1],
  do: 'last',
  desc: [0],
  asc: [0],
};

function wrapsRow(name: string, i: number, n: number, shift: number): boolean {
  const w = FUNC_WRAP[name];
  if (w === undefined) return false;
  if (w === 'all') return i >= shift;
  if (w === 'last') return i === n - 1;
  return w.includes(i - shift);
}

interface CallShape {
  type: number;
  min: number;
  max: number;
  optType: TermConfig[4];
}

const METHOD_SHAPES = new Map<string, CallShape>();
for (const c of queryConfig.termConfig) METHOD_SHAPES.set(c[1], { type: c[0], min: c[2], max: c[3], optType: c[4] });
METHOD_SHAPES.set('do', { type: FUNCALL, min: 1, max: -1, optType: false });
/** r-level functions: r's own, then methods called as r.name(term, ...) */
const R_SHAPES = new Map<string, CallShape & { shift: number }>();
for (const c of queryConfig.termConfig) {
  R_SHAPES.set(c[1], { type: c[0], min: c[2] + 1, max: c[3] === -1 ? -1 : c[3] + 1, optType: c[4], shift: 1 });
}
for (const c of queryConfig.rConfig) R_SHAPES.set(c[1], { type: c[0], min: c[2], max: c[3], optType: c[4], shift: 0 });
R_SHAPES.set('do', { type: FUNCALL, min: 0, max: -1, optType: false, shift: 0 });
const R_CONSTS = new Set(queryConfig.rConsts.map((c) => c[1]));

/** Index of the argument rethinkdb-ts will read as options, if any. */
function optargIndex(shape: CallShape, args: unknown[]): number {
  const last = args.length - 1;
  switch (shape.optType) {
    case 'last':
      return shape.max >= 1 && args.length >= shape.max && isPlainObject(args[shape.max - 1]) ? shape.max - 1 : -1;
    case 'optional':
    case 'last-optional':
    case 'required':
      return last >= 0 && isPlainObject(args[last]) ? last : -1;
    default:
      return -1;
  }
}

function convertArgs(name: string, shape: CallShape, args: unknown[], shift: number): unknown[] {
  const oi = optargIndex(shape, args);
  const n = oi >= 0 ? args.length - 1 : args.length;
  return args.map((a, i) => (i === oi ? toOptarg(a as Record<string, unknown>) : toArg(a, wrapsRow(name, i, n, shift))));
}

/** rethinkdb-ts mishandles r.args among other arguments (it drops them or reads one as options). */
const hasArgsTerm = (args: unknown[]): boolean =>
  args.some((a) => isTerm(a) && Array.isArray((a as TermLike).term) && ((a as TermLike).term as unknown[])[0] === ARGS);

const isArityError = (e: unknown): boolean => typeof e === 'object' && e !== null && (e as RethinkDBErrorLike).type === ERROR_TYPE_ARITY;

/** Builds the term rethinkdb-ts refused for its arity, the way RethinkDB's drivers send it. */
function rawCall(target: unknown, name: string, shape: CallShape, args: unknown[]): unknown {
  if (shape.type === FUNCALL) {
    const rest = [...args];
    const fn = rest.pop();
    const params = fn === undefined ? [] : [fn, ...(target !== undefined ? [target] : []), ...rest];
    return toQuery([FUNCALL, params.map((p) => paramParser.parseParam(p))]);
  }
  let positional = [...args];
  let optarg: unknown;
  if (shape.optType !== false && positional.length > 0 && isPlainObject(positional[positional.length - 1])) {
    optarg = optParser.parseOptarg(positional[positional.length - 1]);
    positional = positional.slice(0, -1);
  }
  const params = (target !== undefined ? [target, ...positional] : positional).map((p) => paramParser.parseParam(p));
  const term: unknown[] = [shape.type, params];
  if (optarg !== undefined) term.push(optarg);
  return toQuery(term);
}

const proxies = new WeakMap<object, unknown>();

/** rethinkdb-ts leaves out the argument list of a term that has only options: send `[]`, as the drivers do. */
function fixTerm(q: unknown): unknown {
  if (isTerm(q)) {
    const term = (q as TermLike).term;
    if (Array.isArray(term) && term.length === 3 && term[1] === undefined) term[1] = [];
  }
  return q;
}

/** Wraps a rethinkdb-ts term so that its methods build terms like RethinkDB's drivers. */
export function wrapTerm(x: unknown): unknown {
  if (typeof x !== 'function' || !isTerm(x)) return x;
  const cached = proxies.get(x);
  if (cached !== undefined) return cached;
  const target = x as AnyFn & TermLike & Record<string, unknown>;
  const p = new Proxy(target, {
    get(t, prop) {
      const v = Reflect.get(t, prop) as unknown;
      if (typeof prop !== 'string' || typeof v !== 'function') return v;
      const shape = METHOD_SHAPES.get(prop);
      if (shape === undefined) return v;
      return (...args: unknown[]) => {
        const conv = convertArgs(prop, shape, args, 0);
        if (hasArgsTerm(conv)) return wrapTerm(rawCall(t, prop, shape, conv));
        try {
          return wrapTerm(fixTerm((v as AnyFn)(...conv)));
        } catch (e) {
          if (isArityError(e)) return wrapTerm(rawCall(t, prop, shape, conv));
          throw e;
        }
      };
    },
    apply(t, _this, args: unknown[]) {
      const conv = args.map((a) => toArg(a, false));
      try {
        return wrapTerm(t(...conv));
      } catch (e) {
        if (isArityError(e)) return wrapTerm(toQuery([BRACKET, [t, ...conv].map((p) => paramParser.parseParam(p))]));
        throw e;
      }
    },
  });
  proxies.set(x, p);
  return p;
}

function rExpr(...args: unknown[]): unknown {
  if (args.length === 0) throw new Error('r.expr() without a value has no wire form (the JS driver rejects it itself)');
  if (args.length === 1) return wrapTerm(isTerm(args[0]) ? args[0] : toQuery(toTermJson(args[0])));
  return wrapTerm(rRaw.expr(...args));
}

/** `r` for the converted spec code. */
export const rSpec = new Proxy(rRaw, {
  get(t, prop) {
    const v = Reflect.get(t, prop) as unknown;
    if (typeof prop !== 'string') return v;
    if (R_CONSTS.has(prop)) return wrapTerm(v);
    if (prop === 'expr') return rExpr;
    const shape = R_SHAPES.get(prop);
    if (typeof v !== 'function' || shape === undefined) return v;
    return (...args: unknown[]) => {
      // r.do() with nothing: rethinkdb-ts would send a null function; the drivers send no argument
      if (shape.type === FUNCALL && args.length === 0) return wrapTerm(toQuery([FUNCALL, []]));
      const conv = convertArgs(prop, shape, args, shape.shift);
      if (hasArgsTerm(conv)) return wrapTerm(rawCall(undefined, prop, shape, conv));
      try {
        return wrapTerm(fixTerm((v as AnyFn)(...conv)));
      } catch (e) {
        if (isArityError(e)) return wrapTerm(rawCall(undefined, prop, shape, conv));
        throw e;
      }
    };
  },
  apply(_t, _this, args: unknown[]) {
    return rExpr(...args);
  },
});
