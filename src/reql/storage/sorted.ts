// A B+ tree of string keys in JavaScript's string order (keys.ts makes index keys sort that
// way), each with an optional value. It can be built at once from sorted keys (a restart), and
// its iterators survive changes made while they are paused (a cursor read in batches): after
// a change they find their place again by key.
//
// A leaf keeps its keys packed in a buffer of its own (keys are latin1: a byte a character):
// the prefix they all share once, then the rest of each one after another. Keys of an index
// share much (a room's entries all start with the room and the time's first bytes), and a
// string of its own costs 16 bytes and a slot besides its characters, so packing takes a chat
// index entry from about 150 bytes to about 60, and the buffer is outside the garbage
// collector's heap. An insert moves the bytes after it (a few kilobytes at most).
const LEAF_MAX = 64;
const INNER_MAX = 64;
/** How full bulk-built nodes are: room for inserts without splitting at once. */
const BULK_FILL = 56;
/** A leaf with more characters than this splits even with few keys. */
const LEAF_CHARS = 64 * 1024;

/** How many leading characters a and b share. */
function shared(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}

/** What the last Leaf.find learnt besides the index: whether k is there, and has the prefix. */
let found = false;
let hasPrefix = false;

/** Buffer's latin1 decoder without toString's checks. */
function latin1(b: Buffer, start: number, end: number): string {
  return (b as unknown as { latin1Slice(s: number, e: number): string }).latin1Slice(start, end);
}

const NO_BYTES = Buffer.alloc(0);

class Leaf<V> {
  /** the prefix every key shares (p bytes), then each key's rest, one after another */
  private buf: Buffer = NO_BYTES;
  private used = 0;
  private p = 0;
  /** buf's first p bytes, as a string */
  private prefix = '';
  /** where each key's rest starts in buf */
  private starts: number[] = [];

  /** set while a snapshot holds this leaf's buffer and starts (captureLeaves): a change copies them first */
  private shared = false;

  /** undefined in a tree without values */
  constructor(public vals: V[] | undefined) {}

  /** A snapshot holds the buffer and starts as they are (see captureLeaves). */
  dump(): LeafDump {
    this.shared = true;
    return { p: this.p, used: this.used, buf: this.buf, starts: this.starts };
  }

  /** A leaf as dump() gave it, its bytes copied from src[at, at + used). */
  static ofDump<V>(src: Buffer, at: number, p: number, used: number, starts: number[]): Leaf<V> {
    const leaf = new Leaf<V>(undefined);
    const buf = bulkBuffer(used);
    src.copy(buf, 0, at, at + used);
    leaf.buf = buf;
    leaf.used = used;
    leaf.p = p;
    leaf.prefix = latin1(buf, 0, p);
    leaf.starts = starts;
    return leaf;
  }

  /** Before a change: a buffer and starts of its own, if a snapshot holds these. */
  private own(): void {
    if (!this.shared) return;
    const buf = Buffer.allocUnsafeSlow(Math.max(this.used, 1));
    this.buf.copy(buf, 0, 0, this.used);
    this.buf = buf;
    this.starts = this.starts.slice();
    this.shared = false;
  }

  static of<V>(keys: string[], vals: V[] | undefined): Leaf<V> {
    const leaf = new Leaf<V>(vals);
    leaf.pack(keys);
    return leaf;
  }

