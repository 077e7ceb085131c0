// Databases and tables, and how their changes reach the durable log. Every mutation goes
// through here, so the log is the single source of truth on restart.
//
// A compaction writes the log anew as a snapshot: the databases, tables and index definitions
// as records, then each table's rows and each index's entries in key order, in blobs (below)
// that a restart loads without parsing a row or computing an index: trees are built from
// sorted keys at once, and a row's text stays in the file (Table's RowFile) until it is read.
// What was written after the snapshot (the tail) is replayed record by record; its rows too
// stay in the file (a put record says how long its row is, "n", so it can be read there). Compactions
// come when the tail holds a sixteenth as many writes as there are live rows, but at least
// compactMinRows and at most MAX_TAIL_ROWS (replaying a write costs about twenty times what
// loading a row from a snapshot does, so the tail is what a restart pays for). While one runs,
// the old file's tail keeps growing; past compactMinRows more writes, they are acknowledged only
// when it ends, so a restart never replays more than about MAX_TAIL_ROWS + compactMinRows.
//
// Blobs (after the log's 00 byte), integers little-endian, keys and texts as latin1 bytes:
//   rows:    01, u16 + table id, u32 count, then per row u16 + encoded primary key, u32 + text
//   leaves:  03, u16 + table id, u16 + index name (UTF-8), u32 count, then per leaf of the index's
//            tree u16 keys, u32 prefix length, u32 bytes, u32 start of each key, the bytes (the
//            leaf as it is in memory: a restart copies it back whole)
//   (entries: 02, as leaves but u32 count, then per entry u32 + entry; read, no longer written)
import { randomUUID } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Datum, DatumObject } from '../engine/datum.js';
import { LazyFrame, logPath, type DurableLog } from './log.js';
import { leafOfDump, SortedBuilder, SortedMap, type Leaf, type LeafDump } from './sorted.js';
import { rowTextStart, Table, type IndexDef, type KeyFn, type RowChange, type RowFile, type RowRef } from './table.js';

export type Durability = 'hard' | 'soft';

type LogRecord =
  | { k: 'db'; id: string; name: string }
  | { k: 'dbdrop'; name: string }
  | { k: 'table'; id: string; db: string; name: string; pk: string; durability: Durability }
  | { k: 'tableconf'; id: string; name: string; durability: Durability }
  | { k: 'tabledrop'; id: string }
  | { k: 'index'; t: string; def: IndexDef; bulk?: true; keyLast?: boolean }
  | { k: 'indexdrop'; t: string; name: string }
  | { k: 'indexrename'; t: string; from: string; to: string }
  | { k: 'put'; t: string; key: Datum; n?: number; row: DatumObject | null };

export interface CatalogOptions {
  dataDir?: string;
  /** Compiles a stored index function into a key extractor (the engine knows ReQL; storage does not). */
  compileIndex: (def: IndexDef) => KeyFn;
  onWarn?: (msg: string) => void;
  /** row records written after the last snapshot before a compaction is considered (default 50,000) */
  compactMinRows?: number;
  /** tests only: see LogOptions.slowDiskMs */
  slowDiskMs?: number;
}

/** What the last open read: a restart's cost follows the tail it replayed. */
export interface LoadStats {
  /** rows loaded from the snapshot's blobs */
  snapshotRows: number;
  /** row writes replayed from the log after the snapshot */
  tailWrites: number;
  /** the log file's size, bytes */
  logBytes: number;
  /** from opening the log to serving, ms */
  ms: number;
}

