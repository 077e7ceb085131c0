// Databases and tables, and how their changes reach the durable log. Every mutation goes
// through here, so the log is the single source of truth on restart.
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Datum, DatumObject } from '../engine/datum.js';
import type { DurableLog } from './log.js';
import { Table, type IndexDef, type KeyFn, type RowChange } from './table.js';

export type Durability = 'hard' | 'soft';

type LogRecord =
  | { k: 'db'; id: string; name: string }
  | { k: 'dbdrop'; name: string }
  | { k: 'table'; id: string; db: string; name: string; pk: string; durability: Durability }
  | { k: 'tableconf'; id: string; name: string; durability: Durability }
  | { k: 'tabledrop'; id: string }
  | { k: 'index'; t: string; def: IndexDef }
  | { k: 'indexdrop'; t: string; name: string }
  | { k: 'indexrename'; t: string; from: string; to: string }
  | { k: 'put'; t: string; key: Datum; row: DatumObject | null };

export interface CatalogOptions {
  dataDir?: string;
  /** Compiles a stored index function into a key extractor (the engine knows ReQL; storage does not). */
  compileIndex: (def: IndexDef) => KeyFn;
  onWarn?: (msg: string) => void;
  /** row records the log may hold before compaction is considered (default 100,000) */
  compactMinRows?: number;
  /** tests only: see LogOptions.slowDiskMs */
  slowDiskMs?: number;
}

export class Catalog {
  readonly dbs = new Map<string, { id: string; name: string }>();
  readonly tables = new Map<string, Table>();
  private log?: DurableLog;
  private lockFile?: string;
  private compacting = false;
  private closing = false;
  /** row records in the log file; compared with live rows to decide when to compact */
  private loggedRows = 0;

  private constructor(private readonly opts: CatalogOptions) {}

  static async open(opts: CatalogOptions): Promise<Catalog> {
    const cat = new Catalog(opts);
    if (opts.dataDir) {
      cat.lockFile = await lockDataDir(opts.dataDir);
      const pendingIndexes: Array<[Table, IndexDef]> = [];
      // Loaded only when there is something to persist.
      const { openLog } = await import('./log.js');
      cat.log = await openLog({ dir: opts.dataDir, slowDiskMs: opts.slowDiskMs }, (rec) => cat.replay(rec as LogRecord, pendingIndexes), opts.onWarn);
      // Indexes are built once after replay rather than maintained through every replayed write.
      for (const [table, def] of pendingIndexes) {
        if (cat.tables.get(table.id) === table && table.indexes.has(def.name) === false) {
          table.addIndex(def, opts.compileIndex(def));
        }
      }
    } else {
      cat.createDbNow('test');
    }
    if (opts.dataDir && cat.dbs.size === 0) await cat.createDb('test');
    return cat;
  }

  private replay(rec: LogRecord, pending: Array<[Table, IndexDef]>): void {
    switch (rec.k) {
      case 'db':
        this.dbs.set(rec.name, { id: rec.id, name: rec.name });
        break;
      case 'dbdrop':
        this.dropDbNow(rec.name);
        break;
      case 'table':
        this.tables.set(rec.id, new Table(rec.id, rec.db, rec.name, rec.pk, rec.durability));
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
        break;
      }
      case 'indexrename': {
        const p = pending.find(([t, d]) => t.id === rec.t && d.name === rec.from);
        if (p) p[1] = { ...p[1], name: rec.to };
        break;
      }
      case 'put': {
        this.loggedRows++;
        const t = this.tables.get(rec.t);
        if (!t) break;
        t.load(rec.key, rec.row);
        break;
      }
    }
  }

  private async write(records: LogRecord[], durability: Durability): Promise<void> {
    if (!this.log) return;
    this.loggedRows += records.length;
    const written = this.log.append(records, durability);
    this.maybeCompact();
    await written;
  }

  private maybeCompact(): void {
    const log = this.log;
    if (!log || this.compacting) return;
    let live = 0;
    for (const t of this.tables.values()) live += t.size;
    // History may be at most as large again as live data (and small logs are left alone).
    if (this.loggedRows < (this.opts.compactMinRows ?? 100_000) || this.loggedRows < 2 * live) return;
    this.compacting = true;
    this.loggedRows = live;
    // The snapshot is taken synchronously, so writes after this point land after it in the new file.
    const snapshot = [...this.snapshot()];
    log
      .compact(snapshot)
      .catch((e: unknown) => this.opts.onWarn?.(`compaction failed, the log keeps growing: ${String(e)}`))
      .finally(() => {
        this.compacting = false;
        // Writes made while it ran may already call for the next one.
        if (!this.closing) this.maybeCompact();
      });
  }

  private *snapshot(): Iterable<LogRecord> {
    for (const db of this.dbs.values()) yield { k: 'db', id: db.id, name: db.name };
    for (const t of this.tables.values()) {
      yield { k: 'table', id: t.id, db: t.db, name: t.name, pk: t.primaryKey, durability: t.durability };
      for (const idx of t.indexes.values()) yield { k: 'index', t: t.id, def: idx.def };
      for (const row of t.scan()) yield { k: 'put', t: t.id, key: row[t.primaryKey], row };
    }
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
    const t = new Table(randomUUID(), db, name, pk, durability);
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
    const pk = t.primaryKey;
    const records: LogRecord[] = changes.map((c) => ({ k: 'put', t: t.id, key: (c.new ?? c.old)![pk], row: c.new }));
    const written = this.write(records, durability);
    t.announce(changes, version, written);
    return written;
  }

  sync(): Promise<void> {
    return this.log ? this.log.sync() : Promise.resolve();
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.log?.close();
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