  /**
   * A leaf of keys given as bytes: key i is src[starts[i], ends[i]), in order. Returns
   * undefined when they are not in order.
   */
  static ofRanges<V>(src: Buffer, starts: number[], ends: number[], vals: V[] | undefined): Leaf<V> | undefined {
    const n = starts.length;
    const leaf = new Leaf<V>(vals);
    if (n === 0) return leaf;
    const first = starts[0];
    const last = starts[n - 1];
    // Sorted: what the first and last share, all share.
    let p = 0;
    const max = Math.min(ends[0] - first, ends[n - 1] - last);
    while (p < max && src[first + p] === src[last + p]) p++;
    let size = p;
    for (let i = 0; i < n; i++) {
      size += ends[i] - starts[i] - p;
      // Past the prefix, each key must sort after the one before (it mostly differs at once).
      if (i > 0 && !after(src, starts[i] + p, ends[i], src, starts[i - 1] + p, ends[i - 1])) return undefined;
    }
    const buf = bulkBuffer(size);
    for (let j = 0; j < p; j++) buf[j] = src[first + j];
    let at = p;
    const own = new Array<number>(n); // of exactly this length, as a leaf built at once stays
    for (let i = 0; i < n; i++) {
      const s = starts[i] + p;
      const e = ends[i];
      own[i] = at;
      if (e - s > 256) at += src.copy(buf, at, s, e);
      else for (let j = s; j < e; j++) buf[at++] = src[j];
    }
    leaf.buf = buf;
    leaf.used = size;
    leaf.p = p;
    leaf.prefix = latin1(buf, 0, p);
    leaf.starts = own;
    return leaf;
  }

  get n(): number {
    return this.starts.length;
  }

  get chars(): number {
    return this.used;
  }

  /** Replaces the keys (sorted), in a buffer of just their size. */
  private pack(keys: string[]): void {
    // Sorted: what the first and last share, all share.
    const p = keys.length === 0 ? 0 : shared(keys[0], keys[keys.length - 1]);
    let size = p;
    for (const k of keys) size += k.length - p;
    const buf = size === 0 ? NO_BYTES : Buffer.allocUnsafeSlow(size);
    const starts: number[] = [];
    let at = keys.length === 0 ? 0 : put(buf, 0, keys[0], 0, p);
    for (const k of keys) {
      starts.push(at);
      at = put(buf, at, k, p, k.length);
    }
    this.buf = buf;
    this.used = size;
    this.p = p;
    this.prefix = latin1(buf, 0, p);
    this.starts = starts;
  }

  private start(i: number): number {
    return i < this.starts.length ? this.starts[i] : this.used;
  }

  keyAt(i: number): string {
    const rest = latin1(this.buf, this.starts[i], this.start(i + 1));
    return this.p === 0 ? rest : this.prefix + rest;
  }

  keys(): string[] {
    const out: string[] = [];
    for (let i = 0; i < this.n; i++) out.push(this.keyAt(i));
    return out;
  }

  /** The largest key, as a string of its own. */
  max(): string {
    const k = this.keyAt(this.n - 1);
    return this.p === 0 ? k : latin1(Buffer.from(k, 'latin1'), 0, k.length);
  }

  /** -1 when k sorts before every key of the leaf for its prefix, 1 after, 0 when it has the prefix. */
  private comparePrefix(k: string): number {
    if (k.startsWith(this.prefix)) return 0;
    return k < this.prefix ? -1 : 1;
  }

  /** Compares k, past the prefix, with key i past it. */
  private compareRest(k: string, i: number): number {
    const b = this.buf;
    let a = this.starts[i];
    const end = this.start(i + 1);
    let j = this.p;
    for (; a < end && j < k.length; a++, j++) {
      const x = k.charCodeAt(j);
      const y = b[a];
      if (x !== y) return x < y ? -1 : 1;
    }
    const kLeft = k.length - j;
    const bLeft = end - a;
    return kLeft === bLeft ? 0 : kLeft < bLeft ? -1 : 1;
  }