export class Catalog {
  readonly dbs = new Map<string, { id: string; name: string }>();
  readonly tables = new Map<string, Table>();
  private log?: DurableLog;
  private lockFile?: string;
  /** the running compaction, until it ends (whether or not it succeeded) */
  private compaction?: Promise<void>;
  private closing = false;
  /** row records written after the last snapshot; compared with live rows to decide when to compact */
  private tailRows = 0;
  /** what the open read (all zero without a data directory) */
  loaded: LoadStats = { snapshotRows: 0, tailWrites: 0, logBytes: 0, ms: 0 };
  /** the log file, where tables read the rows of the last snapshot */
  private rowFile?: LogRows;
  /** a snapshot's table whose blobs are being read (restart) */
  private bulk?: { table: Table; rows: SortedBuilder<RowRef>; indexes: Map<string, { def: IndexDef; entries: SortedBuilder; leaves: Array<Leaf<undefined>>; keyLast: boolean }> };

  private constructor(private readonly opts: CatalogOptions) {}

  static async open(opts: CatalogOptions): Promise<Catalog> {
    const cat = new Catalog(opts);
    if (opts.dataDir) {
      const t0 = performance.now();
      cat.lockFile = await lockDataDir(opts.dataDir);
      const logOpts = { dir: opts.dataDir, slowDiskMs: opts.slowDiskMs };
      cat.rowFile = new LogRows(logPath(logOpts));
      const pendingIndexes: Array<[Table, IndexDef]> = [];
      // Loaded only when there is something to persist.
      const { openLog } = await import('./log.js');
      cat.log = await openLog(logOpts, (rec, at, payload) => cat.replay(rec as LogRecord | Buffer, at, payload, pendingIndexes), opts.onWarn);
      cat.finishBulk();
      // Indexes the snapshot does not hold are built once after replay rather than maintained
      // through every replayed write.
      for (const [table, def] of pendingIndexes) {
        if (cat.tables.get(table.id) === table && table.indexes.has(def.name) === false) {
          table.addIndex(def, opts.compileIndex(def));
        }
      }
      cat.loaded = { snapshotRows: cat.loaded.snapshotRows, tailWrites: cat.tailRows, logBytes: cat.log.size(), ms: Math.round(performance.now() - t0) };
    } else {
      cat.createDbNow('test');
    }
    if (opts.dataDir && cat.dbs.size === 0) await cat.createDb('test');
    return cat;
  }

  private newTable(id: string, db: string, name: string, pk: string, durability: Durability): Table {
    const t = new Table(id, db, name, pk, durability);
    t.file = this.rowFile;
    return t;
  }

  /** The frame being replayed, and how far into it put records were found (tailRef). */
  private frameAt = -1;
  private frameSeen = 0;

  /** Where the file holds a replayed put record's row (see RowRef), if it says ("n"). */
  private tailRef(rec: { n?: number; row: DatumObject | null }, at: number, payload: Buffer): number | undefined {
    if (at !== this.frameAt) {
      this.frameAt = at;
      this.frameSeen = 0;
    }
    if (typeof rec.n !== 'number' || !rec.row) return undefined;
    // The record's first `,"n":` is its own: one cannot appear inside its table id or key.
    const i = payload.indexOf(N_FIELD, this.frameSeen);
    if (i < 0) return undefined;
    const digits = String(rec.n);
    const d = i + N_FIELD.length;
    if (payload.toString('latin1', d, d + digits.length + ROW_FIELD.length) !== digits + ROW_FIELD) return undefined;
    this.frameSeen = d + digits.length + ROW_FIELD.length + rec.n;
    return -(at + d) - 1;
  }

