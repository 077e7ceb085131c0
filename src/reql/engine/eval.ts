// The evaluator: a registry of term implementations and the context they run in.
// Term families live in ops/*.ts and register themselves with def().
import type { Catalog } from '../storage/catalog.js';
import { ARRAY_LIMIT, isBound, isObject, typeName, type Datum, type DatumObject, type Key } from './datum.js';
import { logicError, compileError, resourceLimit } from './errors.js';
import { checkArity, type Signature, type Term } from './term.js';
import { T, TERM_NAMES } from './termtypes.js';
import { DbVal, Feed, Func, Grouped, Single, Stream, type Val } from './values.js';
import type { FeedHub } from './feeds.js';

export type Impl = (c: Ctx, t: Term) => Val;
export interface OpDef extends Signature {
  impl: Impl;
}

export const ops = new Map<number, OpDef>();
export const signatures = ops as Map<number, Signature>;

export function def(type: number, min: number, max: number, impl: Impl, optargs?: readonly string[]): void {
  ops.set(type, { min, max, impl, optargs });
}

export interface EngineState {
  catalog: Catalog;
  feeds: FeedHub;
}

export interface GlobalOpts {
  db: string;
  durability?: 'hard' | 'soft';
  arrayLimit: number;
  changefeedQueueSize: number;
  [k: string]: Datum | undefined;
}

export class Ctx {
  /** durability waits of writes made by this query; the engine awaits them before answering */
  readonly pending: Promise<void>[] = [];
  readonly now: Datum;

  constructor(
    readonly state: EngineState,
    readonly global: GlobalOpts,
    readonly vars: Map<number, Val> = new Map(),
    readonly implicit: Val[] = [],
    now?: Datum,
  ) {
    this.now = now ?? { $reql_type$: 'TIME', epoch_time: Date.now() / 1000, timezone: '+00:00' };
  }

  withVars(bindings: Iterable<[number, Val]>, implicit?: Val): Ctx {
    const vars = new Map(this.vars);
    for (const [k, v] of bindings) vars.set(k, v);
    const c = new Ctx(this.state, this.global, vars, implicit === undefined ? this.implicit : [...this.implicit, implicit], this.now);
    (c as { pending: Promise<void>[] }).pending = this.pending;
    return c;
  }

  ev(t: Term): Val {
    if (t.type === T.DATUM) return t.datum as Datum;
    const op = ops.get(t.type);
    if (!op) throw compileError(`Term \`${TERM_NAMES[t.type] ?? t.type}\` is not supported by the embedded ReQL server.`);
    return op.impl(this, t);
  }

  /** Evaluates to a datum; sequences are read into arrays (as RethinkDB coerces them). */
  datum(t: Term): Datum {
    return toDatum(this.ev(t), this);
  }

  /** Evaluates the term's arguments, splicing r.args(). */
  args(t: Term): Val[] {
    const out: Val[] = [];
    for (const a of t.args) {
      if (a.type === T.ARGS) {
        const arr = this.datum(a.args[0]);
        if (!Array.isArray(arr)) throw logicError(`Expected type ARRAY but found ${typeName(arr)}.`);
        out.push(...arr);
      } else out.push(this.ev(a));
    }
    return out;
  }

  /** Evaluates the term's arguments as datums, checking arity after r.args() splicing. */
  dargs(t: Term): Datum[] {
    const vals = this.args(t);
    if (t.args.some((a) => a.type === T.ARGS)) {
      const op = ops.get(t.type)!;
      checkArity(op, vals.length);
    }
    return vals.map((v) => toDatum(v, this));
  }

  opt(t: Term, name: string): Datum | undefined {
    const o = t.optargs[name];
    return o === undefined ? undefined : this.datum(o);
  }

  /** Calls a function value (or, for a non-function, returns it: RethinkDB's implicit constant functions). */
  call(f: Val, args: Val[]): Val {
    if (!(f instanceof Func)) return f;
    if (f.native) return f.native(args);
    if (f.params.length !== args.length && !(f.params.length === 1 && args.length >= 1 && isImplicitRowFunc(f))) {
      throw logicError(`Expected function with ${args.length} argument${args.length === 1 ? '' : 's'} but found function with ${f.params.length} argument${f.params.length === 1 ? '' : 's'}.`);
    }
    const c = new Ctx(this.state, this.global, new Map(f.scope), [...this.implicit], this.now);
    (c as { pending: Promise<void>[] }).pending = this.pending;
    f.params.forEach((p, i) => c.vars.set(p, args[i]));
    if (f.params.length === 1) c.implicit.push(args[0]);
    return c.ev(f.body);
  }

  callDatum(f: Val, args: Val[]): Datum {
    return toDatum(this.call(f, args), this);
  }
}

function isImplicitRowFunc(f: Func): boolean {
  return f.params.length === 1;
}

export function toDatum(v: Val, c?: Ctx): Datum {
  if (v === null || typeof v !== 'object') return v as Datum;
  if (Array.isArray(v)) return v;
  if (v instanceof Stream) {
    if (v.opts.infinite) throw logicError('Cannot use an infinite stream with an aggregation function (`reduce`, `count`, etc.) or coerce it to an array.');
    const limit = c?.global.arrayLimit ?? ARRAY_LIMIT;
    const out: Datum[] = [];
    for (const x of v.iter()) {
      out.push(x);
      if (out.length > limit) throw resourceLimit(`Array over size limit \`${limit}\`.`);
    }
    return out;
  }
  if (v instanceof Single) return v.doc;
  // minval/maxval pass through as values (e.g. inside compound index bounds); the engine
  // refuses them only as a query's final result.
  if (isBound(v)) return v as unknown as Datum;
  if (v instanceof DbVal) throw logicError(`Expected type DATUM but found DATABASE:\ndb("${v.name}").`);
  if (v instanceof Func) throw logicError('Expected type DATUM but found FUNCTION:\n<function>.');
  if (v instanceof Grouped) return groupedToDatum(v, c);
  if (v instanceof Feed) throw logicError('Cannot coerce a changefeed to an array.');
  return v as DatumObject;
}

export function groupedToDatum(g: Grouped, c?: Ctx): Datum {
  return { $reql_type$: 'GROUPED_DATA', data: g.groups.map(([k, v]) => [k, toDatum(v, c)]) };
}

/** The type name typeOf() reports for any value. */
export function valTypeName(v: Val): string {
  if (v instanceof Stream || v instanceof Single || v instanceof DbVal || v instanceof Func || v instanceof Grouped || v instanceof Feed) return v.typeName;
  return typeName(v as Key);
}

// --- argument coercions used throughout ops/ ---
export function expectType(v: Datum, want: string): never {
  throw logicError(`Expected type ${want} but found ${typeName(v)}.`);
}
export function num(v: Datum): number {
  return typeof v === 'number' ? v : expectType(v, 'NUMBER');
}
export function str(v: Datum): string {
  return typeof v === 'string' ? v : expectType(v, 'STRING');
}
export function bool(v: Datum): boolean {
  return typeof v === 'boolean' ? v : expectType(v, 'BOOL');
}
export function arr(v: Datum): Datum[] {
  return Array.isArray(v) ? v : expectType(v, 'ARRAY');
}
export function obj(v: Datum): DatumObject {
  return isObject(v) && (v.$reql_type$ === undefined) ? v : expectType(v, 'OBJECT');
}
export function int(v: Datum, what = 'NUMBER'): number {
  const n = num(v);
  if (!Number.isInteger(n)) throw logicError(`Number not an integer: ${n}`);
  void what;
  return n;
}
