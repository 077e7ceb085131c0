// Array terms: append/prepend, set operations, positional edits (insertAt, deleteAt...),
// offsetsOf, sample, and the joins (eqJoin, innerJoin, outerJoin, zip).
import { checkArraySize, equal, isObject, printDatum, typeName, type Datum, type DatumObject } from '../datum.js';
import { isNonExistence, logicError, nonExistence, opIndexMissing } from '../errors.js';
import { OpFamily, arr, num, toDatum, valTypeName, type Ctx } from '../eval.js';
import { iterOf } from '../seq.js';
import { T } from '../termtypes.js';
import { Feed, Func, Single, Stream, type Val } from '../values.js';

/** The array terms, joined into the engine's table by registry.ts. */
export const arrayOps = new OpFamily('array');
const def = arrayOps.def;

/** The array size limit of this query (the `array_limit` run option). */
export function arrayLimit(c: Ctx): number {
  return c.global.arrayLimit;
}

/** Fails with RethinkDB's resource-limit error when an array grows past the query's limit. */
export function checkLimit(c: Ctx, a: Datum[]): Datum[] {
  checkArraySize(a.length, arrayLimit(c));
  return a;
}

/** A sequence argument (stream or array), with RethinkDB's conversion error otherwise. */
export function seqOf(v: Val): Stream | Datum[] {
  if (v instanceof Stream || Array.isArray(v)) return v;
  if (v instanceof Feed) throw logicError('Cannot call a terminal (`reduce`, `count`, etc.) on an infinite stream (such as a changefeed).');
  throw logicError(`Cannot convert ${valTypeName(v)} to SEQUENCE`);
}

/** An integer argument: NULL is a non-existence error, a fraction a logic error. */
export function intOf(v: Datum): number {
  const n = num(v);
  if (!Number.isInteger(n)) throw logicError(`Number not an integer: ${printDatum(n)}`);
  return n;
}

function dedupe(items: Iterable<Datum>): Datum[] {
  const out: Datum[] = [];
  for (const x of items) if (!out.some((y) => equal(x, y))) out.push(x);
  return out;
}

const has = (items: Datum[], x: Datum) => items.some((y) => equal(x, y));

def(T.APPEND, 2, 2, (c, t) => {
  const [a, x] = c.dargs(t);
  return checkLimit(c, [...arr(a), x]);
});

def(T.PREPEND, 2, 2, (c, t) => {
  const [a, x] = c.dargs(t);
  return checkLimit(c, [x, ...arr(a)]);
});

def(T.DIFFERENCE, 2, 2, (c, t) => {
  const [a, b] = c.dargs(t);
  const drop = arr(b);
  return arr(a).filter((x) => !has(drop, x));
});

def(T.SET_INSERT, 2, 2, (c, t) => {
  const [a, x] = c.dargs(t);
  const out = dedupe(arr(a));
  if (!has(out, x)) out.push(x);
  return checkLimit(c, out);
});

def(T.SET_UNION, 2, 2, (c, t) => {
  const [a, b] = c.dargs(t);
  return checkLimit(c, dedupe([...arr(a), ...arr(b)]));
});

def(T.SET_INTERSECTION, 2, 2, (c, t) => {
  const [a, b] = c.dargs(t);
  const keep = arr(b);
  return dedupe(arr(a)).filter((x) => has(keep, x));
});

def(T.SET_DIFFERENCE, 2, 2, (c, t) => {
  const [a, b] = c.dargs(t);
  const drop = arr(b);
  return dedupe(arr(a)).filter((x) => !has(drop, x));
});

// --- positional edits ---
function outOfBounds(i: number, size: number): Error {
  return nonExistence(`Index \`${i}\` out of bounds for array of size: \`${size}\`.`);
}

/** A position to insert at: 0..size, negative counting from one past the end. */
function insertPos(i: number, size: number): number {
  if (i < 0) {
    const p = size + 1 + i;
    if (p < 0) throw nonExistence(`Index out of bounds: ${i}`);
    return p;
  }
  if (i > size) throw outOfBounds(i, size);
  return i;
}