  /** First index whose key is >= k (or > k when `after`). */
  find(k: string, after: boolean): number {
    const c = this.comparePrefix(k);
    found = false;
    hasPrefix = c === 0;
    if (c !== 0) return c < 0 ? 0 : this.n;
    let lo = 0;
    let hi = this.n;
    let equal = -1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const r = this.compareRest(k, mid);
      if (r === 0) equal = mid;
      if (r > 0 || (after && r === 0)) lo = mid + 1;
      else hi = mid;
    }
    // Searching for the first key >= k, the one found is always among those compared.
    found = !after && equal === lo;
    return lo;
  }

  /** Whether key i is k. */
  is(i: number, k: string): boolean {
    return i < this.n && this.comparePrefix(k) === 0 && this.compareRest(k, i) === 0;
  }

  /** Inserts k at i; `prefixed`: k is known to have the leaf's prefix. */
  insertAt(i: number, k: string, v: V, prefixed = false): void {
    this.own();
    this.vals?.splice(i, 0, v);
    if (this.n === 0 || (!prefixed && this.comparePrefix(k) !== 0)) {
      // It does not share the whole prefix: pack again with a shorter one.
      const keys = this.keys();
      keys.splice(i, 0, k);
      this.pack(keys);
      return;
    }
    const at = this.start(i);
    const len = k.length - this.p;
    if (this.used + len > this.buf.length) {
      // Grown by half, so that a run of inserts copies the leaf a few times, not each time.
      const bigger = Buffer.allocUnsafeSlow(Math.max(this.used + len, Math.ceil(this.buf.length * 1.5)));
      this.buf.copy(bigger, 0, 0, at);
      this.buf.copy(bigger, at + len, at, this.used);
      this.buf = bigger;
    } else {
      this.buf.copyWithin(at + len, at, this.used);
    }
    put(this.buf, at, k, this.p, k.length);
    this.used += len;
    const starts = this.starts;
    for (let j = i; j < starts.length; j++) starts[j] += len;
    starts.splice(i, 0, at);
  }

  removeAt(i: number): void {
    this.own();
    this.vals?.splice(i, 1);
    if (this.n === 1) {
      this.pack([]);
      return;
    }
    const at = this.starts[i];
    const len = this.start(i + 1) - at;
    this.buf.copyWithin(at, at + len, this.used);
    this.used -= len;
    const starts = this.starts;
    starts.splice(i, 1);
    for (let j = i; j < starts.length; j++) starts[j] -= len;
    // Deletes give memory back once the leaf uses a third of its buffer.
    if (this.used < this.buf.length / 3) this.pack(this.keys());
  }

  /**
   * Moves keys [at, n) into a new leaf and returns it. The new leaf gets room for more: inserts
   * mostly come after the last (new messages), into it.
   */
  splitAt(at: number): Leaf<V> {
    const right = this.part(at, this.n, 0.25, this.vals?.splice(at));
    const left = this.part(0, at, 0, this.vals);
    this.buf = left.buf;
    this.used = left.used;
    this.p = left.p;
    this.prefix = left.prefix;
    this.starts = left.starts;
    this.shared = false;
    return right;
  }

  /** A new leaf of keys [from, to), with the longest prefix they share, from this one's bytes. */
  private part(from: number, to: number, room: number, vals: V[] | undefined): Leaf<V> {
    const b = this.buf;
    const first = this.starts[from];
    const last = this.starts[to - 1];
    const firstEnd = this.start(from + 1);
    const lastEnd = this.start(to);
    // They share the prefix, and perhaps more of what follows it.
    let more = 0;
    while (first + more < firstEnd && last + more < lastEnd && b[first + more] === b[last + more]) more++;
    const p = this.p + more;
    const size = p + (this.start(to) - first) - (to - from) * more;
    const leaf = new Leaf<V>(vals);
    const buf = Buffer.allocUnsafeSlow(Math.max(1, Math.ceil(size * (1 + room))));
    b.copy(buf, 0, 0, this.p);
    b.copy(buf, this.p, first, first + more);
    let at = p;
    const starts: number[] = [];
    for (let i = from; i < to; i++) {
      starts.push(at);
      at += b.copy(buf, at, this.starts[i] + more, this.start(i + 1));
    }
    leaf.buf = buf;
    leaf.used = size;
    leaf.p = p;
    leaf.prefix = latin1(buf, 0, p);
    leaf.starts = starts;
    return leaf;
  }

  /** Takes every key of `other`, which all sort after these. */
  absorb(other: Leaf<V>): void {
    if (this.vals && other.vals) this.vals.push(...other.vals);
    this.pack([...this.keys(), ...other.keys()]);
  }
}

