// The query engine: parses a START query, evaluates it, and turns the value into an atom or a
// cursor. The terms it knows are the table built by registry.ts.
import type { Cursor, Datum, Engine, QueryContext, QueryResult } from './api.js';
import { isBound, isObject, type DatumObject } from './datum.js';
import { compileError, internalError, logicError, ReqlError } from './errors.js';
import { Ctx, toDatum, valTypeName, type EngineState, type GlobalOpts } from './eval.js';
import { FeedHub, openFeed } from './feeds.js';
import { buildOpTable } from './registry.js';
import { parseTerm, type Term } from './term.js';
import { Catalog, type LoadStats } from '../storage/catalog.js';
import type { IndexDef, KeyFn } from '../storage/table.js';
import { T } from './termtypes.js';
import { DbVal, Feed, Func, Grouped, Single, Stream, type Val } from './values.js';
import { SERVER_ID, SERVER_NAME } from './ops/table.js';
import { Literal, STRAY_LITERAL } from './ops/object.js';

export interface EngineOptions {
  /** Where data lives; omitted = in memory only. */
  dataDir?: string;
  onWarn?: (msg: string) => void;
  /** see CatalogOptions.compactMinRows */
  compactMinRows?: number;
  /** tests only: see LogOptions.slowDiskMs */
  slowDiskMs?: number;
}

export interface EmbeddedEngine extends Engine {
  stats(): { openFeeds: number; tables: number; loaded: LoadStats };
  /** Tells the engine where clients reach it (for rethinkdb.server_status and discovery). */
  listening(host: string, port: number): void;
}

const BATCH_ROWS = 1000;