/** A position of an existing element: 0..size-1, negative counting from the end. */
function elemPos(i: number, size: number): number {
  if (i < 0) {
    const p = size + i;
    if (p < 0) throw nonExistence(`Index out of bounds: ${i}`);
    return p;
  }
  if (i >= size) throw outOfBounds(i, size);
  return i;
}

def(T.INSERT_AT, 3, 3, (c, t) => {
  const [a, i, x] = c.dargs(t);
  const items = arr(a);
  const p = insertPos(intOf(i), items.length);
  return checkLimit(c, [...items.slice(0, p), x, ...items.slice(p)]);
});

def(T.SPLICE_AT, 3, 3, (c, t) => {
  const [a, i, b] = c.dargs(t);
  const items = arr(a);
  const p = insertPos(intOf(i), items.length);
  const ins = arr(b);
  return checkLimit(c, [...items.slice(0, p), ...ins, ...items.slice(p)]);
});

def(T.DELETE_AT, 2, 3, (c, t) => {
  const [a, i, j] = c.dargs(t);
  const items = arr(a);
  const n = items.length;
  if (j === undefined) {
    const p = elemPos(intOf(i), n);
    return [...items.slice(0, p), ...items.slice(p + 1)];
  }
  const lo = intOf(i);
  const hi = intOf(j);
  const norm = (k: number) => {
    const p = k < 0 ? n + k : k;
    if (p < 0) throw nonExistence(`Index out of bounds: ${k}`);
    if (p > n) throw outOfBounds(k, n);
    return p;
  };
  const s = norm(lo);
  const e = norm(hi);
  if (s > e) throw logicError(`Start index \`${lo}\` is greater than end index \`${hi}\`.`);
  return [...items.slice(0, s), ...items.slice(e)];
});

def(T.CHANGE_AT, 3, 3, (c, t) => {
  const [a, i, x] = c.dargs(t);
  const items = arr(a);
  const p = elemPos(intOf(i), items.length);
  const out = items.slice();
  out[p] = x;
  return out;
});

// --- offsetsOf, sample ---
def(T.OFFSETS_OF, 2, 2, (c, t) => {
  const src = seqOf(c.ev(t.args[0]));
  const p = c.ev(t.args[1]);
  if (p instanceof Stream) {
    const shown = p.typeName === 'TABLE' && p.opts.table ? `table("${p.opts.table.name}")` : p.typeName;
    throw logicError(`Expected type DATUM but found ${p.typeName}:\n${shown}`);
  }
  const test = p instanceof Func ? (x: Datum) => {
    const r = c.callDatum(p, [x]);
    return r !== false && r !== null;
  } : (() => {
    const want = toDatum(p, c);
    return (x: Datum) => equal(x, want);
  })();
  if (src instanceof Stream && src.opts.infinite) {
    return new Stream('STREAM', function* () {
      let i = 0;
      for (const x of src.iter()) {
        if (test(x)) yield i;
        i++;
      }
    }, { infinite: true });
  }
  const out: Datum[] = [];
  let i = 0;
  for (const x of iterOf(src)) {
    if (test(x)) out.push(i);
    i++;
  }
  return out;
});

def(T.SAMPLE, 2, 2, (c, t) => {
  const srcV = c.ev(t.args[0]);
  const n = intOf(c.datum(t.args[1]));
  if (n < 0) throw logicError(`Number of items to sample must be non-negative, got \`${n}\`.`);
  const src = seqOf(srcV);
  if (src instanceof Stream && src.opts.infinite) {
    throw logicError('Cannot use an infinite stream with an aggregation function (`reduce`, `count`, etc.) or coerce it to an array.');
  }
  // Reservoir sampling keeps memory to n items however long the sequence is.
  const res: Datum[] = [];
  let seen = 0;
  for (const x of iterOf(src)) {
    seen++;
    if (res.length < n) res.push(x);
    else {
      const j = Math.floor(Math.random() * seen);
      if (j < n) res[j] = x;
    }
  }
  for (let i = res.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [res[i], res[j]] = [res[j], res[i]];
  }
  if (src instanceof Stream && src.opts.table) return new Stream('SELECTION<ARRAY>', () => res, { table: src.opts.table });
  return res;
});