/** Whether a[as, ae) sorts after b[bs, be), bytewise. */
function after(a: Buffer, as: number, ae: number, b: Buffer, bs: number, be: number): boolean {
  const n = Math.min(ae - as, be - bs);
  for (let i = 0; i < n; i++) {
    const x = a[as + i];
    const y = b[bs + i];
    if (x !== y) return x > y;
  }
  return ae - as > be - bs;
}

/**
 * Buffers for leaves built at once (a restart), cut from shared slabs: one allocation for many
 * leaves. A leaf that changes gets a buffer of its own.
 */
const SLAB = 1024 * 1024;
let slab = Buffer.alloc(0);
let slabAt = 0;
function bulkBuffer(size: number): Buffer {
  if (size > SLAB / 8) return Buffer.allocUnsafeSlow(size);
  if (slabAt + size > slab.length) {
    slab = Buffer.allocUnsafeSlow(SLAB);
    slabAt = 0;
  }
  slabAt += size;
  return slab.subarray(slabAt - size, slabAt);
}

/** Writes k's characters [from, to) (bytes: keys are latin1) at buf[at]; returns where they end. */
function put(buf: Buffer, at: number, k: string, from: number, to: number): number {
  if (to - from > 64) return at + buf.write(from === 0 && to === k.length ? k : k.slice(from, to), at, 'latin1');
  for (let i = from; i < to; i++) buf[at++] = k.charCodeAt(i);
  return at;
}

/** A leaf's keys as a snapshot writes them: prefix length, bytes used in buf, each key's start. */
export interface LeafDump {
  p: number;
  used: number;
  buf: Buffer;
  starts: number[];
}

class Inner<V> {
  constructor(
    /** the largest key under each child */
    public maxes: string[],
    public kids: Array<Node<V>>,
  ) {}
}

type Node<V> = Leaf<V> | Inner<V>;

