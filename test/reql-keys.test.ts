// The embedded server's storage keys (src/reql/storage/keys.ts) sort exactly as ReQL orders
// values, and its B+ tree (storage/sorted.ts) agrees with a plain sorted array through random
// inserts, deletes, bulk builds and iterators paused across changes. Pure logic, many cases:
// a seeded generator, so a failure repeats.
import t from 'tap';
import { compare, MAXVAL, MINVAL, type Datum, type Key } from '../src/reql/engine/datum.js';
import { AFTER, decodeKey, encodeKey, encodePair, skipKey } from '../src/reql/storage/keys.js';
import { SortedBuilder, SortedMap } from '../src/reql/storage/sorted.js';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const CHARS = ['a', 'b', 'z', 'A', '0', ' ', '\u0000', '\u0001', '\u0002', '\u007f', '\u0080', 'é', 'ÿ', 'Ā', '中', '\uffff', '\ue000', '😀', '𝄞', '#'];

function datum(rand: () => number, depth = 0): Datum {
  const pick = Math.floor(rand() * (depth > 2 ? 6 : 9));
  switch (pick) {
    case 0:
      return null;
    case 1:
      return rand() < 0.5;
    case 2: {
      const choices = [0, -0, 1, -1, 0.5, -0.5, 1e-300, -1e-300, 1e300, -1e300, 2 ** 53, 123456789, -987.25, Math.floor(rand() * 1000) - 500];
      return choices[Math.floor(rand() * choices.length)];
    }
    case 3:
    case 4: {
      let s = '';
      const n = Math.floor(rand() * 5);
      for (let i = 0; i < n; i++) s += CHARS[Math.floor(rand() * CHARS.length)];
      return s;
    }
    case 5:
      return { $reql_type$: 'TIME', epoch_time: Math.floor(rand() * 5) - 2 + (rand() < 0.3 ? 0.25 : 0), timezone: rand() < 0.5 ? '+00:00' : '-07:00' };
    case 6: {
      const n = Math.floor(rand() * 4);
      return Array.from({ length: n }, () => datum(rand, depth + 1));
    }
    case 7: {
      const o: Record<string, Datum> = {};
      const n = Math.floor(rand() * 3);
      for (let i = 0; i < n; i++) o[CHARS[Math.floor(rand() * 6)]] = datum(rand, depth + 1);
      return o;
    }
    default: {
      const bytes = Buffer.from(Array.from({ length: Math.floor(rand() * 4) }, () => Math.floor(rand() * 3)));
      return rand() < 0.8 ? { $reql_type$: 'BINARY', data: bytes.toString('base64') } : { $reql_type$: 'GEOMETRY', type: 'Point', coordinates: [rand(), 1] };
    }
  }
}

const sign = (n: number) => (n < 0 ? -1 : n > 0 ? 1 : 0);
const strcmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const show = (v: Key) => (v === MINVAL ? 'minval' : v === MAXVAL ? 'maxval' : JSON.stringify(v));

t.test('encoded keys sort as compare() orders the values', async (t) => {
  const rand = rng(14);
  // Bounds inside arrays are what between() ranges of compound indexes are made of.
  const values: Key[] = [MINVAL, MAXVAL, [MINVAL] as unknown as Key, ['a', MAXVAL] as unknown as Key, [], [[]], '', 'a\u0000', 'a\u0001', 'a'];
  for (let i = 0; i < 600; i++) values.push(datum(rand));
  let bad = 0;
  for (let i = 0; i < values.length; i++) {
    const ei = encodeKey(values[i]);
    for (let j = 0; j < values.length; j++) {
      const ej = encodeKey(values[j]);
      if (sign(compare(values[i], values[j])) !== strcmp(ei, ej) && bad++ < 5) t.fail(`${show(values[i])} vs ${show(values[j])}`);
    }
  }
  t.equal(bad, 0, `${values.length ** 2} pairs agree`);
});

t.test('a key reads back as an equal value, and ends where it says', async (t) => {
  const rand = rng(7);
  let bad = 0;
  for (let i = 0; i < 3000; i++) {
    const v = datum(rand);
    const e = encodeKey(v);
    for (let k = 0; k < e.length; k++) if (e.charCodeAt(k) > 0xff && bad++ < 5) t.fail(`a character above 0xff in the key of ${show(v)}`);
    const [back, end] = decodeKey(e, 0);
    if ((compare(back, v) !== 0 || end !== e.length || skipKey(e, 0) !== e.length) && bad++ < 5) t.fail(`${show(v)} came back as ${show(back)}`);
    if (typeof v === 'string' && back !== v && bad++ < 5) t.fail(`the string ${show(v)} came back as ${show(back)}`);
  }
  t.equal(bad, 0);
  t.same(decodeKey(encodeKey({ $reql_type$: 'TIME', epoch_time: 1.5, timezone: '-07:00' }))[0], { $reql_type$: 'TIME', epoch_time: 1.5, timezone: '+00:00' }, 'a time comes back in UTC');
});