export async function createEngine(opts: EngineOptions = {}): Promise<EmbeddedEngine> {
  const table = buildOpTable();
  const signatures = table.ops;
  const feeds = new FeedHub();
  const network = { host: '127.0.0.1', port: 28015 };
  let state: EngineState | undefined;
  // Index functions are compiled while the catalog opens (indexes are rebuilt after replay),
  // before `state` exists; they are deterministic and never read a table.
  const indexState: EngineState = {
    get catalog(): Catalog {
      if (!state) throw logicError('Index functions cannot read tables.');
      return state.catalog;
    },
    feeds,
    table,
    network,
  };
  const compileIndex = (def: IndexDef): KeyFn => {
    const term = parseTerm(def.fn, signatures);
    const ctx = new Ctx(indexState, { db: 'test', arrayLimit: 100_000, changefeedQueueSize: 100_000 });
    const native = compileNative(term);
    let f: Val | undefined = native ? undefined : ctx.ev(term); // a bad function fails here, at once
    const interpret = (row: DatumObject): Datum | undefined => {
      try {
        f ??= ctx.ev(term);
        return ctx.callDatum(f, [row]);
      } catch {
        return undefined;
      }
    };
    const keys: KeyFn = (row) => {
      let v: Datum | undefined;
      if (native) {
        const n = native(row);
        if (n === MISSING || n === FAILED) return [];
        v = n === INTERPRET ? interpret(row) : n;
      } else {
        v = interpret(row);
      }
      if (v === undefined) return [];
      // Rows whose index value is null, minval or maxval are not in the index.
      if (v === null || isBound(v)) return [];
      // A value may come twice; the table keeps one entry of each.
      if (def.multi && Array.isArray(v)) return v.filter((x) => x !== null && !isBound(x));
      return [v];
    };
    keys.lastField = lastFieldOf(term, def.multi);
    return keys;
  };
  const catalog = await Catalog.open({ dataDir: opts.dataDir, compileIndex, onWarn: opts.onWarn, compactMinRows: opts.compactMinRows, slowDiskMs: opts.slowDiskMs });
  const live: EngineState = { catalog, feeds, table, network };
  state = live;

  function globals(raw: Record<string, unknown>): GlobalOpts {
    const g: GlobalOpts = { db: 'test', arrayLimit: 100_000, changefeedQueueSize: 100_000 };
    const base = new Ctx(live, g);
    for (const [k, v] of Object.entries(raw)) {
      const val = base.ev(parseTerm(v, signatures));
      if (k === 'db') {
        // rethinkdb-ts sends the connection's default database as a plain string.
        if (typeof val === 'string') g.db = val;
        else if (val instanceof DbVal) g.db = val.name;
        else throw logicError(`Expected type DATABASE but found ${valTypeName(val)}.`);
      } else if (k === 'array_limit') {
        if (typeof val !== 'number' || val < 1) throw logicError(`Illegal array size limit \`${String(val)}\`.  (Must be >= 1.)`);
        g.arrayLimit = val;
      } else if (k === 'changefeed_queue_size') {
        if (typeof val === 'number') g.changefeedQueueSize = val;
      } else if (k === 'durability') {
        if (val !== 'hard' && val !== 'soft') throw logicError(`Durability option \`${String(val)}\` unrecognized (options are "hard" and "soft").`);
        g.durability = val;
      }
    }
    return g;
  }

  function streamCursor(s: Stream, ctx: Ctx): Cursor {
    const it = s.iter()[Symbol.iterator]();
    let done = false;
    return {
      notes: [],
      async next() {
        if (done) return { items: [], done: true };
        const items: Datum[] = [];
        while (items.length < BATCH_ROWS) {
          const n = it.next();
          if (n.done) {
            done = true;
            break;
          }
          items.push(n.value);
        }
        void ctx;
        return { items, done };
      },
      close() {
        done = true;
      },
    };
  }

  async function run(rawTerm: unknown, rawGlobals: Record<string, unknown>, context: QueryContext = {}): Promise<QueryResult> {
    let term;
    try {
      term = parseTerm(rawTerm, signatures);
    } catch (e) {
      if (e instanceof RangeError) throw compileError('Query nested too deeply.');
      throw e;
    }
    // r.now() is the time the query arrived, as on RethinkDB, even when it commits later.
    const now = { $reql_type$: 'TIME', epoch_time: Math.round(Date.now() + (context.clockOffsetMs ?? 0)) / 1000, timezone: '+00:00' };
    const g = globals(rawGlobals);
    if (context.beforeWrite && writes(term)) await context.beforeWrite();
    const ctx = new Ctx(live, g, undefined, undefined, now);
    let val: Val;
    try {
      val = ctx.ev(term);
    } catch (e) {
      await Promise.allSettled(ctx.pending);
      throw normalize(e);
    }
    let result: QueryResult;
    try {
      result = toResult(val, ctx);
    } catch (e) {
      await Promise.allSettled(ctx.pending);
      throw normalize(e);
    }
    await Promise.all(ctx.pending);
    return result;
  }

  function toResult(val: Val, ctx: Ctx): QueryResult {
    if (val instanceof Feed) return { kind: 'cursor', cursor: openFeed(ctx, val) };
    if (val instanceof Stream) {
      if (val.opts.infinite) return { kind: 'cursor', cursor: streamCursor(val, ctx) };
      return { kind: 'cursor', cursor: streamCursor(val, ctx) };
    }
    if (val instanceof Literal) throw logicError(STRAY_LITERAL);
    if (val instanceof Single) return { kind: 'atom', value: val.doc };
    if (val instanceof Grouped) return { kind: 'atom', value: toDatum(val, ctx) };
    if (val instanceof DbVal || val instanceof Func) {
      throw logicError(`Query result must be of type DATUM, GROUPED_DATA, or STREAM (got ${valTypeName(val)}).`);
    }
    if (isBound(val)) throw logicError(`Cannot convert \`r.${val.name.toLowerCase()}\` to JSON.`);
    return { kind: 'atom', value: toDatum(val, ctx) };
  }

  return {
    run,
    serverInfo: () => ({ id: SERVER_ID, name: SERVER_NAME, proxy: false }),
    listening(host, port) {
      network.host = host;
      network.port = port;
    },
    stats: () => ({ openFeeds: live.feeds.open.size, tables: catalog.tables.size, loaded: catalog.loaded }),
    async close() {
      live.feeds.closeAll();
      await catalog.close();
    },
  };
}

function normalize(e: unknown): ReqlError {
  if (e instanceof ReqlError) return e;
  if (e instanceof RangeError && /call stack/i.test(e.message)) return compileError('Query nested too deeply.');
  return internalError(e instanceof Error ? e.message : String(e));
}

export { T };

const WRITE_TERMS = new Set<number>([T.INSERT, T.UPDATE, T.REPLACE, T.DELETE]);