/** First index whose key is >= k (or > k when `after`). */
function search(keys: string[], k: string, after: boolean): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const m = keys[mid];
    if (m < k || (after && m === k)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function maxOf<V>(n: Node<V>): string {
  return n instanceof Leaf ? n.max() : n.maxes[n.maxes.length - 1];
}

function sizeOf<V>(n: Node<V>): number {
  return n instanceof Leaf ? n.n : n.kids.length;
}

export class SortedMap<V = undefined> {
  private root: Node<V>;
  private count = 0;
  /** Bumped on every change, so paused iterators know to find their place again. */
  private version = 0;

  /** `withValues` false: a sorted set of keys (set() ignores its value). */
  constructor(private readonly withValues: boolean) {
    this.root = new Leaf<V>(withValues ? [] : undefined);
  }

  /** A tree holding exactly these keys, which must be sorted and distinct. */
  static fromSorted<V>(keys: string[], vals?: V[]): SortedMap<V> {
    const leaves: Array<Leaf<V>> = [];
    for (let i = 0; i < keys.length; i += BULK_FILL) {
      leaves.push(Leaf.of(keys.slice(i, i + BULK_FILL), vals?.slice(i, i + BULK_FILL)));
    }
    return SortedMap.ofLeaves(leaves, keys.length, vals !== undefined);
  }

  /** A tree over leaves in order (SortedBuilder's). */
  static ofLeaves<V>(leaves: Array<Leaf<V>>, count: number, withValues: boolean): SortedMap<V> {
    const t = new SortedMap<V>(withValues);
    t.count = count;
    if (count === 0) return t;
    let level: Array<Node<V>> = leaves;
    while (level.length > 1) {
      const up: Array<Node<V>> = [];
      for (let i = 0; i < level.length; i += BULK_FILL) {
        const kids = level.slice(i, i + BULK_FILL);
        up.push(new Inner(kids.map(maxOf), kids));
      }
      level = up;
    }
    t.root = level[0];
    return t;
  }

  get size(): number {
    return this.count;
  }

  has(k: string): boolean {
    const leaf = this.leafFor(k);
    if (!leaf) return false;
    leaf.find(k, false);
    return found;
  }

  get(k: string): V | undefined {
    const leaf = this.leafFor(k);
    if (!leaf || !leaf.vals) return undefined;
    const i = leaf.find(k, false);
    return found ? leaf.vals[i] : undefined;
  }

  /** The leaf k would be in, if it is in the tree. */
  private leafFor(k: string): Leaf<V> | undefined {
    let n = this.root;
    while (n instanceof Inner) {
      const i = search(n.maxes, k, false);
      if (i === n.maxes.length) return undefined;
      n = n.kids[i];
    }
    return n;
  }

  /** Adds or replaces; returns true when the key is new. */
  set(k: string, v?: V): boolean {
    this.version++;
    const { added, split } = this.insert(this.root, k, v as V);
    if (split) this.root = new Inner([maxOf(this.root), maxOf(split)], [this.root, split]);
    if (added) this.count++;
    return added;
  }

  private insert(n: Node<V>, k: string, v: V): { added: boolean; split?: Node<V> } {
    if (n instanceof Leaf) {
      const i = n.find(k, false);
      if (found) {
        if (n.vals) n.vals[i] = v;
        return { added: false };
      }
      n.insertAt(i, k, v, hasPrefix);
      if (n.n <= LEAF_MAX && (n.chars <= LEAF_CHARS || n.n < 2)) return { added: true };
      // Split in half, or just after the new key when it is in the upper half: keys that come
      // in order (a room's new messages) then leave full leaves behind them, not half-empty ones.
      const at = i >= n.n >>> 1 ? Math.min(i + 1, n.n - 1) : n.n >>> 1;
      return { added: true, split: n.splitAt(at) };
    }
    let i = search(n.maxes, k, false);
    if (i === n.maxes.length) {
      i--; // larger than everything: it goes at the end of the last child
      n.maxes[i] = k;
    }
    const kid = n.kids[i];
    const r = this.insert(kid, k, v);
    if (!r.split) return { added: r.added };
    n.maxes[i] = maxOf(kid);
    n.maxes.splice(i + 1, 0, maxOf(r.split));
    n.kids.splice(i + 1, 0, r.split);
    if (n.kids.length <= INNER_MAX) return { added: r.added };
    const half = n.kids.length >>> 1;
    return { added: r.added, split: new Inner<V>(n.maxes.splice(half), n.kids.splice(half)) };
  }

  /** Removes k; returns true when it was there. */
  delete(k: string): boolean {
    if (!this.remove(this.root, k)) return false;
    this.version++;
    this.count--;
    const root = this.root;
    if (root instanceof Inner && root.kids.length === 1) this.root = root.kids[0];
    return true;
  }

  private remove(n: Node<V>, k: string): boolean {
    if (n instanceof Leaf) {
      const i = n.find(k, false);
      if (!found) return false;
      n.removeAt(i);
      return true;
    }
    const i = search(n.maxes, k, false);
    if (i === n.maxes.length) return false;
    const kid = n.kids[i];
    if (!this.remove(kid, k)) return false;
    const size = sizeOf(kid);
    if (size === 0) {
      n.maxes.splice(i, 1);
      n.kids.splice(i, 1);
      return true;
    }
    if (k === n.maxes[i]) n.maxes[i] = maxOf(kid);
    // A thin child joins a neighbour when both fit in one node, so deletes do not leave
    // the tree full of near-empty leaves.
    const limit = kid instanceof Leaf ? LEAF_MAX : INNER_MAX;
    if (size < limit / 4) {
      const j = i > 0 ? i - 1 : i + 1 < n.kids.length ? i + 1 : -1;
      if (j >= 0 && sizeOf(n.kids[j]) + size <= limit) {
        const [a, b] = j < i ? [j, i] : [i, j];
        const left = n.kids[a];
        const right = n.kids[b];
        let merged = true;
        if (left instanceof Leaf && right instanceof Leaf) {
          if (left.chars + right.chars <= LEAF_CHARS) left.absorb(right);
          else merged = false;
        } else if (left instanceof Inner && right instanceof Inner) {
          left.maxes.push(...right.maxes);
          left.kids.push(...right.kids);
        }
        if (merged) {
          n.maxes[a] = maxOf(left);
          n.maxes.splice(b, 1);
          n.kids.splice(b, 1);
        }
      }
    }
    return true;
  }

  /**
   * Entries in order from a bound: ascending from `from` (the first key, or keys > from when
   * `exclusive`), or descending from it (keys <= from, or < from). Without `from`, from the
   * first (last) key. Changes to the tree between steps are seen.
   */
  *entries(from?: string, exclusive = false, desc = false): Generator<[string, V]> {
    let bound = from;
    let strict = exclusive;
    for (;;) {
      const version = this.version;
      const found = desc ? this.seekDown(this.root, bound, strict) : this.seekUp(bound, strict);
      if (!found) return;
      const [leaf, start] = found;
      const vals = leaf.vals;
      let last: string | undefined;
      if (!desc) {
        for (let i = start; i < leaf.n; i++) {
          last = leaf.keyAt(i);
          yield [last, vals ? vals[i] : (undefined as V)];
          if (this.version !== version) break;
        }
      } else {
        for (let i = start; i >= 0; i--) {
          last = leaf.keyAt(i);
          yield [last, vals ? vals[i] : (undefined as V)];
          if (this.version !== version) break;
        }
      }
      if (last === undefined) return;
      bound = last;
      strict = true;
    }
  }

  /** Every key (and value) in order, in new arrays: a picture of the tree that later changes do not touch. */
  toArrays(): { keys: string[]; vals: V[] } {
    const keys: string[] = [];
    const vals: V[] = [];
    const walk = (n: Node<V>): void => {
      if (n instanceof Leaf) {
        for (let i = 0; i < n.n; i++) keys.push(n.keyAt(i));
        if (n.vals) for (const v of n.vals) vals.push(v);
      } else for (const kid of n.kids) walk(kid);
    };
    walk(this.root);
    return { keys, vals };
  }

  /**
   * The leaves of a tree without values, in order, as they are now: later changes copy a
   * leaf's bytes before touching them, so these stay as they are.
   */
  captureLeaves(): LeafDump[] {
    const out: LeafDump[] = [];
    const walk = (n: Node<V>): void => {
      if (n instanceof Leaf) {
        if (n.n > 0) out.push(n.dump());
      } else for (const kid of n.kids) walk(kid);
    };
    walk(this.root);
    return out;
  }

  /** A tree of leaves a snapshot dumped (see captureLeaves), in order. */
  static ofDumps(leaves: Array<Leaf<undefined>>): SortedMap {
    let count = 0;
    for (const l of leaves) count += l.n;
    return SortedMap.ofLeaves(leaves, count, false);
  }

  /**
   * For each of `keys` (sorted) still in the tree, sets its value to `fn(i, value)`; the tree's
   * shape does not change, so iterators carry on. One walk over both.
   */
  remap(keys: string[], fn: (i: number, value: V) => V): void {
    let i = 0;
    const walk = (n: Node<V>): void => {
      if (n instanceof Leaf) {
        const vals = n.vals;
        if (!vals) return;
        for (let j = 0; j < n.n && i < keys.length; j++) {
          const k = n.keyAt(j);
          while (i < keys.length && keys[i] < k) i++;
          if (keys[i] === k) vals[j] = fn(i++, vals[j]);
        }
        return;
      }
      for (const kid of n.kids) {
        if (i >= keys.length) return;
        walk(kid);
      }
    };
    walk(this.root);
  }

  /** Sets k's value to v if it is `expected` now (no change to the tree's shape); returns whether it did. */
  replace(k: string, expected: V, v: V): boolean {
    const leaf = this.leafFor(k);
    if (!leaf || !leaf.vals) return false;
    const i = leaf.find(k, false);
    if (!found || leaf.vals[i] !== expected) return false;
    leaf.vals[i] = v;
    return true;
  }

  /** Replaces every value by fn(value), in place. */
  mapValues(fn: (value: V) => V): void {
    const walk = (n: Node<V>): void => {
      if (n instanceof Leaf) {
        const vals = n.vals;
        if (vals) for (let j = 0; j < vals.length; j++) vals[j] = fn(vals[j]);
      } else for (const kid of n.kids) walk(kid);
    };
    walk(this.root);
  }

  /** Keys only, in order (see entries). */
  *keys(from?: string, exclusive = false, desc = false): Generator<string> {
    let bound = from;
    let strict = exclusive;
    for (;;) {
      const version = this.version;
      const found = desc ? this.seekDown(this.root, bound, strict) : this.seekUp(bound, strict);
      if (!found) return;
      const [leaf, start] = found;
      let last: string | undefined;
      if (!desc) {
        for (let i = start; i < leaf.n; i++) {
          yield (last = leaf.keyAt(i));
          if (this.version !== version) break;
        }
      } else {
        for (let i = start; i >= 0; i--) {
          yield (last = leaf.keyAt(i));
          if (this.version !== version) break;
        }
      }
      if (last === undefined) return;
      bound = last;
      strict = true;
    }
  }

  /** The leaf and position of the first key >= bound (> bound when strict). */
  private seekUp(bound: string | undefined, strict: boolean): [Leaf<V>, number] | undefined {
    let n = this.root;
    if (bound === undefined) {
      while (n instanceof Inner) n = n.kids[0];
      return n.n ? [n, 0] : undefined;
    }
    while (n instanceof Inner) {
      const i = search(n.maxes, bound, strict);
      if (i === n.maxes.length) return undefined;
      n = n.kids[i];
    }
    const i = n.find(bound, strict);
    return i < n.n ? [n, i] : undefined;
  }

  /** The leaf and position of the last key <= bound (< bound when strict). */
  private seekDown(n: Node<V>, bound: string | undefined, strict: boolean): [Leaf<V>, number] | undefined {
    if (bound === undefined) {
      while (n instanceof Inner) n = n.kids[n.kids.length - 1];
      return n.n ? [n, n.n - 1] : undefined;
    }
    if (n instanceof Leaf) {
      const i = n.find(bound, !strict) - 1;
      return i >= 0 ? [n, i] : undefined;
    }
    // The first child whose largest key reaches the bound may hold it; if it holds nothing
    // below it, the answer is the last key of the child before (whose keys are all below).
    let i = search(n.maxes, bound, false);
    if (i === n.maxes.length) i--;
    const hit = this.seekDown(n.kids[i], bound, strict);
    if (hit || i === 0) return hit;
    return this.seekDown(n.kids[i - 1], undefined, false);
  }
}

/**
 * Builds a tree from keys given in order as bytes (a snapshot's blocks), packing leaves as it
 * goes, so that no key becomes a string of its own. Keys out of order (a damaged file) are
 * sorted at the end instead. The bytes given to add() are read when a leaf is full, or by
 * detach(), which must be called before the buffer they are in is reused.
 */
export class SortedBuilder<V = undefined> {
  private readonly leaves: Array<Leaf<V>> = [];
  /** the buffer the keys waiting for a leaf are in */
  private src: Buffer | undefined;
  /** where detach() copies them */
  private own = Buffer.alloc(0);
  private ownUsed = 0;
  private starts: number[] = [];
  private ends: number[] = [];
  private vals: V[] | undefined;
  private count = 0;
  /** a copy of the last key of the last leaf, to check the order across leaves */
  private last = Buffer.alloc(0);
  /** every key and value as strings, once the keys were found out of order */
  private loose?: Array<[string, V]>;

  constructor(private readonly withValues: boolean) {
    this.vals = withValues ? [] : undefined;
  }

  add(src: Buffer, start: number, end: number, v?: V): void {
    if (this.loose) {
      this.loose.push([latin1(src, start, end), v as V]);
      return;
    }
    if (this.src !== src && this.starts.length > 0) {
      // Keys waiting in a copy of their own (detach()): this one joins them there.
      if (this.src !== this.own) throw new Error('SortedBuilder: keys from another buffer before detach()');
      const at = this.ownUsed;
      this.room(end - start);
      this.ownUsed += src.copy(this.own, at, start, end);
      this.starts.push(at);
      this.ends.push(this.ownUsed);
    } else {
      this.src = src;
      this.starts.push(start);
      this.ends.push(end);
    }
    this.vals?.push(v as V);
    this.count++;
    if (this.starts.length === BULK_FILL) this.flush();
  }

  /** Copies the keys waiting for a leaf out of the buffer they are in. */
  detach(): void {
    const src = this.src;
    if (this.loose || this.starts.length === 0 || !src || src === this.own) return;
    let size = 0;
    for (let i = 0; i < this.starts.length; i++) size += this.ends[i] - this.starts[i];
    this.ownUsed = 0;
    this.room(size);
    let at = 0;
    for (let i = 0; i < this.starts.length; i++) {
      const n = src.copy(this.own, at, this.starts[i], this.ends[i]);
      this.starts[i] = at;
      this.ends[i] = at += n;
    }
    this.ownUsed = at;
    this.src = this.own;
  }

  private room(n: number): void {
    if (this.ownUsed + n <= this.own.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.own.length * 2, this.ownUsed + n, 4096));
    this.own.copy(bigger, 0, 0, this.ownUsed);
    if (this.src === this.own) this.src = bigger;
    this.own = bigger;
  }

  private flush(): void {
    const src = this.src;
    if (this.starts.length === 0 || !src) return;
    const n = this.starts.length;
    // The values copied to an array of exactly their number (one grown by push keeps room).
    const leaf = Leaf.ofRanges(src, this.starts, this.ends, this.vals?.slice());
    if (!leaf || (this.last.length > 0 && !after(src, this.starts[0], this.ends[0], this.last, 0, this.last.length))) {
      this.loose = this.all();
      return;
    }
    this.leaves.push(leaf);
    const ls = this.starts[n - 1];
    const le = this.ends[n - 1];
    if (this.last.length < le - ls) this.last = Buffer.allocUnsafe((le - ls) * 2);
    src.copy(this.last, 0, ls, le);
    this.last = this.last.subarray(0, le - ls);
    this.starts = [];
    this.ends = [];
    this.vals = this.withValues ? [] : undefined;
  }

  /** Everything added so far (built into leaves, or waiting), as strings. */
  private all(): Array<[string, V]> {
    const out: Array<[string, V]> = [];
    for (const leaf of this.leaves) for (let i = 0; i < leaf.n; i++) out.push([leaf.keyAt(i), leaf.vals ? leaf.vals[i] : (undefined as V)]);
    for (let i = 0; i < this.starts.length; i++) out.push([latin1(this.src!, this.starts[i], this.ends[i]), this.vals ? this.vals[i] : (undefined as V)]);
    this.leaves.length = 0;
    this.starts = [];
    this.ends = [];
    return out;
  }

  finish(): SortedMap<V> {
    if (!this.loose) this.flush();
    if (this.loose) {
      const pairs = this.loose.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).filter((x, i, a) => i === 0 || a[i - 1][0] !== x[0]);
      return SortedMap.fromSorted(pairs.map((x) => x[0]), this.withValues ? pairs.map((x) => x[1]) : undefined);
    }
    return SortedMap.ofLeaves(this.leaves, this.count, this.withValues);
  }
}

/** Leaves of a snapshot, read back (see captureLeaves); ofDumps builds the tree. */
export function leafOfDump(src: Buffer, at: number, p: number, used: number, starts: number[]): Leaf<undefined> {
  return Leaf.ofDump(src, at, p, used, starts);
}

export type { Leaf };