// --- joins ---
function lazy(src: Stream | Datum[], gen: () => Iterable<Datum>): Stream | Datum[] {
  if (Array.isArray(src)) return [...gen()];
  return new Stream('STREAM', gen, { infinite: src.opts.infinite });
}

const truthy = (d: Datum) => d !== false && d !== null;

def(T.INNER_JOIN, 3, 3, (c, t) => {
  const left = seqOf(c.ev(t.args[0]));
  const right = seqOf(c.ev(t.args[1]));
  const f = c.ev(t.args[2]);
  return lazy(left, function* () {
    const rights = [...iterOf(right)];
    for (const l of iterOf(left)) for (const r of rights) if (truthy(c.callDatum(f, [l, r]))) yield { left: l, right: r };
  });
});

def(T.OUTER_JOIN, 3, 3, (c, t) => {
  const left = seqOf(c.ev(t.args[0]));
  const right = seqOf(c.ev(t.args[1]));
  const f = c.ev(t.args[2]);
  return lazy(left, function* (): Generator<Datum> {
    const rights = [...iterOf(right)];
    for (const l of iterOf(left)) {
      let matched = false;
      for (const r of rights) {
        if (truthy(c.callDatum(f, [l, r]))) {
          matched = true;
          yield { left: l, right: r };
        }
      }
      if (!matched) yield { left: l };
    }
  });
});

def(T.EQ_JOIN, 3, 3, (c, t) => {
  const left = seqOf(c.ev(t.args[0]));
  const key = c.ev(t.args[1]);
  const tv = c.ev(t.args[2]);
  if (!(tv instanceof Stream) || tv.typeName !== 'TABLE' || !tv.opts.table) throw logicError(`Expected type TABLE but found ${valTypeName(tv)}.`);
  const table = tv.opts.table;
  const idxOpt = c.opt(t, 'index');
  let index = table.primaryKey;
  if (idxOpt !== undefined) {
    if (typeof idxOpt !== 'string') throw logicError(`Expected type STRING but found ${typeName(idxOpt)}.`);
    index = idxOpt;
  }
  if (index !== table.primaryKey && !table.indexes.has(index)) throw opIndexMissing(table, index);
  const ordered = c.opt(t, 'ordered');
  if (ordered !== undefined && typeof ordered !== 'boolean') throw logicError(`Expected type BOOL but found ${typeName(ordered)}.`);
  const keyOf = (row: Datum): Datum | undefined => {
    if (key instanceof Func) {
      try {
        return c.callDatum(key, [row]);
      } catch (e) {
        if (isNonExistence(e)) return undefined;
        throw e;
      }
    }
    const field = toDatum(key, c);
    if (typeof field !== 'string') throw logicError(`Expected type STRING but found ${typeName(field)}.`);
    if (!isObject(row)) throw logicError(`Cannot perform get_field on a non-object non-sequence \`${printDatum(row)}\`.`);
    return row[field];
  };
  return lazy(left, function* () {
    for (const l of iterOf(left)) {
      const k = keyOf(l);
      if (k === undefined || k === null) continue;
      if (index === table.primaryKey) {
        const r = table.get(k);
        if (r) yield { left: l, right: r };
      } else {
        const seen = new Set<string>();
        for (const r of table.indexRows(index, k, k, false, false)) {
          const pk = JSON.stringify(r[table.primaryKey]);
          if (seen.has(pk)) continue;
          seen.add(pk);
          yield { left: l, right: r };
        }
      }
    }
  });
}, ['index', 'ordered']);

def(T.ZIP, 1, 1, (c, t) => {
  const src = c.ev(t.args[0]);
  const zip = (x: Datum): Datum => {
    if (!isObject(x) || x.left === undefined) throw logicError('ZIP can only be called on the result of a join.');
    const l = x.left;
    const r = x.right;
    if (r === undefined) return l;
    if (!isObject(l) || !isObject(r)) throw logicError('ZIP can only be called on the result of a join.');
    return { ...l, ...r } as DatumObject;
  };
  if (src instanceof Single) return zip(src.doc);
  const s = seqOf(src);
  if (Array.isArray(s)) return s.map(zip);
  return new Stream('STREAM', function* () {
    for (const x of s.iter()) yield zip(x);
  }, { infinite: s.opts.infinite });
});
