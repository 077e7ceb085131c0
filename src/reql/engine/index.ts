// The query engine: parses a START query, evaluates it, and turns the value into an atom or a
// cursor. The terms it knows are the table built by registry.ts.
import type { Cursor, Datum, Engine, QueryContext, QueryResult } from './api.js';
import { isBound, isObject } from './datum.js';
import { compileError, internalError, logicError, ReqlError } from './errors.js';
import { Ctx, toDatum, valTypeName, type EngineState, type GlobalOpts } from './eval.js';
import { FeedHub, openFeed } from './feeds.js';
import { buildOpTable } from './registry.js';
import { parseTerm, type Term } from './term.js';
import { Catalog } from '../storage/catalog.js';
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
  stats(): { openFeeds: number; tables: number };
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
    const f = native ? undefined : ctx.ev(term);
    return (row) => {
      let v: Datum;
      try {
        v = native ? native(row) : ctx.callDatum(f as Val, [row]);
      } catch {
        return [];
      }
      // Rows whose index value is null, minval or maxval are not in the index.
      if (v === null || isBound(v)) return [];
      if (def.multi && Array.isArray(v)) {
        const seen = new Set<string>();
        return v.filter((x) => {
          const k = JSON.stringify(x);
          if (x === null || isBound(x) || seen.has(k)) return false;
          seen.add(k);
          return true;
        });
      }
      return [v];
    };
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
    stats: () => ({ openFeeds: live.feeds.open.size, tables: catalog.tables.size }),
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

/**
 * Index functions are evaluated for every row on every write and on restart. The common
 * shapes — a field, or an array of fields (compound index) — compile to plain JS; anything
 * else runs through the interpreter. A thrown error means "not in the index", as there.
 */
function compileNative(fn: Term): ((row: Datum) => Datum) | undefined {
  if (fn.type !== T.FUNC) return undefined;
  const params = fn.args[0];
  const ids = params.type === T.MAKE_ARRAY ? params.args.map((a) => a.datum) : params.datum;
  if (!Array.isArray(ids) || ids.length !== 1) return undefined;
  const param = ids[0];
  const compile = (t: Term): ((row: Datum) => Datum) | undefined => {
    if (t.type === T.DATUM) {
      const d = t.datum as Datum;
      return () => d;
    }
    if (t.type === T.VAR && t.args[0]?.datum === param) return (row) => row;
    if ((t.type === T.GET_FIELD || t.type === T.BRACKET) && t.args[1]?.type === T.DATUM && typeof t.args[1].datum === 'string') {
      const inner = compile(t.args[0]);
      const field = t.args[1].datum;
      if (!inner) return undefined;
      return (row) => {
        const o = inner(row);
        const v = isObject(o) ? o[field] : undefined;
        if (v === undefined) throw new Error('missing field');
        return v;
      };
    }
    if (t.type === T.MAKE_ARRAY && Object.keys(t.optargs).length === 0) {
      const parts = t.args.map(compile);
      if (parts.some((p) => !p)) return undefined;
      return (row) => parts.map((p) => p!(row));
    }
    return undefined;
  };
  return compile(fn.args[1]);
}
