// Databases, tables, indexes and the reads that use them: get, getAll, between.
import { randomUUID } from 'node:crypto';
import { hostname, networkInterfaces } from 'node:os';
import { isBound, isObject, MAXVAL, MINVAL, printDatum, typeName, type Datum, type DatumObject, type Key } from '../datum.js';
import { logicError, opFailed, opIndexMissing } from '../errors.js';
import { OpFamily, str, toDatum, valTypeName, type Ctx } from '../eval.js';
import { T } from '../termtypes.js';
import { DbVal, Func, Single, Stream, type Val } from '../values.js';
import { Table as TableClass, type Table } from '../../storage/table.js';
import type { Term } from '../term.js';

/** The table terms, joined into the engine's table by registry.ts. */
export const tableOps = new OpFamily('table');
const def = tableOps.def;

export const SERVER_NAME = 'embedded';
export const SERVER_ID = randomUUID();
const SYSTEM_DB = 'rethinkdb';

const NAME_RE = /^[A-Za-z0-9_-]+$/;
export function checkName(kind: 'Database' | 'Table' | 'Index', name: string): void {
  if (!NAME_RE.test(name)) throw logicError(`${kind} name \`${name}\` invalid (Use A-Z, a-z, 0-9, _ and - only).`);
}

function dbName(c: Ctx, v: Val): string {
  if (v instanceof DbVal) return v.name;
  throw logicError(`Expected type DATABASE but found ${valTypeName(v)}.`);
}

function requireDb(c: Ctx, name: string): void {
  if (name === SYSTEM_DB) return;
  if (!c.state.catalog.dbs.has(name)) throw opFailed(`Database \`${name}\` does not exist.`);
}

export function tableConfig(t: Table, c: Ctx): DatumObject {
  return {
    db: t.db,
    durability: t.durability,
    id: t.id,
    indexes: [...t.indexes.keys()].sort(),
    name: t.name,
    primary_key: t.primaryKey,
    shards: [{ nonvoting_replicas: [], primary_replica: SERVER_NAME, replicas: [SERVER_NAME] }],
    write_acks: 'majority',
    write_hook: null,
  };
  void c;
}

function tableStatus(t: Table): DatumObject {
  return {
    db: t.db,
    id: t.id,
    name: t.name,
    raft_leader: SERVER_NAME,
    shards: [{ primary_replicas: [SERVER_NAME], replicas: [{ server: SERVER_NAME, state: 'ready' }] }],
    status: { all_replicas_ready: true, ready_for_outdated_reads: true, ready_for_reads: true, ready_for_writes: true },
  };
}

function dbConfig(c: Ctx, name: string): DatumObject {
  const db = c.state.catalog.dbs.get(name)!;
  return { id: db.id, name: db.name };
}

// --- system tables (read-only views) ---
const STARTED = { $reql_type$: 'TIME', epoch_time: Math.floor(Date.now() / 1000), timezone: '+00:00' };

/**
 * This server's row of rethinkdb.server_status. Drivers' discovery (rethinkdb-ts connectPool)
 * connects to `canonical_addresses[].host` at `reql_port`, so both are where the wire server
 * listens; a wildcard bind lists this machine's interface addresses. There is no cluster port:
 * the canonical addresses carry the ReQL port too.
 */
function serverStatus(c: Ctx): DatumObject {
  const { host, port } = c.state.network;
  const wildcard = host === '0.0.0.0' || host === '::';
  const hosts = wildcard
    ? Object.values(networkInterfaces()).flatMap((list) => (list ?? []).filter((i) => host === '::' || i.family === 'IPv4').map((i) => i.address))
    : [host];
  return {
    id: SERVER_ID,
    name: SERVER_NAME,
    network: {
      hostname: hostname(),
      reql_port: port,
      cluster_port: port,
      http_admin_port: '<no http admin>',
      canonical_addresses: hosts.map((h) => ({ host: h, port })),
      time_connected: STARTED,
      connected_to: {},
    },
    process: { argv: [], cache_size_mb: 0, pid: process.pid, time_started: STARTED, version: 'rethinkdb 2.4.4 (embedded)' },
  };
}