  private replay(rec: LogRecord | Buffer, at: number, payload: Buffer, pending: Array<[Table, IndexDef]>): void {
    if (Buffer.isBuffer(rec)) {
      this.replayBlob(rec, at);
      return;
    }
    if (rec.k === 'index' && rec.bulk) {
      const t = this.tables.get(rec.t);
      if (t) this.bulkFor(t).indexes.set(rec.def.name, { def: rec.def, entries: new SortedBuilder(false), leaves: [], keyLast: rec.keyLast === true });
      return;
    }
    this.finishBulk();
    switch (rec.k) {
      case 'db':
        this.dbs.set(rec.name, { id: rec.id, name: rec.name });
        break;
      case 'dbdrop':
        this.dropDbNow(rec.name);
        break;
      case 'table':
        this.tables.set(rec.id, this.newTable(rec.id, rec.db, rec.name, rec.pk, rec.durability));
        break;
      case 'tabledrop':
        this.tables.delete(rec.id);
        break;
      case 'tableconf': {
        const t = this.tables.get(rec.id);
        if (t) {
          t.name = rec.name;
          t.durability = rec.durability;
        }
        break;
      }
      case 'index': {
        const t = this.tables.get(rec.t);
        if (t) pending.push([t, rec.def]);
        break;
      }
      case 'indexdrop': {
        const i = pending.findIndex(([t, d]) => t.id === rec.t && d.name === rec.name);
        if (i >= 0) pending.splice(i, 1);
        else this.tables.get(rec.t)?.indexes.delete(rec.name);
        break;
      }
      case 'indexrename': {
        const p = pending.find(([t, d]) => t.id === rec.t && d.name === rec.from);
        if (p) p[1] = { ...p[1], name: rec.to };
        else {
          const t = this.tables.get(rec.t);
          const idx = t?.indexes.get(rec.from);
          if (t && idx) {
            t.indexes.delete(rec.from);
            idx.def = { ...idx.def, name: rec.to };
            t.indexes.set(rec.to, idx);
          }
        }
        break;
      }
      case 'put': {
        this.tailRows++;
        // Indexes the snapshot held are kept up to date; the others are built at the end.
        const ref = this.tailRef(rec, at, payload);
        this.tables.get(rec.t)?.load(rec.key, rec.row, ref);
        break;
      }
    }
  }

  private bulkFor(t: Table): NonNullable<Catalog['bulk']> {
    if (this.bulk?.table !== t) {
      this.finishBulk();
      this.bulk = { table: t, rows: new SortedBuilder<RowRef>(true), indexes: new Map() };
    }
    return this.bulk;
  }

  /** Reads a snapshot blob that starts at file offset `at`. */
  private replayBlob(b: Buffer, at: number): void {
    let p = 1;
    const kind = b[p++];
    const str = (n: number, enc: BufferEncoding) => {
      const v = b.toString(enc, p, p + n);
      p += n;
      return v;
    };
    const t = this.tables.get(str(b.readUInt16LE((p += 2) - 2), 'latin1'));
    if (kind === ROWS) {
      const n = b.readUInt32LE(p);
      p += 4;
      if (!t) return;
      this.loaded.snapshotRows += n;
      const bulk = this.bulkFor(t);
      for (let i = 0; i < n; i++) {
        const klen = b.readUInt16LE(p);
        p += 2 + klen;
        bulk.rows.add(b, p - klen, p, at + p); // where the text's length is, then the text
        p += 4 + b.readUInt32LE(p);
      }
    } else if (kind === LEAVES) {
      const name = str(b.readUInt16LE((p += 2) - 2), 'utf8');
      const n = b.readUInt32LE(p);
      p += 4;
      const idx = t && this.bulkFor(t).indexes.get(name);
      if (!idx) return;
      for (let i = 0; i < n; i++) {
        const keys = b.readUInt16LE(p);
        const prefix = b.readUInt32LE(p + 2);
        const used = b.readUInt32LE(p + 6);
        p += 10;
        // Of exactly this length (an array grown by push keeps room for more): a leaf each.
        const starts = new Array<number>(keys);
        for (let k = 0; k < keys; k++, p += 4) starts[k] = b.readUInt32LE(p);
        idx.leaves.push(leafOfDump(b, p, prefix, used, starts));
        p += used;
      }
    } else if (kind === ENTRIES) {
      const name = str(b.readUInt16LE((p += 2) - 2), 'utf8');
      const n = b.readUInt32LE(p);
      p += 4;
      const idx = t && this.bulkFor(t).indexes.get(name);
      if (!idx) return;
      for (let i = 0; i < n; i++) {
        const len = b.readUInt32LE(p);
        idx.entries.add(b, p + 4, p + 4 + len);
        p += 4 + len;
      }
    } else {
      throw new Error(`unknown block of kind ${kind} in the log at offset ${at}`);
    }
    // The blob's buffer is reused once this returns.
    if (this.bulk) {
      this.bulk.rows.detach();
      for (const idx of this.bulk.indexes.values()) idx.entries.detach();
    }
  }

