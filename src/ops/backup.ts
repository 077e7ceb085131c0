// Backing up a workspace while the chat runs: every table of the app's database, read in
// primary-key order a page at a time (each page a fresh query, so rows written meanwhile
// never upset a long-lived cursor, and no row is read twice), into one gzip archive (the
// format is in archive.ts), written beside its name and renamed into place when whole.
//
// It is not a point-in-time snapshot: RethinkDB has none across tables. Each row is as it
// was when its page was read; a row written during the backup may or may not be in it.
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { r, type Connection, type RunOptions } from 'rethinkdb-ts';
import { FORMAT, VERSION, Sums, rowLine, type Header, type IndexEntry, type Manifest, type TableEntry } from './archive.js';
import type { Progress } from './progress.js';

/** Rows as stored: times and binaries as their pseudo-types, so they come back exactly. */
export const RAW: RunOptions = { timeFormat: 'raw', binaryFormat: 'raw' };

/** A page aims at about this many bytes of JSON (rows of file chunks are large, messages small). */
const PAGE_BYTES = 4 * 1024 * 1024;
// At most 1,000 rows: the embedded server sends that many in one batch, read at once. Its
// cursors that span batches can skip or repeat rows when the table is written between them.
const PAGE_ROWS = { first: 500, min: 10, max: 1000 };

export interface BackupResult {
  file: string;
  header: Header;
  manifest: Manifest;
  /** size of the archive on disk */
  archiveBytes: number;
  /** sha256 of the archive file */
  fileSha256: string;
  seconds: number;
}

/** What the archive's header says of a table: its primary key and its indexes. */
async function describeTable(conn: Connection, db: string, name: string): Promise<TableEntry> {
  const info = (await r.db(db).table(name).info().run(conn)) as { primary_key: string };
  const status = (await r.db(db).table(name).indexStatus().run(conn, RAW)) as unknown as IndexEntry[];
  const indexes = status.map((s) => ({ index: s.index, multi: s.multi, geo: s.geo, function: s.function, query: s.query }));
  return { name, primaryKey: info.primary_key, indexes };
}

/** Rows of the database's tables, about how many (for the progress bar). */
async function estimateRows(conn: Connection, db: string, tables: string[]): Promise<number> {
  let n = 0;
  for (const t of tables) {
    const info = (await r.db(db).table(t).info().run(conn)) as { doc_count_estimates?: number[] };
    n += (info.doc_count_estimates ?? []).reduce((a, b) => a + b, 0);
  }
  return n;
}

type Row = Record<string, unknown>;

/** A table's rows in primary-key order, page by page, the next page asked for while the
 *  caller writes this one. */
async function* pages(conn: Connection, db: string, table: TableEntry): AsyncGenerator<Row[]> {
  const pk = table.primaryKey;
  let limit = PAGE_ROWS.first;
  const fetch = (after: unknown, n: number) => {
    const t = r.db(db).table(table.name);
    const range = after === undefined ? t : t.between(after, r.maxval, { leftBound: 'open' });
    return range.orderBy({ index: pk }).limit(n).run(conn, RAW) as Promise<Row[]>;
  };
  let next = fetch(undefined, limit);
  for (;;) {
    const page = await next;
    if (page.length === 0) return;
    const asked = limit;
    if (page.length === asked) {
      // Aim the next page at PAGE_BYTES, from this one's size.
      const bytes = Math.max(1, JSON.stringify(page[page.length - 1]).length * page.length);
      limit = Math.max(PAGE_ROWS.min, Math.min(PAGE_ROWS.max, Math.round((asked * PAGE_BYTES) / bytes)));
      next = fetch(page[page.length - 1][pk], limit);
    }
    yield page;
    if (page.length < asked) return;
  }
}

/** Passes bytes through, hashing them and counting them. */
function hashing(): { stream: Transform; digest(): string; bytes(): number } {
  const hash = createHash('sha256');
  let n = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      n += chunk.length;
      done(null, chunk);
    },
  });
  return { stream, digest: () => hash.digest('hex'), bytes: () => n };
}

/**
 * Writes every table of `db` to `file` (through `file.partial`, renamed when complete and
 * synced to disk). `progress` is made with about how many rows there are, and told the rows
 * and JSON bytes written so far.
 */
export async function backup(conn: Connection, db: string, file: string, opts: { progress?: (estimate: number) => Progress } = {}): Promise<BackupResult> {
  const started = performance.now();
  if (!(await r.dbList().run(conn)).includes(db)) throw new Error(`there is no database ${db} to back up`);
  const names = (await r.db(db).tableList().run(conn)).sort();
  const tables: TableEntry[] = [];
  for (const name of names) tables.push(await describeTable(conn, db, name));
  const header: Header = { format: FORMAT, version: VERSION, db, created: new Date().toISOString(), tables };
  const bar = opts.progress?.(await estimateRows(conn, db, names));

  const partial = `${file}.partial`;
  const gzip = createGzip();
  const tap = hashing();
  // flush: the file is synced to disk before it is closed, and then renamed.
  const written = pipeline(gzip, tap.stream, createWriteStream(partial, { flush: true }));
  written.catch(() => undefined); // its failure is met where it is awaited
  const sums = new Sums();
  /** Writes on, or fails with the reason the file cannot be written (a full disk). */
  const write = async (text: string) => {
    if (gzip.destroyed) await written;
    if (!gzip.write(text)) await Promise.race([once(gzip, 'drain'), written]);
  };
  let manifest: Manifest;
  try {
    const head = `${JSON.stringify(header)}\n`;
    sums.header(head);
    await write(head);
    for (const table of tables) {
      for await (const page of pages(conn, db, table)) {
        let chunk = '';
        for (const row of page) {
          const line = rowLine(table.name, row);
          sums.row(table.name, line);
          chunk += line;
        }
        await write(chunk);
        bar?.update(sums.rows, sums.bytes);
      }
    }
    manifest = sums.manifest(names);
    gzip.end(`${JSON.stringify({ manifest })}\n`);
    await written;
  } catch (e) {
    gzip.destroy();
    await written.catch(() => undefined);
    rmSync(partial, { force: true });
    throw e;
  }
  renameSync(partial, file);
  bar?.done();
  return { file, header, manifest, archiveBytes: tap.bytes(), fileSha256: tap.digest(), seconds: (performance.now() - started) / 1000 };
}

const ARCHIVE = /^(\w+)-(\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}Z)\.jsonl\.gz$/;

/** `<db>-<UTC time>.jsonl.gz`: names that sort by time. */
export function archiveName(db: string, at: Date): string {
  return `${db}-${at.toISOString().replace(/:/g, '-')}.jsonl.gz`;
}

/** Where a backup goes when `--out` names a directory (made if missing). */
export function archivePath(dir: string, db: string, at = new Date()): string {
  mkdirSync(dir, { recursive: true });
  return join(dir, archiveName(db, at));
}

/** Deletes the oldest archives of `db` in `dir` beyond the newest `keep`; only files named
 *  as archiveName names them are touched. Returns the deleted paths. */
export function rotate(dir: string, db: string, keep: number): string[] {
  const ours = readdirSync(dir)
    .filter((f) => ARCHIVE.exec(f)?.[1] === db && statSync(join(dir, f)).isFile())
    .sort();
  const old = ours.slice(0, Math.max(0, ours.length - keep)).map((f) => join(dir, f));
  for (const f of old) rmSync(f);
  return old;
}