/**
 * server_status as a read-only table a feed can watch (drivers' discovery does): one server,
 * whose row never changes while it runs, so a feed on it shows its initial value and then waits.
 */
const statusTables = new WeakMap<object, Table>();
function serverStatusStream(c: Ctx): Stream {
  let t = statusTables.get(c.state.catalog);
  if (!t) {
    t = new TableClass(randomUUID(), SYSTEM_DB, 'server_status', 'id');
    statusTables.set(c.state.catalog, t);
  }
  const row = serverStatus(c);
  t.load(SERVER_ID, row); // the address is known only once the wire server listens
  const table = t;
  // No `table` in the options: a selection of it would accept writes.
  return new Stream('TABLE', () => table.scan(), { feed: { table, source: { kind: 'table' }, transforms: [] } });
}

function systemTable(c: Ctx, name: string): Stream {
  if (name === 'server_status') return serverStatusStream(c);
  const rows = (): DatumObject[] => {
    const cat = c.state.catalog;
    switch (name) {
      case 'server_status':
        return [serverStatus(c)];
      case 'server_config':
        return [{ id: SERVER_ID, name: SERVER_NAME, tags: ['default'], cache_size_mb: 'auto' }];
      case 'db_config':
        return [...cat.dbs.values()].map((d) => ({ id: d.id, name: d.name }));
      case 'table_config':
        return [...cat.tables.values()].map((t) => tableConfig(t, c));
      case 'table_status':
        return [...cat.tables.values()].map(tableStatus);
      case 'jobs':
        return [...c.state.feeds.open].map((_, i) => ({ id: ['query', String(i)], type: 'query', info: { changefeed: true }, servers: [SERVER_NAME] }));
      case 'stats':
      case 'issues':
      case 'logs':
      case 'current_issues':
      case 'users':
      case 'permissions':
      case 'cluster_config':
        return [];
      default:
        throw opFailed(`Table \`rethinkdb.${name}\` does not exist.`);
    }
  };
  rows();
  return new Stream('TABLE', () => rows());
}

def(T.DB, 1, 1, (c, t) => {
  const name = str(c.datum(t.args[0]));
  checkName('Database', name);
  return new DbVal(name);
});

export function resolveTable(c: Ctx, dbv: string, name: string): Table {
  requireDb(c, dbv);
  const table = c.state.catalog.findTable(dbv, name);
  if (!table) throw opFailed(`Table \`${dbv}.${name}\` does not exist.`);
  return table;
}

export function tableStream(table: Table): Stream {
  return new Stream('TABLE', () => table.scan(), { table, feed: { table, source: { kind: 'table' }, transforms: [] } });
}

// `rethinkdb._debug_scratch` is a writable in-memory table, as in RethinkDB's test setups.
const scratch = new WeakMap<object, Table>();
function scratchTable(c: Ctx): Table {
  let t = scratch.get(c.state.catalog);
  if (!t) {
    t = new TableClass(randomUUID(), SYSTEM_DB, '_debug_scratch', 'id');
    scratch.set(c.state.catalog, t);
  }
  return t;
}

def(T.TABLE, 1, 2, (c, t) => {
  const [dbv, name] = t.args.length === 2 ? [dbName(c, c.ev(t.args[0])), str(c.datum(t.args[1]))] : [c.global.db, str(c.datum(t.args[0]))];
  if (dbv === SYSTEM_DB && name === '_debug_scratch') return tableStream(scratchTable(c));
  checkName('Table', name);
  if (dbv === SYSTEM_DB) return systemTable(c, name);
  return tableStream(resolveTable(c, dbv, name));
}, ['read_mode', 'identifier_format', 'use_outdated']);

export function tableOf(c: Ctx, v: Val, op: string): Table {
  if (v instanceof Stream && v.typeName === 'TABLE' && v.opts.table) return v.opts.table;
  void op;
  if (v instanceof Stream) throw logicError(`Expected type TABLE but found ${v.typeName}:\n<stream>`);
  if (v instanceof DbVal || v instanceof Func) throw logicError(`Expected type TABLE but found ${valTypeName(v)}.`);
  throw logicError(`Expected type TABLE but found DATUM:\n${printDatum(toDatum(v, c))}`);
}

