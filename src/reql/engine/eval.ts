// The evaluator: the context terms run in. Term families live in ops/*.ts, each building an
// OpFamily; ops/registry.ts joins them into the one OpTable the engine evaluates with.
import type { Catalog } from '../storage/catalog.js';
import { ARRAY_LIMIT, arrayLimitMessage, isBound, isObject, typeName, type Datum, type DatumObject, type Key } from './datum.js';
import { logicError, compileError, nonExistence, resourceLimit } from './errors.js';
import { checkArity, type Signature, type Term } from './term.js';
import { T, TERM_NAMES } from './termtypes.js';
import { DbVal, Feed, Func, Grouped, Single, Stream, type Val } from './values.js';
import type { FeedHub } from './feeds.js';

export type Impl = (c: Ctx, t: Term) => Val;
export interface OpDef extends Signature {
  impl: Impl;
}

/** The handlers of one family of terms, as its ops/ module defines them. */
export class OpFamily {
  readonly ops = new Map<number, OpDef>();
  constructor(readonly name: string) {}
  readonly def = (type: number, min: number, max: number, impl: Impl, optargs?: readonly string[]): void => {
    if (this.ops.has(type)) throw new Error(`term ${TERM_NAMES[type] ?? type} is defined twice in the ${this.name} family`);
    this.ops.set(type, { min, max, impl, optargs });
  };
}

/** Every term the engine evaluates, and how terms apply to each group of grouped data. */
export interface OpTable {
  ops: ReadonlyMap<number, OpDef>;
  grouped: { terms: ReadonlySet<number>; run: (c: Ctx, t: Term, op: OpDef) => Val };
}

export interface EngineState {
  catalog: Catalog;
  feeds: FeedHub;
  table: OpTable;
  /** where the wire server listens (rethinkdb.server_status reports it) */
  network: { host: string; port: number };
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
    const { ops, grouped } = this.state.table;
    const op = ops.get(t.type);
    if (!op) throw compileError(`Term \`${TERM_NAMES[t.type] ?? t.type}\` is not supported by the embedded ReQL server.`);
    if (grouped.terms.has(t.type)) return grouped.run(this, t, op);
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
      const op = this.state.table.ops.get(t.type)!;
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
    // A function of no parameters ignores its arguments (the JS driver's `function(){...}`).
    if (f.params.length !== args.length && f.params.length !== 0 && !(f.params.length === 1 && args.length >= 1 && isImplicitRowFunc(f))) {
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
      if (out.length > limit) throw resourceLimit(arrayLimitMessage(limit));
    }
    return out;
  }
  if (v instanceof Single) return v.doc;
  // minval/maxval pass through as values (e.g. inside compound index bounds); the engine
  // refuses them only as a query's final result.
  if (isBound(v)) return v as unknown as Datum;
  if (v instanceof DbVal) throw logicError(`Expected type DATUM but found DATABASE:\ndb("${v.name}").`);
  if (v instanceof Func) {
    // rethinkdb-ts wraps every argument that mentions r.row in a one-parameter function, also
    // where a value is expected (`r.row('a').and(r.row('b'))`, `insert({id: r.row})` inside
    // forEach): inside a row's context such a function stands for its value on that row.
    if (c && !v.native && v.params.length === 1 && c.implicit.length > 0) return toDatum(c.call(v, [c.implicit[c.implicit.length - 1]]), c);
    throw logicError('Expected type DATUM but found FUNCTION:\n<function>.');
  }
  if (v instanceof Grouped) return groupedToDatum(v, c);
  if (v instanceof Feed) throw logicError('Cannot coerce a changefeed to an array.');
  return v as DatumObject;
}

export function groupedToDatum(g: Grouped, c?: Ctx): Datum {
  const limit = c?.global.arrayLimit ?? ARRAY_LIMIT;
  let total = 0;
  const data = g.groups.map(([k, v]): Datum => {
    const d = toDatum(v, c);
    if (Array.isArray(d) && (total += d.length) > limit) {
      throw resourceLimit(`Grouped data over size limit \`${limit}\`.  Try putting a reduction (like \`.reduce\` or \`.count\`) on the end.`);
    }
    return [k, d];
  });
  return { $reql_type$: 'GROUPED_DATA', data };
}

/** The type name typeOf() reports for any value. */
export function valTypeName(v: Val): string {
  if (v instanceof Stream || v instanceof Single || v instanceof DbVal || v instanceof Func || v instanceof Grouped || v instanceof Feed) return v.typeName;
  return typeName(v as Key);
}

// --- argument coercions used throughout ops/ ---
export function expectType(v: Datum, want: string): never {
  // RethinkDB reports a NULL where a value was required as a non-existence error.
  if (v === null) throw nonExistence(`Expected type ${want} but found NULL.`);
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
