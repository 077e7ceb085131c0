// The backup archive: one gzip stream of JSON lines.
//
//   {"format":"chatroom-of-requirement-backup","version":1,"db":…,"created":…,"tables":[…]}
//   {"t":"messages","row":{…}}                      one line a row, table after table
//   {"manifest":{"tables":{"messages":{"rows":…,"bytes":…,"sha256":…}},"rows":…,"bytes":…,"sha256":…}}
//
// Rows are as the server returns them with timeFormat and binaryFormat 'raw': a time is
// {"$reql_type$":"TIME","epoch_time":…,"timezone":…} and a binary {"$reql_type$":"BINARY",
// "data":base64}, which both servers take back as they are on insert, so times keep their
// time zone and binaries their bytes. A table's sha256 is over its row lines (each with its
// newline); the manifest's sha256 over every line before the manifest. A table of uploaded
// files' chunks (a later issue) is one more table here: its binary chunks are rows like any.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { createGunzip } from 'node:zlib';

export const FORMAT = 'chatroom-of-requirement-backup';
export const VERSION = 1;

/** A secondary index as indexStatus describes it. `function` is the server's own encoding of
 *  the index function (RethinkDB's, or the embedded server's), `query` its text when known. */
export interface IndexEntry {
  index: string;
  multi: boolean;
  geo: boolean;
  function?: { $reql_type$: 'BINARY'; data: string };
  query?: string;
}

export interface TableEntry {
  name: string;
  primaryKey: string;
  indexes: IndexEntry[];
}

export interface Header {
  format: typeof FORMAT;
  version: number;
  db: string;
  /** when the backup began (ISO 8601) */
  created: string;
  tables: TableEntry[];
}

export interface TableSum {
  rows: number;
  /** bytes of its row lines (uncompressed) */
  bytes: number;
  sha256: string;
}

export interface Manifest {
  tables: Record<string, TableSum>;
  rows: number;
  /** bytes of every line before the manifest (uncompressed) */
  bytes: number;
  sha256: string;
  /** when the last row was read (ISO 8601) */
  finished: string;
}

/** Something wrong with the archive itself: not one, corrupt, truncated. */
export class ArchiveError extends Error {
  override name = 'ArchiveError';
}

export const rowLine = (table: string, row: unknown): string => `${JSON.stringify({ t: table, row })}\n`;

const ROW_PREFIX = '{"t":"';

/** The table a row line belongs to, read without parsing the row (rowLine writes it first). */
export function tableOfLine(line: string): string | undefined {
  if (!line.startsWith(ROW_PREFIX)) return undefined;
  const end = line.indexOf('"', ROW_PREFIX.length);
  return end < 0 ? undefined : line.slice(ROW_PREFIX.length, end);
}

/** Running sums of an archive as it is written or read: per table and in all. */
export class Sums {
  private readonly all = createHash('sha256');
  private readonly tables = new Map<string, { rows: number; bytes: number; hash: ReturnType<typeof createHash> }>();
  rows = 0;
  bytes = 0;

  header(line: string): void {
    this.all.update(line);
    this.bytes += Buffer.byteLength(line);
  }

  row(table: string, line: string): void {
    let t = this.tables.get(table);
    if (!t) this.tables.set(table, (t = { rows: 0, bytes: 0, hash: createHash('sha256') }));
    const n = Buffer.byteLength(line);
    t.rows++;
    t.bytes += n;
    t.hash.update(line);
    this.all.update(line);
    this.rows++;
    this.bytes += n;
  }

  /** The manifest of what was summed, for `tables` (a table without rows counts 0). */
  manifest(tables: string[]): Manifest {
    const empty = createHash('sha256').digest('hex');
    const out: Record<string, TableSum> = {};
    for (const name of tables) {
      const t = this.tables.get(name);
      out[name] = t ? { rows: t.rows, bytes: t.bytes, sha256: t.hash.digest('hex') } : { rows: 0, bytes: 0, sha256: empty };
    }
    return { tables: out, rows: this.rows, bytes: this.bytes, sha256: this.all.digest('hex'), finished: new Date().toISOString() };
  }
}

/** The archive's lines, each with its newline, decompressed as they are read. A damaged or
 *  cut gzip stream fails here (its CRC and length are checked at its end). */