export function checkPrimaryKey(k: Datum): void {
  if (k === null || (isObject(k) && k.$reql_type$ === undefined)) {
    throw logicError(`Primary keys must be either a number, string, bool, pseudotype or array (got type ${typeName(k)}):\n${JSON.stringify(k)}`);
  }
}

def(T.GET, 2, 2, (c, t) => {
  const table = tableOf(c, c.ev(t.args[0]), 'get');
  const key = c.datum(t.args[1]);
  checkPrimaryKey(key);
  return new Single(table, key, { table, source: { kind: 'point', key }, transforms: [] });
});

def(T.GET_ALL, 1, Infinity, (c, t) => {
  const [tv, ...rest] = c.args(t);
  const table = tableOf(c, tv, 'getAll');
  const keys = rest.map((k) => toDatum(k, c));
  const index = t.optargs.index ? str(c.datum(t.optargs.index)) : table.primaryKey;
  if (index !== table.primaryKey && !table.indexes.has(index)) throw opIndexMissing(table, index);
  const iter = function* (): Iterable<Datum> {
    for (const k of keys) {
      if (index === table.primaryKey) {
        const row = table.get(k);
        if (row) yield row;
      } else yield* table.indexRows(index, k, k, false, false);
    }
  };
  return new Stream('SELECTION<STREAM>', iter, { table, feed: { table, source: { kind: 'getAll', index, keys }, transforms: [] } });
}, ['index']);

def(T.BETWEEN, 3, 3, (c, t) => {
  const src = c.ev(t.args[0]);
  if (src instanceof Stream && src.opts.between) throw logicError('Cannot perform multiple BETWEENs on the same table.');
  if (!(src instanceof Stream) || !src.opts.table || !(src.typeName === 'TABLE' || src.typeName === 'TABLE_SLICE')) {
    throw logicError(`Expected type TABLE_SLICE but found ${valTypeName(src)}.`);
  }
  const table = src.opts.table;
  const lo = c.ev(t.args[1]) as Key;
  const hi = c.ev(t.args[2]) as Key;
  for (const b of [lo, hi]) if (!isBound(b)) toDatum(b as Val, c);
  const index = t.optargs.index ? str(c.datum(t.optargs.index)) : table.primaryKey;
  const loOpen = c.opt(t, 'left_bound') === 'open';
  const hiOpen = c.opt(t, 'right_bound') !== 'closed';
  for (const [name, v] of [['left_bound', c.opt(t, 'left_bound')], ['right_bound', c.opt(t, 'right_bound')]] as const) {
    if (v !== undefined && v !== 'open' && v !== 'closed') throw logicError(`Expected \`open\` or \`closed\` for optarg \`${name}\` (got \`${JSON.stringify(v)}\`).`);
  }
  if (index !== table.primaryKey && !table.indexes.has(index)) throw opIndexMissing(table, index);
  const ordered = src.opts.ordered;
  if (ordered && ordered.index !== index) throw logicError(`Cannot order by index \`${ordered.index}\` after calling BETWEEN on index \`${index}\`.`);
  const desc = ordered?.desc ?? false;
  const iter = (): Iterable<Datum> => {
    if (index === table.primaryKey) return table.primaryRange(lo, hi, loOpen, hiOpen, desc);
    return (function* () {
      const seen = table.indexes.get(index)!.def.multi ? new Set<string>() : undefined;
      for (const row of table.indexRows(index, lo, hi, loOpen, hiOpen, desc)) {
        if (seen) {
          const k = JSON.stringify(row[table.primaryKey]);
          if (seen.has(k)) continue;
          seen.add(k);
        }
        yield row;
      }
    })();
  };
  return new Stream('TABLE_SLICE', iter, {
    table,
    between: true,
    ordered,
    feed: { table, source: { kind: 'between', index, lo, hi, loOpen, hiOpen }, transforms: [] },
  });
}, ['index', 'left_bound', 'right_bound']);

