// A table held in memory: rows in a B+ tree by primary key, and one B+ tree per secondary
// index holding entries [index value, primary key], so ranges and ordered limits cost
// O(log n + k). Keys are strings that sort as their values do (keys.ts), so the trees compare
// them natively; an index entry is only its key, and leads to its row through the primary key.
import { MAXVAL, MINVAL, type Datum, type DatumObject, type Key } from '../engine/datum.js';
import { AFTER, decodeKey, encodeKey, encodePair, skipKey } from './keys.js';
import { SortedMap } from './sorted.js';

export interface IndexDef {
  name: string;
  /** The index function as a raw ReQL term (a FUNC), kept so it survives restarts. */
  fn: unknown;
  multi: boolean;
  geo: boolean;
}

/** Computes a row's index values (a value may come more than once); empty when the row is not in the index. */
export type KeyFn = (row: DatumObject) => Datum[];

export interface Index {
  def: IndexDef;
  keys: KeyFn;
  /** encodePair(value, primary key) of every entry */
  tree: SortedMap;
}

export interface RowChange {
  old: DatumObject | null;
  new: DatumObject | null;
}

export class Table {
  /** rows by encodeKey(primary key) */
  private rows = new SortedMap<DatumObject>(true);
  readonly indexes = new Map<string, Index>();
  /** Told of each batch of changes once it may be shown (see Catalog.commit), with its version. */
  readonly listeners = new Set<(changes: RowChange[], version: number) => void>();
  /** How many batches of changes have been applied to the rows in memory. */
  version = 0;
  /** Batches are announced in the order they were applied: each waits for the one before. */
  private announced: Promise<void> = Promise.resolve();

  constructor(
    readonly id: string,
    public db: string,
    public name: string,
    readonly primaryKey: string,
    public durability: 'hard' | 'soft' = 'hard',
  ) {}

  get size(): number {
    return this.rows.size;
  }

  get(key: Datum): DatumObject | undefined {
    return this.rows.get(encodeKey(key));
  }

  *scan(desc = false): Iterable<DatumObject> {
    for (const [, row] of this.rows.entries(undefined, false, desc)) yield row;
  }

  /** Rows whose primary key lies in the range, in key order. */
  *primaryRange(lo: Key, hi: Key, loOpen: boolean, hiOpen: boolean, desc = false): Iterable<DatumObject> {
    const l = encodeKey(lo);
    const h = encodeKey(hi);
    if (!desc) {
      for (const [k, row] of this.rows.entries(l, loOpen)) {
        if (k > h || (hiOpen && k === h)) return;
        yield row;
      }
    } else {
      for (const [k, row] of this.rows.entries(h, hiOpen, true)) {
        if (k < l || (loOpen && k === l)) return;
        yield row;
      }
    }
  }

  /** Index entries in the range, in index order: [where the value ends, entry, row]. */
  private *entriesIn(name: string, lo: Key, hi: Key, loOpen: boolean, hiOpen: boolean, desc: boolean): Iterable<[number, string, DatumObject]> {
    const idx = this.indexes.get(name)!;
    // An entry is value + primary key: every entry of value v lies in [enc(v), enc(v) + AFTER).
    const l = encodeKey(lo);
    const h = encodeKey(hi);
    const from = desc ? (hiOpen ? h : h + AFTER) : loOpen ? l + AFTER : l;
    const stop = desc ? (loOpen ? l + AFTER : l) : hiOpen ? h : h + AFTER;
    for (const entry of idx.tree.keys(from, false, desc)) {
      if (desc ? entry < stop : entry >= stop) return;
      const end = skipKey(entry, 0);
      const row = this.rows.get(entry.slice(end));
      if (row) yield [end, entry, row];
    }
  }

  /** Rows of the index entries in the range, in index order (a row once per entry). */
  *indexRows(name: string, lo: Key, hi: Key, loOpen: boolean, hiOpen: boolean, desc = false): Iterable<DatumObject> {
    for (const [, , row] of this.entriesIn(name, lo, hi, loOpen, hiOpen, desc)) yield row;
  }

