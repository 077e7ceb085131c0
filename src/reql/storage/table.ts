// A table held in memory: rows in a B+ tree by primary key, and one B+ tree per secondary
// index keyed by [index value, primary key], so ranges and ordered limits cost O(log n + k).
import btree from 'sorted-btree';
import { compare, MAXVAL, MINVAL, type Datum, type DatumObject, type Key } from '../engine/datum.js';

// sorted-btree is CommonJS with an ES-style default export.
const BTree = btree.default;
type Tree<K, V> = btree.default<K, V>;

export interface IndexDef {
  name: string;
  /** The index function as a raw ReQL term (a FUNC), kept so it survives restarts. */
  fn: unknown;
  multi: boolean;
  geo: boolean;
}

/** Computes a row's index values; empty when the row is not in the index. */
export type KeyFn = (row: DatumObject) => Datum[];

export interface Index {
  def: IndexDef;
  keys: KeyFn;
  tree: Tree<[Key, Key], DatumObject>;
}

export interface RowChange {
  old: DatumObject | null;
  new: DatumObject | null;
}

const pairCompare = (a: [Key, Key], b: [Key, Key]) => compare(a[0], b[0]) || compare(a[1], b[1]);

export class Table {
  readonly rows: Tree<Key, DatumObject> = new BTree<Key, DatumObject>(undefined, compare);
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

  get(key: Datum): DatumObject | undefined {
    return this.rows.get(key);
  }

  *scan(desc = false): Iterable<DatumObject> {
    const it = desc ? this.rows.entriesReversed() : this.rows.entries();
    for (const [, row] of it) yield row;
  }

  /** Rows whose primary key lies in the range, in key order. */
  *primaryRange(lo: Key, hi: Key, loOpen: boolean, hiOpen: boolean, desc = false): Iterable<DatumObject> {
    if (!desc) {
      for (const [k, row] of this.rows.entries(lo === MINVAL ? undefined : (lo as Datum))) {
        if (loOpen && compare(k, lo) === 0) continue;
        const c = compare(k, hi);
        if (c > 0 || (hiOpen && c === 0)) return;
        yield row;
      }
    } else {
      for (const [k, row] of this.rows.entriesReversed(hi === MAXVAL ? undefined : (hi as Datum))) {
        if (hiOpen && compare(k, hi) === 0) continue;
        const c = compare(k, lo);
        if (c < 0 || (loOpen && c === 0)) return;
        yield row;
      }
    }
  }

  /** [index value, row] pairs in the range, in index order. */
  *indexRange(name: string, lo: Key, hi: Key, loOpen: boolean, hiOpen: boolean, desc = false): Iterable<[Key, DatumObject]> {
    const idx = this.indexes.get(name)!;
    if (!desc) {
      const start: [Key, Key] = [lo, loOpen ? MAXVAL : MINVAL];
      for (const [[v], row] of idx.tree.entries(start)) {
        if (loOpen && compare(v, lo) === 0) continue;
        const c = compare(v, hi);
        if (c > 0 || (hiOpen && c === 0)) return;
        yield [v, row];
      }
    } else {
      const start: [Key, Key] = [hi, hiOpen ? MINVAL : MAXVAL];
      for (const [[v], row] of idx.tree.entriesReversed(start)) {
        if (hiOpen && compare(v, hi) === 0) continue;
        const c = compare(v, lo);
        if (c < 0 || (loOpen && c === 0)) return;
        yield [v, row];
      }
    }
  }

  *indexScan(name: string, desc = false): Iterable<[Key, DatumObject]> {
    yield* this.indexRange(name, MINVAL, MAXVAL, false, false, desc);
  }

  addIndex(def: IndexDef, keys: KeyFn): void {
    const tree = new BTree<[Key, Key], DatumObject>(undefined, pairCompare);
    const pk = this.primaryKey;
    // Sorting first and inserting in order builds the tree about twice as fast (restarts).
    const entries: Array<[[Key, Key], DatumObject]> = [];
    for (const [, row] of this.rows.entries()) for (const v of keys(row)) entries.push([[v, row[pk]], row]);
    entries.sort((a, b) => pairCompare(a[0], b[0]));
    for (const [k, row] of entries) tree.set(k, row);
    this.indexes.set(def.name, { def, keys, tree });
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
        for (const idx of this.indexes.values()) for (const v of idx.keys(ch.old)) idx.tree.delete([v, key]);
      }
      if (ch.new) {
        this.rows.set(key, ch.new);
        for (const idx of this.indexes.values()) for (const v of idx.keys(ch.new)) idx.tree.set([v, key], ch.new);
      } else {
        this.rows.delete(key);
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

  /** Loads a row during replay: no feeds exist yet. */
  load(key: Datum, row: DatumObject | null): void {
    const old = this.rows.get(key) ?? null;
    this.apply([{ old, new: row }]);
  }
}
