// A table held in memory: rows in a B+ tree by primary key, and one B+ tree per secondary
// index holding entries [index value, primary key], so ranges and ordered limits cost
// O(log n + k). Keys are strings that sort as their values do (keys.ts), so the trees compare
// them natively; an index entry is only its key, and leads to its row through the primary key.
//
// A row is kept as its JSON text (a string of one byte a character: JSON with only ASCII in
// it, or else a marker and the bytes of its UTF-8) and parsed on each read. In a table with a
// RowFile (one that persists), a row the last snapshot holds is not in memory at all: its
// value in the tree is the offset of its text in the log file, read when it is needed (the
// operating system's page cache keeps the file's busy parts in memory, outside the process).
import { MAXVAL, MINVAL, type Datum, type DatumObject, type Key } from '../engine/datum.js';
import { AFTER, decodeKey, encodeKey, encodePair, lastElement, skipKey } from './keys.js';
import { SortedMap, type LeafDump } from './sorted.js';

export interface IndexDef {
  name: string;
  /** The index function as a raw ReQL term (a FUNC), kept so it survives restarts. */
  fn: unknown;
  multi: boolean;
  geo: boolean;
}

/**
 * Computes a row's index values (a value may come more than once); empty when the row is not
 * in the index. `lastField`: every value is an array whose last element is this field of the
 * row (as in [room, sent, id]); when it is the primary key, entries leave the key out.
 */
export type KeyFn = ((row: DatumObject) => Datum[]) & { lastField?: string };

export interface Index {
  def: IndexDef;
  keys: KeyFn;
  /** every entry's encodePair(value, primary key), or encodeKey(value) when the value ends with the key */
  tree: SortedMap;
  /** whether entries are the value alone (its last element is the primary key) */
  keyLast: boolean;
}

export interface RowChange {
  old: DatumObject | null;
  new: DatumObject | null;
  /** the new row's text, and the encoded primary key: set by Table.apply */
  text?: string;
  key?: string;
}

/** How many parsed rows a table keeps for reads (see Table.recent). */
const RECENT_ROWS = 2048;
/** How many bytes of row texts a table keeps for reads (see Table.texts): some 17,000 messages. */
const TEXT_BYTES = 8 * 1024 * 1024;

/** Marks a row text that holds UTF-8 bytes (one a character) rather than ASCII JSON. */
const UTF8 = '\x01';

/** A row as it is stored: its JSON, one byte a character. */
export function rowText(row: DatumObject): string {
  const json = JSON.stringify(row);
  // Only ASCII: the same length in UTF-8.
  return Buffer.byteLength(json) === json.length ? json : UTF8 + Buffer.from(json).toString('latin1');
}

/** The row a stored text holds (a new object each time). */
export function parseRow(text: string): DatumObject {
  return JSON.parse(text.charCodeAt(0) === 1 ? Buffer.from(text, 'latin1').toString('utf8', 1) : text) as DatumObject;
}

/** The UTF-8 bytes of a row text's JSON: where they start in the text (the text is written as latin1). */
export function rowTextStart(text: string): number {
  return text.charCodeAt(0) === 1 ? 1 : 0;
}

/** Where rows of the last snapshot are read from (the log file): the row whose text is at an offset. */
export interface RowFile {
  read(offset: number): DatumObject;
  /** The row's text as Table keeps texts (see rowText). */
  text(offset: number): string;
}

/**
 * A row's place: its text; or, in the RowFile, the offset of its text in a snapshot (>= 0), or
 * -1 - the offset of a row written after it, in its put record (the digits of its "n").
 */
export type RowRef = string | number;

export class Table {
  /** rows by encodeKey(primary key) */
  private rows = new SortedMap<RowRef>(true);
  /** set for a table whose rows the log keeps */
  file?: RowFile;
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

  private row(ref: RowRef): DatumObject {
    return typeof ref === 'string' ? parseRow(ref) : this.file!.read(ref);
  }

  /**
   * Rows read by key or through an index lately, parsed: a room's latest messages are read
   * again and again. Rows are never changed in place (a write replaces the object), so
   * readers may share one. A write drops its row from here.
   */
  private readonly recent = new Map<string, DatumObject>();

  /**
   * Texts of rows the file holds that were read or written lately, so that reading them again
   * is not a read of the file (a system call each): a room's newest messages, mostly.
   */
  private readonly texts = new Map<string, string>();
  private textBytes = 0;