  /** Builds the trees of the snapshot's table whose blobs were read. */
  private finishBulk(): void {
    const bulk = this.bulk;
    if (!bulk) return;
    this.bulk = undefined;
    const { table } = bulk;
    table.loadRows(bulk.rows.finish());
    for (const { def, entries, leaves, keyLast } of bulk.indexes.values()) {
      table.loadIndex(def, this.opts.compileIndex(def), leaves.length > 0 ? ofLeaves(leaves) : entries.finish(), keyLast);
    }
  }

  private minRows(): number {
    return this.opts.compactMinRows ?? 50_000;
  }

  private async write(records: LogRecord[], durability: Durability): Promise<void> {
    if (!this.log) return;
    const written = this.log.append(records, durability);
    this.maybeCompact();
    await written;
  }

  private maybeCompact(): void {
    const log = this.log;
    if (!log || this.compaction) return;
    let live = 0;
    for (const t of this.tables.values()) live += t.size;
    if (this.tailRows < compactAt(live, this.minRows())) return;
    this.tailRows = 0;
    // The snapshot is taken synchronously, so writes after this point land after it in the new file.
    const { records, moved } = this.snapshot();
    this.compaction = log
      .compact(records, moved)
      .catch((e: unknown) => this.opts.onWarn?.(`compaction failed, the log keeps growing: ${String(e)}`))
      .finally(() => {
        this.compaction = undefined;
        // Writes made while it ran may already call for the next one.
        if (!this.closing) this.maybeCompact();
      });
  }

  /**
   * What a compaction writes, as it is now: records, and blobs made as they are written from
   * the rows and entries taken now (strings do not change; rows still in the old file are
   * copied from it). `moved`, called when the new file replaces the old, points the tables at
   * their rows in it.
   */
  private snapshot(): { records: unknown[]; moved: (moved: { from: number; to: number }) => void } {
    const records: unknown[] = [];
    const after: Array<() => void> = [];
    const file = this.rowFile!;
    for (const db of this.dbs.values()) records.push({ k: 'db', id: db.id, name: db.name });
    for (const t of this.tables.values()) {
      records.push({ k: 'table', id: t.id, db: t.db, name: t.name, pk: t.primaryKey, durability: t.durability });
      for (const idx of t.indexes.values()) records.push({ k: 'index', t: t.id, def: idx.def, bulk: true, keyLast: idx.keyLast });
      const { keys, refs } = t.captureRows();
      const at = new Float64Array(keys.length);
      const copy = file.copier();
      for (let i = 0; i < keys.length; i += ROWS_PER_BLOB) {
        const from = i;
        const to = Math.min(keys.length, i + ROWS_PER_BLOB);
        records.push(new LazyFrame((payloadAt) => rowsBlob(t.id, keys, refs, from, to, copy, payloadAt, at)));
      }
      after.push(() => {
        if (this.tables.get(t.id) === t) t.relocate(keys, refs, at, shift.from);
      });
      for (const idx of t.indexes.values()) {
        const name = idx.def.name; // as the record above says, even if it is renamed meanwhile
        const leaves = t.captureIndex(name);
        let i = 0;
        do {
          const from = i;
          let bytes = 0;
          while (i < leaves.length && bytes < BLOB_BYTES) bytes += leaves[i++].used + 10 + 4 * leaves[i - 1].starts.length;
          const to = i;
          records.push(new LazyFrame(() => leavesBlob(t.id, name, leaves, from, to)));
        } while (i < leaves.length);
      }
    }
    let shift = { from: 0, to: 0 };
    return {
      records,
      moved: (m) => {
        // From here on offsets are the new file's: read it, and find each row in it.
        file.reopen();
        shift = m;
        for (const f of after) f();
        for (const t of this.tables.values()) t.shiftTail(m.from, m.to);
      },
    };
  }