t.test('entries (value, primary key) sort by value, then key; AFTER bounds a value', async (t) => {
  const rand = rng(99);
  const pairs: Array<[Datum, Datum]> = [];
  for (let i = 0; i < 300; i++) pairs.push([datum(rand), rand() < 0.5 ? `id${Math.floor(rand() * 10)}` : Math.floor(rand() * 10)]);
  let bad = 0;
  for (const [a, pa] of pairs) {
    const ea = encodePair(a, pa);
    if (!(ea >= encodeKey(a) && ea < encodeKey(a) + AFTER) && bad++ < 5) t.fail(`entry of ${show(a)} is outside its value's range`);
    for (const [b, pb] of pairs) {
      const want = sign(compare(a, b) || compare(pa, pb));
      if (strcmp(ea, encodePair(b, pb)) !== want && bad++ < 5) t.fail(`(${show(a)}, ${show(pa)}) vs (${show(b)}, ${show(pb)})`);
      // A value's range holds no entry of another value.
      if (compare(a, b) !== 0 && ea >= encodeKey(b) && ea < encodeKey(b) + AFTER && bad++ < 5) t.fail(`entry of ${show(a)} inside the range of ${show(b)}`);
    }
  }
  t.equal(bad, 0);
});

/** The reference: a sorted array of distinct keys. */
function lowerBound(a: string[], k: string): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const m = (lo + hi) >>> 1;
    if (a[m] < k) lo = m + 1;
    else hi = m;
  }
  return lo;
}

function expectedFrom(ref: string[], from: string | undefined, exclusive: boolean, desc: boolean): string[] {
  if (!desc) {
    if (from === undefined) return ref.slice();
    return ref.filter((k) => (exclusive ? k > from : k >= from));
  }
  const out = from === undefined ? ref.slice() : ref.filter((k) => (exclusive ? k < from : k <= from));
  return out.reverse();
}

for (const [kind, seed] of [['numbered', 3], ['of any length', 5]] as const) t.test(`the B+ tree agrees with a sorted array (keys ${kind})`, async (t) => {
  const rand = rng(seed);
  // Keys sharing long prefixes (as index entries do), or of any length (some long enough that
  // a leaf splits for its size) and first character.
  const alphabet = ['\u0000', '\u0001', 'a', 'b', '\u00ff', 'é'];
  const key =
    kind === 'numbered'
      ? () => `k${Math.floor(rand() * 5000).toString().padStart(4, '0')}`
      : () => Array.from({ length: Math.floor(rand() * 7) }, () => alphabet[Math.floor(rand() * alphabet.length)]).join('') + (rand() < 0.5 ? 'x'.repeat(Math.floor(rand() * 40)) : rand() < 0.1 ? 'y'.repeat(2000 + Math.floor(rand() * 4000)) : '');
  const tree = new SortedMap<number>(true);
  const ref: string[] = [];
  const vals = new Map<string, number>();
  let bad = 0;
  const steps = kind === 'numbered' ? 40000 : 16000;
  for (let step = 0; step < steps; step++) {
    const k = key();
    // Mostly inserts first, then mostly deletes, so nodes split and then thin out and merge.
    if (rand() < (step < steps / 2 ? 0.75 : 0.2)) {
      const had = vals.has(k);
      if (tree.set(k, step) === had && bad++ < 5) t.fail(`set(${k}) said new=${!had}`);
      if (!had) ref.splice(lowerBound(ref, k), 0, k);
      vals.set(k, step);
    } else {
      const had = vals.has(k);
      if (tree.delete(k) !== had && bad++ < 5) t.fail(`delete(${k})`);
      if (had) {
        ref.splice(lowerBound(ref, k), 1);
        vals.delete(k);
      }
    }
    if (step % 500 === 0) {
      if (tree.size !== ref.length && bad++ < 5) t.fail(`size ${tree.size}, expected ${ref.length}`);
      const probe = key();
      if (tree.get(probe) !== vals.get(probe) && bad++ < 5) t.fail(`get(${probe})`);
      if (tree.has(probe) !== vals.has(probe) && bad++ < 5) t.fail(`has(${probe})`);
      for (const desc of [false, true]) {
        for (const exclusive of [false, true]) {
          for (const from of [undefined, probe, ref[0], ref[ref.length - 1], 'a', 'z']) {
            const got = [...tree.keys(from, exclusive, desc)];
            const want = expectedFrom(ref, from, exclusive, desc);
            if (JSON.stringify(got) !== JSON.stringify(want) && bad++ < 5) t.fail(`keys(${from}, ${exclusive}, ${desc}) at step ${step}: ${got.length} keys, expected ${want.length}`);
          }
        }
      }
    }
  }
  t.equal(bad, 0, `${ref.length} keys left`);
  for (const k of [...ref]) tree.delete(k);
  t.equal(tree.size, 0);
  t.same([...tree.keys()], [], 'empty after deleting everything');
});