  private keepText(k: string, text: string): void {
    const had = this.texts.get(k);
    if (had !== undefined) {
      this.texts.delete(k);
      this.textBytes -= had.length;
    }
    this.texts.set(k, text);
    this.textBytes += text.length;
    while (this.textBytes > TEXT_BYTES) {
      const [oldest, t] = this.texts.entries().next().value!;
      this.texts.delete(oldest);
      this.textBytes -= t.length;
    }
  }

  private forget(k: string): void {
    this.recent.delete(k);
    const had = this.texts.get(k);
    if (had !== undefined) {
      this.texts.delete(k);
      this.textBytes -= had.length;
    }
  }

  private rowOf(k: string, ref: RowRef): DatumObject {
    const hit = this.recent.get(k);
    if (hit) return hit;
    let row: DatumObject;
    if (typeof ref === 'string') row = parseRow(ref);
    else {
      let text = this.texts.get(k);
      if (text === undefined) {
        text = this.file!.text(ref);
        this.keepText(k, text);
      }
      row = parseRow(text);
    }
    if (this.recent.size >= RECENT_ROWS) this.recent.delete(this.recent.keys().next().value!);
    this.recent.set(k, row);
    return row;
  }

  get(key: Datum): DatumObject | undefined {
    const k = encodeKey(key);
    const ref = this.rows.get(k);
    return ref === undefined ? undefined : this.rowOf(k, ref);
  }

  *scan(desc = false): Iterable<DatumObject> {
    for (const [, ref] of this.rows.entries(undefined, false, desc)) yield this.row(ref);
  }

  /** Rows whose primary key lies in the range, in key order. */
  *primaryRange(lo: Key, hi: Key, loOpen: boolean, hiOpen: boolean, desc = false): Iterable<DatumObject> {
    const l = encodeKey(lo);
    const h = encodeKey(hi);
    if (!desc) {
      for (const [k, ref] of this.rows.entries(l, loOpen)) {
        if (k > h || (hiOpen && k === h)) return;
        yield this.row(ref);
      }
    } else {
      for (const [k, ref] of this.rows.entries(h, hiOpen, true)) {
        if (k < l || (loOpen && k === l)) return;
        yield this.row(ref);
      }
    }
  }

  /** Index entries in the range, in index order, each with its row (the same array each time: read it at once). */
  private *entriesIn(name: string, lo: Key, hi: Key, loOpen: boolean, hiOpen: boolean, desc: boolean): Generator<[string, DatumObject]> {
    const idx = this.indexes.get(name)!;
    // An entry is value + primary key: every entry of value v lies in [enc(v), enc(v) + AFTER).
    const l = encodeKey(lo);
    const h = encodeKey(hi);
    // (An entry that is the value alone is enc(v) itself.)
    const from = desc ? (hiOpen ? h : h + AFTER) : loOpen ? l + AFTER : l;
    const stop = desc ? (loOpen ? l + AFTER : l) : hiOpen ? h : h + AFTER;
    const out: [string, DatumObject] = ['', {}];
    for (const entry of idx.tree.keys(from, desc && hiOpen, desc)) {
      if (desc ? entry < stop : entry >= stop) return;
      let pk: string;
      if (idx.keyLast) {
        const [a, b] = lastElement(entry);
        pk = entry.slice(a, b);
      } else pk = entry.slice(skipKey(entry, 0));
      const ref = this.rows.get(pk);
      if (ref === undefined) continue;
      out[0] = entry;
      out[1] = this.rowOf(pk, ref);
      yield out;
    }
  }

  /** Rows of the index entries in the range, in index order (a row once per entry). */
  *indexRows(name: string, lo: Key, hi: Key, loOpen: boolean, hiOpen: boolean, desc = false): Iterable<DatumObject> {
    for (const e of this.entriesIn(name, lo, hi, loOpen, hiOpen, desc)) yield e[1];
  }

  /**
   * [index value, row] pairs in the range, in index order. The value is read back from the
   * entry, so a time comes in UTC and an object with sorted keys (equal in order, that is).
   */
  *indexRange(name: string, lo: Key, hi: Key, loOpen: boolean, hiOpen: boolean, desc = false): Iterable<[Key, DatumObject]> {
    for (const [entry, row] of this.entriesIn(name, lo, hi, loOpen, hiOpen, desc)) yield [decodeKey(entry, 0)[0], row];
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
    for (const v of vals) out.push(idx.keyLast ? encodeKey(v) : encodePair(v, pk));
    return out;
  }

  /** Whether an index of these keys leaves the primary key out of its entries. */
  keyLast(keys: KeyFn): boolean {
    return keys.lastField === this.primaryKey;
  }