export async function* archiveLines(file: string): AsyncGenerator<string> {
  const decoder = new StringDecoder('utf8');
  let rest = '';
  const source = createReadStream(file);
  const input = createGunzip();
  source.on('error', (e) => input.destroy(e));
  source.pipe(input);
  try {
    for await (const chunk of input) {
      const text = rest + decoder.write(chunk as Buffer);
      let start = 0;
      for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', start)) {
        yield text.slice(start, nl + 1);
        start = nl + 1;
      }
      rest = text.slice(start);
    }
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR') throw new ArchiveError(`cannot read ${file}: ${(e as Error).message}`);
    throw new ArchiveError(`${file} is not a whole gzip stream (${(e as Error).message}): corrupt or truncated`);
  } finally {
    source.destroy();
    input.destroy();
  }
  rest += decoder.end();
  if (rest !== '') throw new ArchiveError(`${file} ends in the middle of a line: truncated`);
}

function parseHeader(line: string, file: string): Header {
  let h: Partial<Header>;
  try {
    h = JSON.parse(line) as Partial<Header>;
  } catch {
    throw new ArchiveError(`${file} is not a backup of this app (its first line is not JSON)`);
  }
  if (h.format !== FORMAT) throw new ArchiveError(`${file} is not a backup of this app (no "${FORMAT}" header)`);
  if (h.version !== VERSION) throw new ArchiveError(`${file} is a backup of format version ${String(h.version)}; this version reads version ${VERSION}`);
  if (typeof h.db !== 'string' || !Array.isArray(h.tables) || !h.tables.every((t) => typeof t?.name === 'string' && /^\w+$/.test(t.name) && typeof t.primaryKey === 'string' && Array.isArray(t.indexes))) {
    throw new ArchiveError(`${file} has a damaged header`);
  }
  return h as Header;
}

function parseManifest(line: string, file: string): Manifest | undefined {
  if (!line.startsWith('{"manifest":')) return undefined;
  try {
    return (JSON.parse(line) as { manifest: Manifest }).manifest;
  } catch {
    throw new ArchiveError(`${file} has a damaged manifest`);
  }
}

/**
 * Reads the whole archive and checks it against its manifest: every table's count and
 * checksum, and the checksum of all. Throws ArchiveError on anything amiss; writes nothing.
 * `onRows` is told how far it got (rows, bytes).
 */
export async function verifyArchive(file: string, onRows?: (rows: number, bytes: number) => void): Promise<{ header: Header; manifest: Manifest }> {
  const sums = new Sums();
  let header: Header | undefined;
  let manifest: Manifest | undefined;
  let known = new Set<string>();
  let lineNo = 0;
  const take = (line: string) => {
    lineNo++;
    if (manifest) throw new ArchiveError(`${file} has lines after its manifest`);
    if (!header) {
      header = parseHeader(line, file);
      known = new Set(header.tables.map((t) => t.name));
      sums.header(line);
      return;
    }
    const table = tableOfLine(line);
    if (table !== undefined) {
      if (!known.has(table)) throw new ArchiveError(`${file}, line ${lineNo}: a row of the table ${table}, which its header does not list`);
      sums.row(table, line);
      if (sums.rows % 10_000 === 0) onRows?.(sums.rows, sums.bytes);
      return;
    }
    manifest = parseManifest(line, file);
    if (!manifest) throw new ArchiveError(`${file}, line ${lineNo}: neither a row nor the manifest`);
  };
  // A damaged gzip stream may decompress to garbage before its checksum, at the end, says so:
  // the first problem found is kept while the rest is read, so that gzip's verdict comes first.
  let problem: unknown;
  for await (const line of archiveLines(file)) {
    if (problem !== undefined) continue;
    try {
      take(line);
    } catch (e) {
      problem = e;
    }
  }
  if (problem !== undefined) throw problem;
  if (!header) throw new ArchiveError(`${file} is empty`);
  if (!manifest) throw new ArchiveError(`${file} has no manifest at its end: truncated (the backup did not finish?)`);
  onRows?.(sums.rows, sums.bytes);
  const found = sums.manifest(header.tables.map((t) => t.name));
  for (const t of header.tables) {
    const want = manifest.tables?.[t.name];
    const got = found.tables[t.name];
    if (!want) throw new ArchiveError(`${file}: its manifest does not list the table ${t.name}`);
    if (want.rows !== got.rows) throw new ArchiveError(`${file}: the table ${t.name} holds ${got.rows} rows, its manifest says ${want.rows}`);
    if (want.sha256 !== got.sha256) throw new ArchiveError(`${file}: the rows of the table ${t.name} do not match their checksum: corrupt`);
  }
  if (manifest.sha256 !== found.sha256 || manifest.rows !== found.rows) throw new ArchiveError(`${file} does not match its checksum: corrupt`);
  return { header, manifest };
}