t.test('a tree built from sorted keys is the same as one built by inserts', async (t) => {
  for (const n of [0, 1, 55, 56, 57, 3136, 3137, 20000]) {
    const keys = Array.from({ length: n }, (_, i) => `k${String(i).padStart(6, '0')}`);
    const tree = SortedMap.fromSorted(keys, keys.map((_, i) => i));
    t.equal(tree.size, n);
    t.same([...tree.keys()], keys, `${n} keys in order`);
    t.same([...tree.keys(undefined, false, true)], keys.slice().reverse(), `${n} keys in reverse`);
    if (n > 0) t.equal(tree.get(keys[n - 1]), n - 1);
    // It takes inserts and deletes like any other.
    tree.set('k', -1);
    tree.set('l', -2);
    tree.delete(keys[0] ?? 'none');
    t.same([...tree.keys()], ['k', ...keys.slice(1), 'l'], `${n} keys after changes`);
    const set = SortedMap.fromSorted(keys);
    t.equal(set.has(keys[0] ?? 'none'), n > 0);
  }
});

t.test('a paused iterator carries on in order after the tree changes', async (t) => {
  const tree = SortedMap.fromSorted(Array.from({ length: 1000 }, (_, i) => `k${String(i * 2).padStart(5, '0')}`));
  for (const desc of [false, true]) {
    const seen: string[] = [];
    let i = 0;
    for (const k of tree.keys(undefined, false, desc)) {
      seen.push(k);
      // Change the tree around the place the walk has reached, and further on.
      if (i++ % 7 === 0) {
        const n = Number(k.slice(1));
        tree.set(`k${String(n + (desc ? -1 : 1)).padStart(5, '0')}`); // just ahead: seen next
        tree.delete(`k${String(n + (desc ? -20 : 20)).padStart(5, '0')}`); // further on: never seen
      }
    }
    const sorted = desc ? seen.slice().sort().reverse() : seen.slice().sort();
    t.same(seen, sorted, `${desc ? 'descending' : 'ascending'}: still in order`);
    t.equal(new Set(seen).size, seen.length, 'nothing twice');
    t.same(seen.filter((k) => !tree.has(k)), [], 'nothing deleted before it was reached');
    t.ok(seen.length > 900, `${seen.length} keys walked`);
  }
});

t.test('a tree built from keys as bytes (a snapshot) equals one built from strings', async (t) => {
  const rand = rng(11);
  for (const n of [0, 1, 56, 57, 5000]) {
    const keys = [...new Set(Array.from({ length: n }, () => `room-${Math.floor(rand() * 3)}/${'x'.repeat(Math.floor(rand() * 30))}${Math.floor(rand() * 1e6)}`))].sort();
    const bytes = Buffer.from(keys.join(''), 'latin1');
    for (const order of ['sorted', 'shuffled'] as const) {
      const b = new SortedBuilder<number>(true);
      const idx = keys.map((_, i) => i);
      if (order === 'shuffled') idx.reverse();
      const at: number[] = [];
      let pos = 0;
      for (const k of keys) {
        at.push(pos);
        pos += k.length;
      }
      // In chunks, as blocks come, each copied out of a buffer that is then spoiled.
      for (let c = 0; c < idx.length; c += 70) {
        const chunk = Buffer.from(bytes);
        for (const i of idx.slice(c, c + 70)) b.add(chunk, at[i], at[i] + keys[i].length, i);
        b.detach();
        chunk.fill(0);
      }
      if (order === 'shuffled' && keys.length > 0) b.add(bytes, at[0], at[0] + keys[0].length, 0); // a repeat, dropped
      const tree = b.finish();
      t.equal(tree.size, keys.length, `${n} ${order}: size`);
      t.same([...tree.keys()], keys, `${n} ${order}: keys in order`);
      if (n > 0) t.equal(tree.get(keys[keys.length - 1]), keys.length - 1, `${n} ${order}: values kept`);
    }
  }
});