/** True when a query contains a term that writes to a table. */
function writes(t: Term): boolean {
  if (WRITE_TERMS.has(t.type)) return true;
  return t.args.some(writes) || Object.values(t.optargs).some(writes);
}

/** The one parameter of a FUNC term. */
function paramOf(fn: Term): number | undefined {
  if (fn.type !== T.FUNC) return undefined;
  const params = fn.args[0];
  const ids = params.type === T.MAKE_ARRAY ? params.args.map((a) => a.datum) : params.datum;
  return Array.isArray(ids) && ids.length === 1 && typeof ids[0] === 'number' ? ids[0] : undefined;
}

/**
 * The field f when every value the index function gives is an array ending with row(f):
 * `(m) => [..., m(f)]`, or for a multi index `(m) => m(x).map((y) => [..., m(f)])` (each
 * element is then such an array). Storage leaves the primary key out of such entries.
 */
function lastFieldOf(fn: Term, multi: boolean): string | undefined {
  const row = paramOf(fn);
  if (row === undefined) return undefined;
  let body = fn.args[1];
  if (multi) {
    const inner = body.type === T.MAP && body.args.length === 2 ? body.args[1] : undefined;
    const param = inner && paramOf(inner);
    if (!inner || param === undefined || param === row || Object.keys(body.optargs).length > 0) return undefined;
    body = inner.args[1];
  }
  if (body.type !== T.MAKE_ARRAY || body.args.length === 0) return undefined;
  const last = body.args[body.args.length - 1];
  if (last.type !== T.GET_FIELD && last.type !== T.BRACKET) return undefined;
  const [of, field] = last.args;
  if (Object.keys(last.optargs).length > 0 || of?.type !== T.VAR || of.args[0]?.datum !== row) return undefined;
  return field?.type === T.DATUM && typeof field.datum === 'string' ? field.datum : undefined;
}

/** What a natively compiled index function yields for "this row is not in the index". */
const MISSING: unique symbol = Symbol('missing field'); // a non-existence error (default() catches it)
const FAILED: unique symbol = Symbol('failed'); // any other error
const INTERPRET: unique symbol = Symbol('interpret'); // a case left to the interpreter (this row only)
type Native = Datum | typeof MISSING | typeof FAILED | typeof INTERPRET;
type NativeFn = (env: ReadonlyMap<number, Datum>) => Native;
const bad = (v: Native): v is typeof MISSING | typeof FAILED | typeof INTERPRET => v === MISSING || v === FAILED || v === INTERPRET;
const truthy = (v: Datum) => v !== false && v !== null;

/**
 * Index functions are evaluated for every row on every write and on restart. The common
 * shapes compile to plain JS: fields, arrays of them (compound indexes), default(), branch(),
 * hasFields(), and/or/not, string and number add(), and map() over an array (multi indexes).
 * Anything else runs through the interpreter. An error means "not in the index", as there;
 * here it is a sentinel value rather than a thrown error, which costs a stack trace per row.
 */
function compileNative(fn: Term): ((row: Datum) => Native) | undefined {
  const top = compileFunc(fn);
  return top && ((row) => top([row]));
}

/** A one-parameter FUNC compiled to (args) => value, with its parameter bound in env. */
function compileFunc(fn: Term): ((args: Datum[], env?: ReadonlyMap<number, Datum>) => Native) | undefined {
  if (fn.type !== T.FUNC) return undefined;
  const params = fn.args[0];
  const ids = params.type === T.MAKE_ARRAY ? params.args.map((a) => a.datum) : params.datum;
  if (!Array.isArray(ids) || ids.length !== 1 || typeof ids[0] !== 'number') return undefined;
  const param = ids[0];
  const body = compileBody(fn.args[1]);
  if (!body) return undefined;
  // One scope per compiled function, reused: evaluation is synchronous, so a nested call
  // (map's function) only has to put back what it shadowed.
  const scope = new Map<number, Datum>();
  return (args, env) => {
    if (env && env !== scope) for (const [k, v] of env) scope.set(k, v);
    const had = scope.has(param);
    const prev = scope.get(param);
    scope.set(param, args[0]);
    try {
      return body(scope);
    } finally {
      if (had) scope.set(param, prev!);
      else scope.delete(param);
    }
  };
}