  addIndex(def: IndexDef, keys: KeyFn): void {
    const pk = this.primaryKey;
    const idx: Index = { def, keys, tree: new SortedMap(false), keyLast: this.keyLast(keys) };
    // Sorting once and building the tree from sorted keys is far quicker than inserting each.
    const entries: string[] = [];
    for (const [, ref] of this.rows.entries()) {
      const row = this.row(ref);
      for (const e of this.entriesOf(idx, row, row[pk])) entries.push(e);
    }
    this.loadIndex(def, keys, entries, idx.keyLast);
  }

  /**
   * Adds an index whose entries are given (from a snapshot): sorted, as they are there, or not.
   * Entries made the other way (with or without the primary key) are made again from the rows.
   */
  loadIndex(def: IndexDef, keys: KeyFn, entries: string[] | SortedMap, keyLast: boolean): void {
    if (keyLast !== this.keyLast(keys)) {
      this.addIndex(def, keys);
      return;
    }
    if (Array.isArray(entries)) idxSortUnique(entries);
    const tree = Array.isArray(entries) ? SortedMap.fromSorted<undefined>(entries) : entries;
    this.indexes.set(def.name, { def, keys, tree, keyLast });
  }

  /** Replaces every row (from a snapshot): encoded primary keys, each with its place. */
  loadRows(rows: SortedMap<RowRef>): void {
    this.rows = rows;
    this.recent.clear();
    this.texts.clear();
    this.textBytes = 0;
  }

  /** The rows as they are now, in key order: what a snapshot writes. */
  captureRows(): { keys: string[]; refs: RowRef[] } {
    const { keys, vals } = this.rows.toArrays();
    return { keys, refs: vals };
  }

  /** An index's entries as they are now, in order, leaf by leaf (later changes copy before they touch them). */
  captureIndex(name: string): LeafDump[] {
    return this.indexes.get(name)!.tree.captureLeaves();
  }

  /**
   * After a snapshot of `keys` whose places were `was` is written, the rows it holds are read
   * from it (at `now`), unless they changed meanwhile.
   */
  relocate(keys: string[], was: RowRef[], now: ArrayLike<number>, from: number): void {
    // A row kept as its text when the snapshot was taken may have been found in the file since:
    // at an offset before `from`, so the same text.
    this.rows.remap(keys, (i, ref) => (ref === was[i] || (typeof ref === 'number' && ref < 0 && -ref - 1 < from) ? now[i] : ref));
  }

  /** The rows written after a snapshot moved from `from` on in the old file to `to` on in the new. */
  shiftTail(from: number, to: number): void {
    this.rows.mapValues((ref) => (typeof ref === 'number' && ref < 0 && -ref - 1 >= from ? -(-ref - 1 - from + to) - 1 : ref));
  }

  /** A row's text was written to the file at `ref`: read it there from now on, unless it changed. */
  settle(key: string, text: string, ref: number): void {
    // Kept a while as a text still: what was just written is what is read next.
    if (this.rows.replace(key, text, ref)) this.keepText(key, text);
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
      ch.key = k;
      if (ch.new) {
        ch.text = rowText(ch.new);
        this.rows.set(k, ch.text);
        this.forget(k);
        for (const idx of this.indexes.values()) for (const e of this.entriesOf(idx, ch.new, key)) idx.tree.set(e);
      } else {
        this.rows.delete(k);
        this.forget(k);
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

  /**
   * Sets a row without telling feeds (a replayed write, or a system table's row); indexes
   * follow. `ref`: where the file holds the row, instead of keeping its text.
   */
  load(key: Datum, row: DatumObject | null, ref?: number): void {
    const k = encodeKey(key);
    if (this.indexes.size > 0) {
      const ref = this.rows.get(k);
      const old = ref === undefined ? null : this.row(ref);
      for (const idx of this.indexes.values()) {
        if (old) for (const e of this.entriesOf(idx, old, key)) idx.tree.delete(e);
        if (row) for (const e of this.entriesOf(idx, row, key)) idx.tree.set(e);
      }
    }
    if (row) this.rows.set(k, ref ?? rowText(row));
    else this.rows.delete(k);
    this.forget(k);
  }
}

/** Sorts strings in place and drops repeats (already sorted, as from a snapshot, costs one pass). */
function idxSortUnique(a: string[]): void {
  let sorted = true;
  for (let i = 1; i < a.length && sorted; i++) if (!(a[i - 1] < a[i])) sorted = false;
  if (sorted) return;
  a.sort();
  let n = 0;
  for (let i = 0; i < a.length; i++) if (i === 0 || a[i] !== a[i - 1]) a[n++] = a[i];
  a.length = n;
}