// --- admin ---
def(T.DB_CREATE, 1, 1, (c, t) => {
  const name = str(c.datum(t.args[0]));
  checkName('Database', name);
  if (name === SYSTEM_DB || c.state.catalog.dbs.has(name)) throw opFailed(`Database \`${name}\` already exists.`);
  const p = c.state.catalog.createDb(name);
  c.pending.push(p.then(() => undefined));
  const db = c.state.catalog.dbs.get(name)!;
  return { dbs_created: 1, config_changes: [{ old_val: null, new_val: { id: db.id, name } }] };
});

def(T.DB_DROP, 1, 1, (c, t) => {
  const name = str(c.datum(t.args[0]));
  checkName('Database', name);
  if (name === SYSTEM_DB) throw logicError('Database `rethinkdb` is special; you can\'t delete it.');
  requireDb(c, name);
  const old = dbConfig(c, name);
  const { tables, done } = c.state.catalog.dropDb(name);
  for (const tb of tables) abortFeeds(c, tb);
  c.pending.push(done);
  return { dbs_dropped: 1, tables_dropped: tables.length, config_changes: [{ old_val: old, new_val: null }] };
});

def(T.DB_LIST, 0, 0, (c) => [SYSTEM_DB, ...c.state.catalog.dbs.keys()].sort());

function dbArg(c: Ctx, t: Term, n: number): [string, Term[]] {
  // tableCreate/tableDrop/tableList take an optional leading db.
  if (t.args.length > n) return [dbName(c, c.ev(t.args[0])), t.args.slice(1)];
  return [c.global.db, t.args];
}

def(T.TABLE_CREATE, 1, 2, (c, t) => {
  const [dbv, rest] = dbArg(c, t, 1);
  const name = str(c.datum(rest[0]));
  checkName('Table', name);
  if (dbv === SYSTEM_DB) throw logicError('Database `rethinkdb` is special; you can\'t create new tables in it.');
  requireDb(c, dbv);
  const pk = t.optargs.primary_key ? str(c.datum(t.optargs.primary_key)) : 'id';
  const durability = c.opt(t, 'durability') ?? 'hard';
  if (durability !== 'hard' && durability !== 'soft') throw logicError(`Durability option \`${durability}\` unrecognized (options are "hard" and "soft").`);
  const shards = c.opt(t, 'shards');
  if (shards !== undefined && (typeof shards !== 'number' || shards < 1)) throw logicError('Every table must have at least one shard.');
  oneReplicaOnly(c, t);
  if (c.state.catalog.findTable(dbv, name)) throw opFailed(`Table \`${dbv}.${name}\` already exists.`);
  const { table, done } = c.state.catalog.createTable(dbv, name, pk, durability);
  c.pending.push(done);
  return { tables_created: 1, config_changes: [{ old_val: null, new_val: tableConfig(table, c) }] };
}, ['primary_key', 'durability', 'shards', 'replicas', 'primary_replica_tag', 'nonvoting_replica_tags']);

function abortFeeds(c: Ctx, table: Table): void {
  for (const f of [...c.state.feeds.open]) if ((f as unknown as { feed: { spec: { table: Table } } }).feed.spec.table === table) f.abort(`The table \`${table.db}.${table.name}\` was dropped.`);
}

def(T.TABLE_DROP, 1, 2, (c, t) => {
  const [dbv, rest] = dbArg(c, t, 1);
  const name = str(c.datum(rest[0]));
  checkName('Table', name);
  const table = resolveTable(c, dbv, name);
  const old = tableConfig(table, c);
  abortFeeds(c, table);
  c.pending.push(c.state.catalog.dropTable(table));
  return { tables_dropped: 1, config_changes: [{ old_val: old, new_val: null }] };
});

def(T.TABLE_LIST, 0, 1, (c, t) => {
  const [dbv] = dbArg(c, t, 0);
  if (dbv === SYSTEM_DB) return ['cluster_config', 'current_issues', 'db_config', 'jobs', 'logs', 'permissions', 'server_config', 'server_status', 'stats', 'table_config', 'table_status', 'users'];
  requireDb(c, dbv);
  return c.state.catalog.tablesOf(dbv).map((x) => x.name).sort();
});