function compileBody(t: Term): NativeFn | undefined {
  if (Object.keys(t.optargs).length > 0) return undefined;
  const parts = (): NativeFn[] | undefined => {
    const out = t.args.map(compileBody);
    return out.some((p) => !p) ? undefined : (out as NativeFn[]);
  };
  switch (t.type) {
    case T.DATUM: {
      const d = t.datum as Datum;
      if (d !== null && typeof d === 'object') return undefined; // objects may be pseudo-types
      return () => d;
    }
    case T.VAR: {
      const id = t.args[0]?.datum;
      if (typeof id !== 'number') return undefined;
      return (env) => (env.has(id) ? env.get(id)! : INTERPRET);
    }
    case T.GET_FIELD:
    case T.BRACKET: {
      if (t.args[1]?.type !== T.DATUM || typeof t.args[1].datum !== 'string') return undefined;
      const inner = compileBody(t.args[0]);
      const field = t.args[1].datum;
      if (!inner) return undefined;
      return (env) => {
        const o = inner(env);
        if (bad(o)) return o;
        if (!isObject(o)) return INTERPRET; // e.g. a field of each element of an array
        const v = o[field];
        return v === undefined ? MISSING : v;
      };
    }
    case T.MAKE_ARRAY: {
      const ps = parts();
      if (!ps) return undefined;
      return (env) => {
        const out: Datum[] = [];
        for (const p of ps) {
          const v = p(env);
          if (bad(v)) return v;
          out.push(v);
        }
        return out;
      };
    }
    case T.DEFAULT: {
      const ps = parts();
      if (!ps || ps.length !== 2 || t.args[1].type === T.FUNC) return undefined;
      const [value, fallback] = ps;
      return (env) => {
        const v = value(env);
        return v === MISSING || v === null ? fallback(env) : v;
      };
    }
    case T.BRANCH: {
      const ps = parts();
      if (!ps || ps.length !== 3) return undefined;
      const [cond, yes, no] = ps;
      return (env) => {
        const c = cond(env);
        if (bad(c)) return c;
        return truthy(c) ? yes(env) : no(env);
      };
    }
    case T.HAS_FIELDS: {
      const names = t.args.slice(1).map((a) => (a.type === T.DATUM && typeof a.datum === 'string' ? a.datum : undefined));
      const src = compileBody(t.args[0]);
      if (!src || names.length === 0 || names.some((n) => n === undefined)) return undefined;
      return (env) => {
        const o = src(env);
        if (bad(o)) return o;
        if (!isObject(o)) return INTERPRET;
        return names.every((n) => o[n!] !== undefined && o[n!] !== null);
      };
    }
    case T.AND:
    case T.OR: {
      const ps = parts();
      if (!ps) return undefined;
      const and = t.type === T.AND;
      return (env) => {
        let last: Native = and;
        for (const p of ps) {
          last = p(env);
          if (bad(last)) return last;
          if (truthy(last) !== and) return last;
        }
        return last;
      };
    }
    case T.NOT: {
      const ps = parts();
      if (!ps || ps.length !== 1) return undefined;
      return (env) => {
        const v = ps[0](env);
        return bad(v) ? v : !truthy(v);
      };
    }
    case T.ADD: {
      const ps = parts();
      if (!ps || ps.length < 1) return undefined;
      return (env) => {
        const vals: Datum[] = [];
        for (const p of ps) {
          const v = p(env);
          if (bad(v)) return v;
          vals.push(v);
        }
        if (vals.every((v) => typeof v === 'string')) return vals.join('');
        if (vals.every((v) => typeof v === 'number')) return vals.reduce((a, b) => (a as number) + (b as number), 0);
        return INTERPRET; // arrays, times, errors: the interpreter's rules
      };
    }
    case T.MAP: {
      if (t.args.length !== 2) return undefined;
      const src = compileBody(t.args[0]);
      const f = compileFunc(t.args[1]);
      if (!src || !f) return undefined;
      return (env) => {
        const a = src(env);
        if (bad(a)) return a;
        if (!Array.isArray(a)) return INTERPRET;
        const out: Datum[] = [];
        for (const x of a) {
          const v = f([x], env);
          if (bad(v)) return v;
          out.push(v);
        }
        return out;
      };
    }
    default:
      return undefined;
  }
}