  // --- databases ---
  private createDbNow(name: string): { id: string; name: string } {
    const db = { id: randomUUID(), name };
    this.dbs.set(name, db);
    return db;
  }
  async createDb(name: string): Promise<{ id: string; name: string }> {
    const db = this.createDbNow(name);
    await this.write([{ k: 'db', id: db.id, name }], 'hard');
    return db;
  }
  private dropDbNow(name: string): Table[] {
    this.dbs.delete(name);
    const dropped = [...this.tables.values()].filter((t) => t.db === name);
    for (const t of dropped) this.tables.delete(t.id);
    return dropped;
  }
  /** Drops the database and its tables; returns the dropped tables. */
  dropDb(name: string): { tables: Table[]; done: Promise<void> } {
    const tables = this.dropDbNow(name);
    return { tables, done: this.write([{ k: 'dbdrop', name }], 'hard') };
  }

  // --- tables ---
  findTable(db: string, name: string): Table | undefined {
    for (const t of this.tables.values()) if (t.db === db && t.name === name) return t;
    return undefined;
  }
  tablesOf(db: string): Table[] {
    return [...this.tables.values()].filter((t) => t.db === db);
  }
  createTable(db: string, name: string, pk: string, durability: Durability): { table: Table; done: Promise<void> } {
    const t = this.newTable(randomUUID(), db, name, pk, durability);
    this.tables.set(t.id, t);
    return { table: t, done: this.write([{ k: 'table', id: t.id, db, name, pk, durability }], 'hard') };
  }
  /** Renames a table and/or changes its default durability. */
  configureTable(t: Table, name: string, durability: Durability): Promise<void> {
    t.name = name;
    t.durability = durability;
    return this.write([{ k: 'tableconf', id: t.id, name, durability }], 'hard');
  }
  dropTable(t: Table): Promise<void> {
    this.tables.delete(t.id);
    return this.write([{ k: 'tabledrop', id: t.id }], 'hard');
  }

  // --- indexes ---
  createIndex(t: Table, def: IndexDef): Promise<void> {
    t.addIndex(def, this.opts.compileIndex(def));
    return this.write([{ k: 'index', t: t.id, def }], 'hard');
  }
  dropIndex(t: Table, name: string): Promise<void> {
    t.indexes.delete(name);
    return this.write([{ k: 'indexdrop', t: t.id, name }], 'hard');
  }
  renameIndex(t: Table, from: string, to: string): Promise<void> {
    const idx = t.indexes.get(from)!;
    t.indexes.delete(from);
    idx.def = { ...idx.def, name: to };
    t.indexes.set(to, idx);
    return this.write([{ k: 'indexrename', t: t.id, from, to }], 'hard');
  }

  // --- rows ---
  /**
   * Applies row changes in memory at once (reads and writes see them now) and resolves when
   * they are as durable as asked. Feeds are shown them only then: a hard write after its
   * fsync, so no feed ever shows a change a crash could still take back.
   */
  commit(t: Table, changes: RowChange[], durability: Durability): Promise<void> {
    if (changes.length === 0) return Promise.resolve();
    const version = t.apply(changes);
    if (this.tables.get(t.id) !== t || !this.log) {
      t.announce(changes, version); // scratch tables and in-memory engines persist nothing
      return Promise.resolve();
    }
    this.tailRows += changes.length;
    const { json, rowAt } = putRecords(t, changes);
    // Once written, the rows are read from the file and their texts let go.
    const written = this.log.appendJson(json, durability, (at) => {
      for (let i = 0; i < changes.length; i++) {
        const c = changes[i];
        if (rowAt[i] >= 0 && c.key !== undefined && c.text !== undefined) t.settle(c.key, c.text, -(at + rowAt[i]) - 1);
      }
    });
    this.maybeCompact();
    t.announce(changes, version, written);
    // Writes that outrun a compaction wait for it (see the top of this file): at bulk-import
    // rates, not a chat's.
    const compaction = this.compaction;
    if (compaction && this.tailRows > this.minRows()) return written.then(() => compaction);
    return written;
  }