  /**
   * [index value, row] pairs in the range, in index order. The value is read back from the
   * entry, so a time comes in UTC and an object with sorted keys (equal in order, that is).
   */
  *indexRange(name: string, lo: Key, hi: Key, loOpen: boolean, hiOpen: boolean, desc = false): Iterable<[Key, DatumObject]> {
    for (const [, entry, row] of this.entriesIn(name, lo, hi, loOpen, hiOpen, desc)) yield [decodeKey(entry, 0)[0], row];
  }

  *indexScan(name: string, desc = false): Iterable<[Key, DatumObject]> {
    yield* this.indexRange(name, MINVAL, MAXVAL, false, false, desc);
  }

  *indexScanRows(name: string, desc = false): Iterable<DatumObject> {
    yield* this.indexRows(name, MINVAL, MAXVAL, false, false, desc);
  }

  /** The distinct values a row has in an index. */
  indexValues(name: string, row: DatumObject): Datum[] {
    const idx = this.indexes.get(name);
    if (!idx) return [];
    const vals = idx.keys(row);
    if (vals.length < 2) return vals;
    const seen = new Set<string>();
    return vals.filter((v) => {
      const k = encodeKey(v);
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
  }

  /** The index entries of one row. */
  private entriesOf(idx: Index, row: DatumObject, pk: Datum): string[] {
    const vals = idx.keys(row);
    const out: string[] = [];
    for (const v of vals) out.push(encodePair(v, pk));
    return out;
  }

  addIndex(def: IndexDef, keys: KeyFn): void {
    const pk = this.primaryKey;
    const idx: Index = { def, keys, tree: new SortedMap(false) };
    // Sorting once and building the tree from sorted keys is far quicker than inserting each.
    const entries: string[] = [];
    for (const [, row] of this.rows.entries()) for (const e of this.entriesOf(idx, row, row[pk])) entries.push(e);
    entries.sort();
    let n = 0;
    for (let i = 0; i < entries.length; i++) if (i === 0 || entries[i] !== entries[i - 1]) entries[n++] = entries[i];
    entries.length = n;
    idx.tree = SortedMap.fromSorted(entries);
    this.indexes.set(def.name, idx);
  }

  /**
   * Applies already-validated changes to the rows and indexes (reads and later writes see them
   * at once) and returns their version; the feeds are told by announce().
   */
  apply(changes: RowChange[]): number {
    const pk = this.primaryKey;
    for (const ch of changes) {
      const key = (ch.new ?? ch.old)![pk];
      if (ch.old) {
        for (const idx of this.indexes.values()) for (const e of this.entriesOf(idx, ch.old, key)) idx.tree.delete(e);
      }
      const k = encodeKey(key);
      if (ch.new) {
        this.rows.set(k, ch.new);
        for (const idx of this.indexes.values()) for (const e of this.entriesOf(idx, ch.new, key)) idx.tree.set(e);
      } else {
        this.rows.delete(k);
      }
    }
    return ++this.version;
  }

  /**
   * Tells the feeds of a batch once `shown` resolves (for a hard write: once it is durable), and
   * never if it rejects (a write the log could not keep). Batches are told in version order,
   * so a later soft write is not shown ahead of an earlier hard one still waiting for its fsync.
   */
  announce(changes: RowChange[], version: number, shown?: Promise<void>): void {
    if (changes.length === 0) return;
    const tell = () => {
      for (const l of this.listeners) l(changes, version);
    };
    if (!shown) {
      tell(); // nothing to wait for (a table in memory only)
      return;
    }
    this.announced = this.announced.then(() => shown).then(tell, () => undefined);
  }

  /** Sets a row during replay, before any index exists: no index is kept up to date. */
  load(key: Datum, row: DatumObject | null): void {
    const k = encodeKey(key);
    if (row) this.rows.set(k, row);
    else this.rows.delete(k);
  }
}