def(T.CONFIG, 1, 1, (c, t) => {
  const v = c.ev(t.args[0]);
  if (v instanceof DbVal) {
    requireDb(c, v.name);
    return dbConfig(c, v.name);
  }
  return tableConfig(tableOf(c, v, 'config'), c);
});

def(T.STATUS, 1, 1, (c, t) => tableStatus(tableOf(c, c.ev(t.args[0]), 'status')));

def(T.WAIT, 0, 1, (c, t) => {
  if (t.args.length === 0) return { ready: c.state.catalog.tables.size };
  const v = c.ev(t.args[0]);
  if (v instanceof DbVal) {
    requireDb(c, v.name);
    return { ready: c.state.catalog.tablesOf(v.name).length };
  }
  tableOf(c, v, 'wait');
  return { ready: 1 };
}, ['wait_for', 'timeout']);

def(T.SYNC, 1, 1, (c, t) => {
  tableOf(c, c.ev(t.args[0]), 'sync');
  c.pending.push(c.state.catalog.sync());
  return { synced: 1 };
});

/** One server holds one copy: more is refused as RethinkDB refuses it on a single node. */
function oneReplicaOnly(c: Ctx, t: Term): void {
  const replicas = c.opt(t, 'replicas');
  if (typeof replicas === 'number' && replicas > 1) {
    throw opFailed(`Can't put ${replicas} replicas on servers with the tag \`default\` because there are only 1 servers with the tag \`default\`. It's impossible to have more replicas of the data than there are servers.`);
  }
}

def(T.RECONFIGURE, 1, 1, (c, t) => {
  const v = c.ev(t.args[0]);
  const tables = v instanceof DbVal ? c.state.catalog.tablesOf(v.name) : [tableOf(c, v, 'reconfigure')];
  oneReplicaOnly(c, t);
  const dry = c.opt(t, 'dry_run') === true;
  return { reconfigured: dry ? 0 : tables.length, config_changes: tables.map((tb) => ({ old_val: tableConfig(tb, c), new_val: tableConfig(tb, c) })), status_changes: [] };
}, ['shards', 'replicas', 'primary_replica_tag', 'nonvoting_replica_tags', 'dry_run', 'emergency_repair']);

def(T.REBALANCE, 1, 1, (c, t) => {
  const v = c.ev(t.args[0]);
  const tables = v instanceof DbVal ? c.state.catalog.tablesOf(v.name) : [tableOf(c, v, 'rebalance')];
  return { rebalanced: tables.length, status_changes: [] };
});

// --- secondary indexes ---
def(T.INDEX_CREATE, 2, 3, (c, t) => {
  const table = tableOf(c, c.ev(t.args[0]), 'indexCreate');
  const name = str(c.datum(t.args[1]));
  checkName('Index', name);
  if (name === table.primaryKey) throw logicError(`Index name conflict: \`${name}\` is the name of the primary key.`);
  if (table.indexes.has(name)) throw opFailed(`Index \`${name}\` already exists on table \`${table.db}.${table.name}\`.`);
  let fn: unknown;
  if (t.args[2]) {
    const f = t.args[2];
    if (f.type === T.BINARY || f.type === T.DATUM) {
      const b = c.datum(f);
      if (isObject(b) && b.$reql_type$ === 'BINARY') fn = JSON.parse(Buffer.from(b.data as string, 'base64').toString('utf8'));
      else fn = termToRaw(wrapConst(f));
    } else fn = termToRaw(f.type === T.FUNC ? f : wrapConst(f));
  } else {
    // The default index function reads the field of the same name.
    fn = [T.FUNC, [[T.MAKE_ARRAY, [1]], [T.GET_FIELD, [[T.VAR, [1]], name]]]];
  }
  const multi = c.opt(t, 'multi') === true;
  const geo = c.opt(t, 'geo') === true;
  if (geo) throw logicError('Geospatial indexes are not supported by the embedded ReQL server.');
  c.pending.push(c.state.catalog.createIndex(table, { name, fn, multi, geo }));
  return { created: 1 };
}, ['multi', 'geo']);

