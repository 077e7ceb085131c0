// The whole deployment as the database sees it, the same whoever asks: the app processes
// (their heartbeat rows, judged by the database's clock), the database servers, each table of
// the app's database with its replicas and readiness, the issues the database reports, and
// the embedded database's size on disk. `npm run status` prints it; GET /api/admin/status
// answers it. A part the server cannot tell is left out and named in `unavailable`.
import { r } from 'rethinkdb-ts';
import type { Pool } from '../db/pool.js';
import { PROCESSES } from '../db/schema.js';
import { dirBytes, MISSED_BEATS, processRow } from './heartbeat.js';

export interface ProcessStatus {
  id: string;
  dyno: string;
  host: string;
  pid: number;
  started: string;
  uptimeSeconds: number;
  /** seconds since its last beat, by the database's clock */
  lastBeatSecondsAgo: number;
  /** it beat within the last three intervals; otherwise it stopped without saying so (killed,
   *  cut off from the database) in the last few minutes */
  alive: boolean;
  sockets: number;
  feeds: { rooms: number; subscribers: number; openFeeds: number };
  version: string;
  commit?: string;
  node: string;
}

export interface ServerStatus {
  name: string;
  version: string;
  /** what the server says; the embedded server runs inside a process and says less */
  hostname?: string;
  pid?: number;
  started?: string;
  uptimeSeconds?: number;
  /** the other servers it is connected to (a cluster) */
  connectedTo: string[];
}

export interface TableStatus {
  name: string;
  shards: Array<{ primaryReplicas: string[]; replicas: Array<{ server: string; state: string }> }>;
  replicas: number;
  ready: boolean;
  readyForReads: boolean;
  readyForWrites: boolean;
  /** documents in it (the embedded server counts them at no cost; RethinkDB would scan) */
  rows?: number;
  /** bytes of data on disk over all its replicas (RethinkDB's stats) */
  dataBytes?: number;
}

export interface Issue {
  type: string;
  critical: boolean;
  description: string;
}

export interface Status {
  /** the database's clock when read */
  at: string;
  database: { kind: 'rethinkdb' | 'embedded'; db: string };
  /** alive first, then the recently gone; each by dyno name */
  processes: ProcessStatus[];
  servers: ServerStatus[];
  tables: TableStatus[];
  issues: Issue[];
  /** the embedded database's directory and the bytes in it */
  embedded?: { dataDir: string; bytes: number };
  /** parts this server could not tell, and why */
  unavailable: string[];
}

export interface StatusOptions {
  /** the embedded database's directory, when the caller holds it (measured here) */
  embeddedDataDir?: string;
}

const EMBEDDED_VERSION = /\(embedded\)/;

type Run = Pick<Pool, 'run'>;

interface RawServer {
  name: string;
  network?: { hostname?: string; connected_to?: Record<string, boolean> };
  process?: { pid?: number; time_started?: Date | string; version?: string };
}
interface RawTable {
  name: string;
  shards: Array<{ primary_replicas: string[]; replicas: Array<{ server: string; state: string }> }> | null;
  status: { all_replicas_ready: boolean; ready_for_reads: boolean; ready_for_writes: boolean };
}
interface RawStat {
  id: unknown[];
  table?: string;
  storage_engine?: { disk?: { space_usage?: { data_bytes?: number } } };
}