  sync(): Promise<void> {
    return this.log ? this.log.sync() : Promise.resolve();
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.log?.close();
    this.rowFile?.close();
    if (this.lockFile) await rm(this.lockFile, { force: true });
  }
}

/** Two servers writing one log would corrupt it: the data directory holds a pid lock. */
async function lockDataDir(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  const file = join(dir, 'LOCK');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(file, String(process.pid), { flag: 'wx' });
      return file;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number(await readFile(file, 'utf8').catch(() => ''));
      if (pid && pid !== process.pid && isAlive(pid)) {
        throw new Error(`data directory ${dir} is in use by another server (pid ${pid})`);
      }
      await rm(file, { force: true }); // left behind by a process that died
    }
  }
  throw new Error(`could not lock data directory ${dir}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The most row writes after a snapshot before the next compaction, however many rows live. */
export const MAX_TAIL_ROWS = 100_000;

/** How many row writes after the last snapshot call for a compaction, with `live` rows. */
export function compactAt(live: number, minRows: number): number {
  return Math.min(Math.max(minRows, Math.ceil(live / 16)), Math.max(minRows, MAX_TAIL_ROWS));
}

const ROWS = 1;
const ENTRIES = 2;
const LEAVES = 3;
/**
 * Rows in one blob (about a quarter of a megabyte of chat messages). A blob is made in one go
 * between the writes of a compaction, so queries wait for it: about a millisecond.
 */
const ROWS_PER_BLOB = 500;
/** Index leaves are cut into blobs of about this many bytes (the copier reads this much at once). */
const BLOB_BYTES = 256 * 1024;

/** How a put record says the length of its row, and where the row starts. */
const N_FIELD = Buffer.from(',"n":', 'latin1');
const ROW_FIELD = ',"row":';

/**
 * The put records of a commit as the UTF-8 of a JSON array, the rows' texts as they are kept,
 * and where in it each row's length is (the digits after "n"; -1 for a delete).
 */
function putRecords(t: Table, changes: RowChange[]): { json: Buffer; rowAt: number[] } {
  const pk = t.primaryKey;
  const parts: string[] = [];
  const rowAt: number[] = [];
  let at = 0;
  const push = (part: string) => {
    parts.push(part);
    at += part.length;
  };
  for (const c of changes) {
    let head = `${parts.length ? ',' : '['}{"k":"put","t":${JSON.stringify(t.id)},"key":${JSON.stringify((c.new ?? c.old)![pk])}`;
    // Row texts are one byte a character (their UTF-8); so is the rest, once converted.
    if (Buffer.byteLength(head) !== head.length) head = Buffer.from(head).toString('latin1');
    push(head);
    if (c.text === undefined) {
      rowAt.push(-1);
      push(',"row":null}');
      continue;
    }
    const row = rowTextStart(c.text) ? c.text.slice(1) : c.text;
    push(',"n":');
    rowAt.push(at);
    push(`${row.length}${ROW_FIELD}`);
    push(row);
    push('}');
  }
  push(']');
  return { json: Buffer.from(parts.join(''), 'latin1'), rowAt };
}

/** A growing buffer for a blob. */
class BlobWriter {
  buf = Buffer.allocUnsafe(BLOB_BYTES + 4096);
  at = 0;
  room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + n));
    this.buf.copy(bigger, 0, 0, this.at);
    this.buf = bigger;
  }
  u8(v: number): void {
    this.room(1);
    this.buf[this.at++] = v;
  }
  u16(v: number): void {
    this.room(2);
    this.at = this.buf.writeUInt16LE(v, this.at);
  }
  u32(v: number): void {
    this.room(4);
    this.at = this.buf.writeUInt32LE(v, this.at);
  }
  /** a string's bytes, latin1 or UTF-8, after its length (u16 or u32) */
  str(s: string, enc: 'latin1' | 'utf8', lenBytes: 2 | 4): void {
    const n = enc === 'latin1' ? s.length : Buffer.byteLength(s);
    if (lenBytes === 2) this.u16(n);
    else this.u32(n);
    this.room(n);
    this.at += this.buf.write(s, this.at, enc);
  }
  bytes(b: Buffer, start: number, end: number): void {
    this.room(end - start);
    this.at += b.copy(this.buf, this.at, start, end);
  }
  done(): Buffer {
    return this.buf.subarray(0, this.at);
  }
}

/** Rows [from, to) of a table; records where each text now lies (`at`, file offsets). */
function rowsBlob(tableId: string, keys: string[], refs: RowRef[], from: number, to: number, copy: Copier, payloadAt: number, at: Float64Array): Buffer {
  const w = new BlobWriter();
  w.u8(0);
  w.u8(ROWS);
  w.str(tableId, 'latin1', 2);
  w.u32(to - from);
  for (let i = from; i < to; i++) {
    w.str(keys[i], 'latin1', 2);
    at[i] = payloadAt + w.at;
    const ref = refs[i];
    if (typeof ref === 'string') w.str(ref, 'latin1', 4);
    else {
      const [b, start, end, marker] = copy(ref);
      w.u32(end - start + (marker ? 1 : 0));
      if (marker) w.u8(1);
      w.bytes(b, start, end);
    }
  }
  return w.done();
}

function leavesBlob(tableId: string, index: string, leaves: LeafDump[], from: number, to: number): Buffer {
  const w = new BlobWriter();
  w.u8(0);
  w.u8(LEAVES);
  w.str(tableId, 'latin1', 2);
  w.str(index, 'utf8', 2);
  w.u32(to - from);
  for (let i = from; i < to; i++) {
    const { p, used, buf, starts } = leaves[i];
    w.u16(starts.length);
    w.u32(p);
    w.u32(used);
    for (const s of starts) w.u32(s);
    w.bytes(buf, 0, used);
  }
  return w.done();
}

/** A tree of a snapshot's leaves; if they are not in order (a damaged file), sorted again. */
function ofLeaves(leaves: Array<Leaf<undefined>>): SortedMap {
  for (let i = 1; i < leaves.length; i++) {
    if (!(leaves[i - 1].keyAt(leaves[i - 1].n - 1) < leaves[i].keyAt(0))) {
      const keys = leaves.flatMap((l) => l.keys()).sort();
      return SortedMap.fromSorted(keys.filter((k, j) => j === 0 || keys[j - 1] !== k));
    }
  }
  return SortedMap.ofDumps(leaves);
}

/**
 * A row's text from the file, as a snapshot keeps texts: [buffer, start, end, whether a marker
 * byte (01) must come first] (a row of a put record is plain UTF-8 JSON; see Table's rowText).
 */
type Copier = (ref: number) => [Buffer, number, number, boolean];

/**
 * The log file, read where rows of the snapshot are (RowFile). It has a descriptor of its own,
 * opened when first needed and opened again after a compaction replaces the file.
 */
class LogRows implements RowFile {
  private fd: number | undefined;
  private buf = Buffer.allocUnsafe(64 * 1024);

  constructor(private readonly path: string) {}

  private fdNow(): number {
    this.fd ??= openSync(this.path, 'r');
    return this.fd;
  }

  /** The file was replaced: read the new one from now on. */
  reopen(): void {
    this.close();
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  /** `size` bytes at `offset` into buf (or a bigger one): whatever of them the file has. */
  private bytes(offset: number, size: number, buf: Buffer): [Buffer, number] {
    if (size > buf.length) buf = Buffer.allocUnsafe(size);
    return [buf, readSync(this.fdNow(), buf, 0, size, offset)];
  }

  /** The text at snapshot offset `offset` (its length, then its bytes): [buf, start, end]. */
  private stored(offset: number, buf: Buffer): [Buffer, number, number] {
    let [b, n] = this.bytes(offset, 2048, buf);
    const len = b.readUInt32LE(0);
    if (4 + len > n) [b, n] = this.bytes(offset, 4 + len, b);
    if (n < 4 + len) throw new Error(`the log file ends inside the row at offset ${offset}`);
    return [b, 4, 4 + len];
  }

  /** The row of a put record whose "n" digits are at `offset`: [buf, start, end] of its JSON. */
  private put(offset: number, buf: Buffer): [Buffer, number, number] {
    let [b, n] = this.bytes(offset, 2048, buf);
    let len = 0;
    let i = 0;
    for (; i < n && b[i] >= 0x30 && b[i] <= 0x39; i++) len = len * 10 + b[i] - 0x30;
    const start = i + ROW_FIELD.length;
    if (i === 0 || b.toString('latin1', i, start) !== ROW_FIELD) throw new Error(`no row at offset ${offset} of the log file`);
    if (start + len > n) [b, n] = this.bytes(offset, start + len, b);
    if (n < start + len) throw new Error(`the log file ends inside the row at offset ${offset}`);
    return [b, start, start + len];
  }

  text(ref: number): string {
    if (ref < 0) {
      const [b, start, end] = this.put(-ref - 1, this.buf);
      let ascii = true;
      for (let i = start; i < end && ascii; i++) ascii = b[i] < 0x80;
      return ascii ? b.toString('latin1', start, end) : '\x01' + b.toString('latin1', start, end);
    }
    const [b, start, end] = this.stored(ref, this.buf);
    return b.toString('latin1', start, end);
  }

  read(ref: number): DatumObject {
    if (ref < 0) {
      const [b, start, end] = this.put(-ref - 1, this.buf);
      return JSON.parse(b.toString('utf8', start, end)) as DatumObject;
    }
    const [b, start, end] = this.stored(ref, this.buf);
    // ASCII JSON, or a marker and UTF-8 (see Table's rowText)
    return JSON.parse(b[start] === 1 ? b.toString('utf8', start + 1, end) : b.toString('latin1', start, end)) as DatumObject;
  }

  /**
   * A reader for copying rows into a snapshot. The last snapshot's rows lie in key order, so it
   * reads them a megabyte at a time: copying a million rows is a few hundred reads, not a
   * million. Rows written since are read one by one.
   */
  copier(): Copier {
    let win = Buffer.allocUnsafe(0);
    let winAt = 0;
    let winLen = 0;
    const one = Buffer.allocUnsafe(64 * 1024);
    return (ref) => {
      if (ref < 0) {
        const [b, start, end] = this.put(-ref - 1, one);
        let ascii = true;
        for (let i = start; i < end && ascii; i++) ascii = b[i] < 0x80;
        return [b, start, end, !ascii];
      }
      const inWin = (n: number) => ref >= winAt && ref + n <= winAt + winLen;
      if (!inWin(4) || !inWin(4 + win.readUInt32LE(ref - winAt))) {
        if (win.length === 0) win = Buffer.allocUnsafe(BLOB_BYTES);
        winAt = ref;
        winLen = readSync(this.fdNow(), win, 0, win.length, ref);
        const len = win.readUInt32LE(0);
        if (4 + len > winLen) return [...this.stored(ref, Buffer.allocUnsafe(4 + len)), false]; // bigger than the window: on its own
      }
      const start = ref - winAt;
      return [win, start + 4, start + 4 + win.readUInt32LE(start), false];
    };
  }
}