function wrapConst(body: Term): Term {
  // A non-function index spec like r.row('x') becomes a one-argument function of the row.
  return { type: T.FUNC, args: [{ type: T.MAKE_ARRAY, args: [{ type: T.DATUM, args: [], optargs: {}, datum: 1 }], optargs: {} }, replaceImplicit(body)], optargs: {} };
}
function replaceImplicit(t: Term): Term {
  if (t.type === T.IMPLICIT_VAR) return { type: T.VAR, args: [{ type: T.DATUM, args: [], optargs: {}, datum: 1 }], optargs: {} };
  if (t.type === T.FUNC) return t;
  return { ...t, args: t.args.map(replaceImplicit), optargs: Object.fromEntries(Object.entries(t.optargs).map(([k, v]) => [k, replaceImplicit(v)])) };
}

export function termToRaw(t: Term): unknown {
  if (t.type === T.DATUM) return Array.isArray(t.datum) ? [T.MAKE_ARRAY, t.datum] : t.datum;
  if (t.type === T.MAKE_OBJ) return Object.fromEntries(Object.entries(t.optargs).map(([k, v]) => [k, termToRaw(v)]));
  const raw: unknown[] = [t.type, t.args.map(termToRaw)];
  if (Object.keys(t.optargs).length) raw.push(Object.fromEntries(Object.entries(t.optargs).map(([k, v]) => [k, termToRaw(v)])));
  return raw;
}

def(T.INDEX_DROP, 2, 2, (c, t) => {
  const table = tableOf(c, c.ev(t.args[0]), 'indexDrop');
  const name = str(c.datum(t.args[1]));
  if (!table.indexes.has(name)) throw opFailed(`Index \`${name}\` does not exist on table \`${table.db}.${table.name}\`.`);
  c.pending.push(c.state.catalog.dropIndex(table, name));
  return { dropped: 1 };
});

def(T.INDEX_LIST, 1, 1, (c, t) => [...tableOf(c, c.ev(t.args[0]), 'indexList').indexes.keys()].sort());

def(T.INDEX_RENAME, 3, 3, (c, t) => {
  const table = tableOf(c, c.ev(t.args[0]), 'indexRename');
  const from = str(c.datum(t.args[1]));
  const to = str(c.datum(t.args[2]));
  checkName('Index', to);
  const overwrite = c.opt(t, 'overwrite') === true;
  if (from === table.primaryKey || to === table.primaryKey) throw logicError('Index name conflict: `' + table.primaryKey + '` is the name of the primary key.');
  if (!table.indexes.has(from) || (table.indexes.has(to) && !overwrite && from !== to)) {
    throw opFailed(`Index \`${from}\` does not exist or index \`${to}\` already exists on table \`${table.db}.${table.name}\`.`);
  }
  if (from === to) return { renamed: 0 };
  if (table.indexes.has(to)) c.pending.push(c.state.catalog.dropIndex(table, to));
  c.pending.push(c.state.catalog.renameIndex(table, from, to));
  return { renamed: 1 };
}, ['overwrite']);

function indexStatuses(c: Ctx, t: Term, op: string): DatumObject[] {
  const [tv, ...names] = c.args(t);
  const table = tableOf(c, tv, op);
  const wanted = names.map((n) => str(toDatum(n, c)));
  for (const n of wanted) if (!table.indexes.has(n)) throw opFailed(`Index \`${n}\` was not found on table \`${table.db}.${table.name}\`.`);
  const list = wanted.length ? wanted : [...table.indexes.keys()].sort();
  return list.map((n) => {
    const idx = table.indexes.get(n)!;
    return {
      index: n,
      ready: true,
      function: { $reql_type$: 'BINARY', data: Buffer.from(JSON.stringify(idx.def.fn)).toString('base64') },
      multi: idx.def.multi,
      geo: idx.def.geo,
      outdated: false,
      query: `indexCreate('${n}', ...)`,
    };
  });
}
def(T.INDEX_STATUS, 1, Infinity, (c, t) => indexStatuses(c, t, 'indexStatus'));
def(T.INDEX_WAIT, 1, Infinity, (c, t) => indexStatuses(c, t, 'indexWait'));

export { Func, MINVAL, MAXVAL };