/** Reads it all. Rejects only when the database does not answer at all. */
export async function readStatus(pool: Run, db: string, opts: StatusOptions = {}): Promise<Status> {
  const now = new Date(await pool.run(r.now()));
  const unavailable: string[] = [];
  const part = async <T>(what: string, read: () => Promise<T>, fallback: T): Promise<T> => {
    try {
      return await read();
    } catch (e) {
      // ReQL's messages end with the query ("... in:\n r.db(...)"): the first line says it.
      unavailable.push(`${what}: ${(e as Error).message.split('\n')[0].replace(/\s+in:$/, '')}`);
      return fallback;
    }
  };
  const seconds = (from: Date) => Math.max(0, Math.round((now.getTime() - from.getTime()) / 100) / 10);

  const rawServers = await part('servers', () => pool.run(r.db('rethinkdb').table('server_status').coerceTo('array')) as Promise<RawServer[]>, []);
  const embedded = rawServers.some((s) => EMBEDDED_VERSION.test(s.process?.version ?? ''));
  const servers = rawServers.map((s): ServerStatus => {
    const started = s.process?.time_started === undefined ? undefined : new Date(s.process.time_started);
    // The embedded server's row is a stand-in for RethinkDB's: its host, start and port are
    // not its own. The process running it is in `processes`.
    const own = !embedded && started !== undefined;
    return {
      name: s.name,
      version: s.process?.version ?? 'unknown',
      ...(own ? { hostname: s.network?.hostname, pid: s.process?.pid, started: started.toISOString(), uptimeSeconds: seconds(started) } : {}),
      connectedTo: Object.entries(s.network?.connected_to ?? {}).filter(([, up]) => up).map(([name]) => name).sort(),
    };
  });

  const hasProcesses = await pool.run(r.branch(r.dbList().contains(db), r.db(db).tableList().contains(PROCESSES), false));
  if (!hasProcesses) unavailable.push(`processes: the database ${db} has no ${PROCESSES} table: no app process of this version has started on it`);
  const rows = !hasProcesses ? [] : await part('processes', async () => ((await pool.run(r.db(db).table(PROCESSES).coerceTo('array'))) as unknown[]).flatMap((raw) => {
    const p = processRow.safeParse(raw);
    return p.success ? [p.data] : [];
  }), []);
  const processes = rows
    .map((p): ProcessStatus => {
      const ago = seconds(p.beat);
      return {
        id: p.id,
        dyno: p.dyno,
        host: p.host,
        pid: p.pid,
        started: p.started.toISOString(),
        uptimeSeconds: seconds(p.started),
        lastBeatSecondsAgo: ago,
        alive: ago <= MISSED_BEATS * p.every,
        sockets: p.sockets,
        feeds: p.feeds,
        version: p.version,
        ...(p.commit ? { commit: p.commit } : {}),
        node: p.node,
      };
    })
    .sort((a, b) => Number(b.alive) - Number(a.alive) || a.dyno.localeCompare(b.dyno) || a.started.localeCompare(b.started));

  const tables = await part('tables', () => readTables(pool, db, embedded), []);
  const issues = await part(
    'issues',
    async () => ((await pool.run(r.db('rethinkdb').table('current_issues').coerceTo('array'))) as Issue[]).map((i) => ({ type: i.type, critical: i.critical, description: i.description })),
    [],
  );

  // The size on disk: measured here when this caller holds the directory, else as the
  // process running the embedded database last reported it.
  let size: Status['embedded'];
  if (opts.embeddedDataDir !== undefined) size = { dataDir: opts.embeddedDataDir, bytes: await dirBytes(opts.embeddedDataDir) };
  else {
    const host = rows.find((p) => p.embedded && seconds(p.beat) <= MISSED_BEATS * p.every);
    if (host?.embedded) size = host.embedded;
    else if (embedded) unavailable.push('embedded data size: no app process runs the embedded database (it runs on its own, as `npm run db` does): see its data directory where it runs');
  }

  return {
    at: now.toISOString(),
    database: { kind: embedded ? 'embedded' : 'rethinkdb', db },
    processes,
    servers,
    tables,
    issues,
    ...(size ? { embedded: size } : {}),
    unavailable,
  };
}

async function readTables(pool: Run, db: string, embedded: boolean): Promise<TableStatus[]> {
  const raw = (await pool.run(r.db('rethinkdb').table('table_status').filter({ db }).coerceTo('array'))) as RawTable[];
  const bytes = new Map<string, number>();
  if (!embedded) {
    // One row per table and server; a server that cannot be reached has no figures.
    const stats = (await pool.run(r.db('rethinkdb').table('stats').filter({ db }).coerceTo('array'))) as RawStat[];
    for (const s of stats) {
      const used = s.storage_engine?.disk?.space_usage?.data_bytes;
      if (s.id[0] === 'table_server' && s.table && typeof used === 'number') bytes.set(s.table, (bytes.get(s.table) ?? 0) + used);
    }
  }
  const out: TableStatus[] = [];
  for (const t of raw.sort((a, b) => a.name.localeCompare(b.name))) {
    const shards = (t.shards ?? []).map((s) => ({ primaryReplicas: s.primary_replicas, replicas: s.replicas.map((x) => ({ server: x.server, state: x.state })) }));
    out.push({
      name: t.name,
      shards,
      replicas: Math.max(0, ...shards.map((s) => s.replicas.length)),
      ready: t.status.all_replicas_ready,
      readyForReads: t.status.ready_for_reads,
      readyForWrites: t.status.ready_for_writes,
      ...(embedded ? { rows: await pool.run(r.db(db).table(t.name).count()) } : {}),
      ...(bytes.has(t.name) ? { dataBytes: bytes.get(t.name) } : {}),
    });
  }
  return out;
}
