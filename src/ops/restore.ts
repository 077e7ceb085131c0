// Restoring a backup into an empty database. The archive is read twice: first to check it
// against its manifest (a corrupt or cut archive is refused before anything is written),
// then to insert its rows in batches, into tables created with the archive's primary keys.
// The indexes are made before the rows go in: by the code's own schema (ensureSchema), and
// an index the archive names that the code does not declare (one made by hand) from the
// definition the server gave at backup time, when this kind of server can read it.
import { r, type Connection } from 'rethinkdb-ts';
import type { Logger } from 'pino';
import { ensureSchema, type Layout } from '../db/schema.js';
import { archiveLines, verifyArchive, type Header, type Manifest, type TableEntry } from './archive.js';
import type { Progress } from './progress.js';

/** rows a batch, and a cap on its JSON, for tables of large rows (file chunks) */
const BATCH = { rows: 1000, bytes: 4 * 1024 * 1024 };
/** inserts in flight at once on the connection */
const IN_FLIGHT = 4;

export class TargetNotEmptyError extends Error {
  override name = 'TargetNotEmptyError';
}

export interface RestoreOptions {
  log: Logger;
  /** replace the archive's tables where the target has rows in them */
  force?: boolean;
  /** replicas and shards of the tables created (RETHINKDB_REPLICAS, RETHINKDB_SHARDS) */
  layout?: Layout;
  /** how long a schema lock may stand before it is taken for a crashed holder's */
  schemaLockStaleMs?: number;
  progress?: (phase: 'verifying' | 'restoring', total: number) => Progress;
}

export interface RestoreResult {
  header: Header;
  manifest: Manifest;
  /** tables of the target that held rows and were replaced (with force) */
  replaced: string[];
  seconds: { verify: number; prepare: number; write: number; check: number; total: number };
}

/** The tables of `db` that hold at least one row. */
async function tablesWithRows(conn: Connection, db: string): Promise<string[]> {
  if (!(await r.dbList().run(conn)).includes(db)) return [];
  const out = [];
  for (const t of (await r.db(db).tableList().run(conn)).sort()) {
    if (!(await r.db(db).table(t).isEmpty().run(conn))) out.push(t);
  }
  return out;
}

/** Makes the archive's tables in `db`, empty, with their primary keys. */
async function prepareTables(conn: Connection, db: string, tables: TableEntry[], replace: string[], layout: Layout): Promise<void> {
  if (!(await r.dbList().run(conn)).includes(db)) await r.dbCreate(db).run(conn);
  const existing = new Set(await r.db(db).tableList().run(conn));
  const shape = { ...(layout.replicas ? { replicas: layout.replicas } : {}), ...(layout.shards ? { shards: layout.shards } : {}) };
  // Each table on its own (a real RethinkDB takes a while over each), all at once.
  await Promise.all(
    tables.map(async (t) => {
      if (existing.has(t.name)) {
        const info = (await r.db(db).table(t.name).info().run(conn)) as { primary_key: string };
        if (!replace.includes(t.name) && info.primary_key === t.primaryKey) return;
        await r.db(db).tableDrop(t.name).run(conn);
      }
      await r.db(db).tableCreate(t.name, { primaryKey: t.primaryKey, ...shape }).run(conn);
    }),
  );
  for (const t of tables) await r.db(db).table(t.name).wait({ waitFor: 'ready_for_writes' }).run(conn);
}

interface InsertResult {
  inserted: number;
  errors: number;
  first_error?: string;
}

/** The archive's rows into their tables, a batch at a time, a few batches in flight. */
async function writeRows(conn: Connection, db: string, file: string, bar: Progress | undefined): Promise<void> {
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  let rows = 0;
  let bytes = 0;
  const send = (table: string, batch: unknown[]) => {
    const p: Promise<void> = r
      .db(db)
      .table(table)
      .insert(batch, { conflict: 'error', durability: 'soft' })
      .run(conn)
      .then((res: InsertResult) => {
        if (res.errors > 0 || res.inserted !== batch.length) throw new Error(`inserting into ${table}: ${res.first_error ?? `${res.inserted} of ${batch.length} rows inserted`}`);
      })
      .catch((e: unknown) => {
        failure ??= e;
      })
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
  };
  let table = '';
  let batch: unknown[] = [];
  let batchBytes = 0;
  let first = true;
  for await (const line of archiveLines(file)) {
    if (first) {
      first = false; // the header
      continue;
    }
    if (line.startsWith('{"manifest":')) break;
    const { t, row } = JSON.parse(line) as { t: string; row: unknown };
    if (t !== table || batch.length >= BATCH.rows || batchBytes >= BATCH.bytes) {
      if (batch.length) send(table, batch);
      table = t;
      batch = [];
      batchBytes = 0;
      while (inFlight.size >= IN_FLIGHT) await Promise.race(inFlight);
      if (failure) break;
    }
    batch.push(row);
    batchBytes += line.length;
    rows++;
    bytes += Buffer.byteLength(line);
    if (rows % 1000 === 0) bar?.update(rows, bytes);
  }
  if (batch.length && !failure) send(table, batch);
  await Promise.all(inFlight);
  if (failure) throw failure;
  bar?.update(rows, bytes);
}

