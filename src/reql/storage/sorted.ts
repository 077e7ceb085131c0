// A B+ tree of string keys in JavaScript's string order (keys.ts makes index keys sort that
// way), each with an optional value. Leaves are plain arrays, so an entry costs one array slot
// for its key (and one for its value, in a tree that has values). It can be built at once from
// sorted keys (a restart), and its iterators survive changes made while they are paused
// (a cursor read in batches): after a change they find their place again by key.
const LEAF_MAX = 64;
const INNER_MAX = 64;
/** How full bulk-built nodes are: room for inserts without splitting at once. */
const BULK_FILL = 56;

class Leaf<V> {
  constructor(
    public keys: string[],
    /** undefined in a tree without values */
    public vals: V[] | undefined,
  ) {}
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
  return n instanceof Leaf ? n.keys[n.keys.length - 1] : n.maxes[n.maxes.length - 1];
}

function sizeOf<V>(n: Node<V>): number {
  return n instanceof Leaf ? n.keys.length : n.kids.length;
}

export class SortedMap<V = undefined> {
  private root: Node<V>;
  private count = 0;
  /** Bumped on every change, so paused iterators know to find their place again. */
  private version = 0;

  /** `withValues` false: a sorted set of keys (set() ignores its value). */
  constructor(private readonly withValues: boolean) {
    this.root = new Leaf<V>([], withValues ? [] : undefined);
  }

  /** A tree holding exactly these keys, which must be sorted and distinct. */
  static fromSorted<V>(keys: string[], vals?: V[]): SortedMap<V> {
    const t = new SortedMap<V>(vals !== undefined);
    t.count = keys.length;
    if (keys.length === 0) return t;
    let level: Array<Node<V>> = [];
    for (let i = 0; i < keys.length; i += BULK_FILL) {
      level.push(new Leaf(keys.slice(i, i + BULK_FILL), vals?.slice(i, i + BULK_FILL)));
    }
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
    const i = search(leaf.keys, k, false);
    return leaf.keys[i] === k;
  }

  get(k: string): V | undefined {
    const leaf = this.leafFor(k);
    if (!leaf || !leaf.vals) return undefined;
    const i = search(leaf.keys, k, false);
    return leaf.keys[i] === k ? leaf.vals[i] : undefined;
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
      const i = search(n.keys, k, false);
      if (n.keys[i] === k) {
        if (n.vals) n.vals[i] = v;
        return { added: false };
      }
      n.keys.splice(i, 0, k);
      n.vals?.splice(i, 0, v);
      if (n.keys.length <= LEAF_MAX) return { added: true };
      const half = n.keys.length >>> 1;
      const right = new Leaf<V>(n.keys.splice(half), n.vals?.splice(half));
      return { added: true, split: right };
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
      const i = search(n.keys, k, false);
      if (n.keys[i] !== k) return false;
      n.keys.splice(i, 1);
      n.vals?.splice(i, 1);
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
    n.maxes[i] = maxOf(kid);
    // A thin child joins a neighbour when both fit in one node, so deletes do not leave
    // the tree full of near-empty leaves.
    const limit = kid instanceof Leaf ? LEAF_MAX : INNER_MAX;
    if (size < limit / 4) {
      const j = i > 0 ? i - 1 : i + 1 < n.kids.length ? i + 1 : -1;
      if (j >= 0 && sizeOf(n.kids[j]) + size <= limit) {
        const [a, b] = j < i ? [j, i] : [i, j];
        const left = n.kids[a];
        const right = n.kids[b];
        if (left instanceof Leaf && right instanceof Leaf) {
          left.keys.push(...right.keys);
          if (left.vals && right.vals) left.vals.push(...right.vals);
        } else if (left instanceof Inner && right instanceof Inner) {
          left.maxes.push(...right.maxes);
          left.kids.push(...right.kids);
        }
        n.maxes[a] = maxOf(left);
        n.maxes.splice(b, 1);
        n.kids.splice(b, 1);
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
      const { keys, vals } = leaf;
      let last: string | undefined;
      if (!desc) {
        for (let i = start; i < keys.length; i++) {
          last = keys[i];
          yield [last, vals ? vals[i] : (undefined as V)];
          if (this.version !== version) break;
        }
      } else {
        for (let i = start; i >= 0; i--) {
          last = keys[i];
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
        for (const k of n.keys) keys.push(k);
        if (n.vals) for (const v of n.vals) vals.push(v);
      } else for (const kid of n.kids) walk(kid);
    };
    walk(this.root);
    return { keys, vals };
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
        for (let j = 0; j < n.keys.length && i < keys.length; j++) {
          const k = n.keys[j];
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

  /** Keys only, in order (see entries). */
  *keys(from?: string, exclusive = false, desc = false): Generator<string> {
    for (const [k] of this.entries(from, exclusive, desc)) yield k;
  }

  /** The leaf and position of the first key >= bound (> bound when strict). */
  private seekUp(bound: string | undefined, strict: boolean): [Leaf<V>, number] | undefined {
    let n = this.root;
    if (bound === undefined) {
      while (n instanceof Inner) n = n.kids[0];
      return n.keys.length ? [n, 0] : undefined;
    }
    while (n instanceof Inner) {
      const i = search(n.maxes, bound, strict);
      if (i === n.maxes.length) return undefined;
      n = n.kids[i];
    }
    const i = search(n.keys, bound, strict);
    return i < n.keys.length ? [n, i] : undefined;
  }

  /** The leaf and position of the last key <= bound (< bound when strict). */
  private seekDown(n: Node<V>, bound: string | undefined, strict: boolean): [Leaf<V>, number] | undefined {
    if (bound === undefined) {
      while (n instanceof Inner) n = n.kids[n.kids.length - 1];
      return n.keys.length ? [n, n.keys.length - 1] : undefined;
    }
    if (n instanceof Leaf) {
      const i = search(n.keys, bound, !strict) - 1;
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