/**
 * Every index the archive names, made while the tables are empty (both servers fill an index
 * as rows go in faster than they build one afterwards): the code's own declaration first,
 * then any other from the definition the server gave at backup time.
 */
async function makeIndexes(conn: Connection, db: string, header: Header, opts: RestoreOptions): Promise<void> {
  await ensureSchema(conn, db, { log: opts.log, staleMs: opts.schemaLockStaleMs ?? 60_000, layout: opts.layout });
  for (const t of header.tables) {
    const have = new Set(await r.db(db).table(t.name).indexList().run(conn));
    for (const idx of t.indexes) {
      if (have.has(idx.index)) continue;
      if (!idx.function) throw new Error(`the index ${t.name}.${idx.index} is not declared by this version of the app, and the archive holds no definition of it`);
      try {
        await r.db(db).table(t.name).indexCreate(idx.index, r.binary(Buffer.from(idx.function.data, 'base64')), { multi: idx.multi, geo: idx.geo }).run(conn);
      } catch (e) {
        throw new Error(`the index ${t.name}.${idx.index} is not declared by this version of the app, and this database server cannot build it from the archive's definition (made on another kind of server?): ${(e as Error).message}. Its definition was: ${idx.query ?? '(unknown)'}`);
      }
    }
  }
}

/** After the rows: every index the archive names is ready, every table holds what it should. */
async function check(conn: Connection, db: string, header: Header, manifest: Manifest): Promise<void> {
  for (const t of header.tables) {
    const status = (await r.db(db).table(t.name).indexWait().run(conn)) as Array<{ index: string; ready: boolean }>;
    for (const idx of t.indexes) {
      if (!status.some((s) => s.index === idx.index && s.ready)) throw new Error(`the index ${t.name}.${idx.index} is not ready after the restore`);
    }
    const n = Number(await r.db(db).table(t.name).count().run(conn));
    const want = manifest.tables[t.name].rows;
    if (n !== want) throw new Error(`after the restore the table ${t.name} holds ${n} rows, the archive ${want}: was something writing to ${db} meanwhile?`);
  }
}

/**
 * Restores `file` into `db`, which must be empty (no table with rows) unless `force`: then
 * the archive's tables that hold rows are dropped and made again. Tables of the target that
 * the archive does not have are left as they are.
 */
export async function restore(conn: Connection, db: string, file: string, opts: RestoreOptions): Promise<RestoreResult> {
  const t0 = performance.now();
  const withRows = await tablesWithRows(conn, db);
  if (withRows.length > 0 && !opts.force) {
    throw new TargetNotEmptyError(`the database ${db} is not empty (rows in ${withRows.join(', ')}): restore into an empty database, or add --force to replace those of its tables that the archive holds`);
  }

  let bar = opts.progress?.('verifying', 0);
  const { header, manifest } = await verifyArchive(file, (rows, bytes) => bar?.update(rows, bytes));
  bar?.done();
  const t1 = performance.now();

  // Looked at again: a process may have written since the first look.
  const names = new Set(header.tables.map((t) => t.name));
  const nowWithRows = await tablesWithRows(conn, db);
  if (nowWithRows.length > 0 && !opts.force) throw new TargetNotEmptyError(`the database ${db} has been written to meanwhile (rows in ${nowWithRows.join(', ')}): is the app running on it?`);
  const replaced = nowWithRows.filter((t) => names.has(t));
  await prepareTables(conn, db, header.tables, replaced, opts.layout ?? {});
  await makeIndexes(conn, db, header, opts);
  const t2 = performance.now();

  bar = opts.progress?.('restoring', manifest.rows);
  await writeRows(conn, db, file, bar);
  for (const t of header.tables) await r.db(db).table(t.name).sync().run(conn);
  bar?.done();
  const t3 = performance.now();

  await check(conn, db, header, manifest);
  const t4 = performance.now();
  const s = (a: number, b: number) => (b - a) / 1000;
  return { header, manifest, replaced, seconds: { verify: s(t0, t1), prepare: s(t1, t2), write: s(t2, t3), check: s(t3, t4), total: s(t0, t4) } };
}
