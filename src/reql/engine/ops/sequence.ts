// Sequence transformations: filter, map, orderBy, limit/skip/slice, nth, count, contains, union...
import { checkArraySize, compare, equal, isObject, MAXVAL, MINVAL, printDatum, typeName, type Datum, type Key } from '../datum.js';
import { compileError, isNonExistence, logicError, nonExistence, opIndexMissing } from '../errors.js';
import type { Term } from '../term.js';
import { OpFamily, num, toDatum, valTypeName, type Ctx } from '../eval.js';
import { derive, isSequence, iterOf } from '../seq.js';
import { T } from '../termtypes.js';
import { Feed, Func, Single, Stream, type Val } from '../values.js';
import { Order } from './core.js';
import { withTransform } from '../feeds.js';
import { deterministic } from './write.js';
import { Literal, matchesObject } from './object.js';

/** The sequence terms, joined into the engine's table by registry.ts. */
export const sequenceOps = new OpFamily('sequence');
const def = sequenceOps.def;

function seqArg(c: Ctx, v: Val): Stream | Datum[] {
  if (v instanceof Stream || Array.isArray(v)) return v;
  throw logicError(`Cannot convert ${valTypeName(v)} to SEQUENCE`);
}

// Writes and meta operations may not run per element of a stream operation (forEach is for that).
const WRITE_TERMS = new Set<number>([T.INSERT, T.UPDATE, T.DELETE, T.REPLACE, T.DB_CREATE, T.DB_DROP, T.TABLE_CREATE, T.TABLE_DROP, T.INDEX_CREATE, T.INDEX_DROP, T.INDEX_RENAME, T.SYNC, T.RECONFIGURE, T.REBALANCE]);
function hasWrite(t: Term): boolean {
  return WRITE_TERMS.has(t.type) || t.args.some(hasWrite) || Object.values(t.optargs).some(hasWrite);
}
const writeChecked = new WeakSet<Term>();
function noNestedWrites(t: Term): void {
  if (writeChecked.has(t)) return;
  if (t.args.slice(1).some(hasWrite)) throw compileError('Cannot nest writes or meta ops in stream operations.  Use FOR_EACH instead.');
  writeChecked.add(t);
}

/** A row predicate as filter() reads it: a function, an object to match, or a constant. */
export function predicate(c: Ctx, f: Val, dflt: Val | undefined): (row: Datum) => boolean {
  return (row) => {
    let r: Datum;
    try {
      r = f instanceof Func ? c.callDatum(f, [row]) : f instanceof Literal ? equal(row, f.value ?? null) : isObject(f) && !(f as { $reql_type$?: unknown }).$reql_type$ ? matchesObject(row, f) : toDatum(f, c);
    } catch (e) {
      if (!isNonExistence(e) || dflt === undefined) {
        if (isNonExistence(e) && dflt === undefined) return false;
        throw e;
      }
      r = dflt instanceof Func ? c.callDatum(dflt, [(e as Error).message]) : toDatum(dflt, c);
    }
    return r !== false && r !== null;
  };
}

def(T.FILTER, 2, 2, (c, t) => {
  noNestedWrites(t);
  const src = c.ev(t.args[0]);
  const f = c.ev(t.args[1]);
  const dt = t.optargs.default;
  // default: r.error() re-raises the row's error.
  const dflt = dt === undefined ? undefined : dt.type === T.ERROR && dt.args.length === 0 ? new Func([], dt, new Map(), (a) => {
    throw nonExistence(String(a[0]));
  }) : c.ev(dt);
  const pred = predicate(c, f, dflt);
  if (src instanceof Feed) return withTransform(src, (ch) => ch, pred);
  if (src instanceof Single) {
    const d = src.doc;
    return pred(d) ? d : null;
  }
  const s = seqArg(c, src);
  const out = derive(s, function* (items) {
    for (const x of items) if (pred(x)) yield x;
  }, true);
  if (out instanceof Stream && s instanceof Stream && s.opts.feed) {
    return new Stream(out.typeName, out.iter, { ...out.opts, feed: { ...s.opts.feed, nondeterministic: s.opts.feed.nondeterministic || !deterministic(f), transforms: [...s.opts.feed.transforms, (row) => (pred(row) ? row : undefined)] } });
  }
  return out;
}, ['default']);

/** map's function over one or many sequences (map(a, b, f) zips). */
def(T.MAP, 2, Infinity, (c, t) => {
  noNestedWrites(t);
  const vals = c.args(t);
  const f = vals[vals.length - 1];
  const srcs = vals.slice(0, -1);
  if (!(f instanceof Func)) throw logicError(`Expected type FUNCTION but found DATUM:\n${printDatum(toDatum(f, c))}`);
  if (f instanceof Func && !f.native && f.params.length !== 0 && f.params.length !== srcs.length) {
    const n = f.params.length;
    throw logicError(`The function passed to \`map\` expects ${n} argument${n === 1 ? '' : 's'}, but ${srcs.length} sequence${srcs.length === 1 ? ' was' : 's were'} found.`);
  }
  if (srcs.length === 1) {
    const src = srcs[0];
    if (src instanceof Feed) return withTransform(src, (row) => c.callDatum(f, [row]));
    if (!isSequence(src)) {
      if (src instanceof Single) return c.call(f, [src.doc]);
      throw logicError(`Cannot convert ${valTypeName(src)} to SEQUENCE`);
    }
    const out = derive(src, function* (items) {
      for (const x of items) yield c.callDatum(f, [x]);
    }, false);
    if (out instanceof Stream && src instanceof Stream && src.opts.feed) {
      return new Stream(out.typeName, out.iter, { ...out.opts, feed: { ...src.opts.feed, nondeterministic: src.opts.feed.nondeterministic || !deterministic(f), transforms: [...src.opts.feed.transforms, (row) => c.callDatum(f, [row])] } });
    }
    return out;
  }
  const seqs = srcs.map((s) => seqArg(c, s));
  const anyStream = seqs.some((s) => s instanceof Stream);
  const gen = function* () {
    const its = seqs.map((s) => iterOf(s)[Symbol.iterator]());
    for (;;) {
      const next = its.map((it) => it.next());
      if (next.some((n) => n.done)) return;
      yield c.callDatum(f, next.map((n) => n.value as Datum));
    }
  };
  return anyStream ? new Stream('STREAM', gen, { infinite: seqs.every((s) => s instanceof Stream && s.opts.infinite) }) : [...gen()];
});

def(T.CONCAT_MAP, 2, 2, (c, t) => {
  noNestedWrites(t);
  const src = seqArg(c, c.ev(t.args[0]));
  const f = c.ev(t.args[1]);
  return derive(src, function* (items) {
    for (const x of items) yield* iterOf(c.call(f, [x]), c);
  }, false);
});

function intArg(v: Datum, what: string): number {
  const n = num(v);
  if (!Number.isInteger(n)) throw logicError(`Expected type ${what} but found a non-integer.`);
  return n;
}

def(T.LIMIT, 2, 2, (c, t) => {
  const v = c.ev(t.args[0]);
  const n = num(c.datum(t.args[1]));
  if (n < 0) throw logicError('LIMIT takes a non-negative argument (got ' + n + ')');
  if (v instanceof Feed) return new Feed(v.spec, v.options, v.transforms, Math.min(n, v.limit ?? Infinity));
  const src = seqArg(c, v);
  const out = derive(src, function* (items) {
    if (n === 0) return;
    let i = 0;
    for (const x of items) {
      yield x;
      if (++i >= n) return;
    }
  }, true);
  if (out instanceof Stream && src instanceof Stream && src.opts.ordered && src.opts.feed) {
    const feed = src.opts.feed;
    const range = feed.source.kind === 'between' ? feed.source : undefined;
    return new Stream(out.typeName, out.iter, {
      ...out.opts,
      feed: { ...feed, source: { kind: 'limit', index: src.opts.ordered.index, desc: src.opts.ordered.desc, n, range } },
    });
  }
  return out;
});

def(T.SKIP, 2, 2, (c, t) => {
  const src = seqArg(c, c.ev(t.args[0]));
  const n = num(c.datum(t.args[1]));
  if (n < 0) throw logicError('Cannot use a negative left index on a stream.');
  return derive(src, function* (items) {
    let i = 0;
    for (const x of items) if (i++ >= n) yield x;
  }, true);
});

def(T.SLICE, 2, 3, (c, t) => {
  const src = c.ev(t.args[0]);
  const lo = num(c.datum(t.args[1]));
  const hiArg = t.args[2] ? num(c.datum(t.args[2])) : undefined;
  const leftOpen = c.opt(t, 'left_bound') === 'open';
  const rightClosed = c.opt(t, 'right_bound') === 'closed';
  const bounds = (len: number | undefined): [number, number] => {
    let a = lo;
    let b = hiArg ?? Infinity;
    if (a < 0) {
      if (len === undefined) throw logicError('Cannot use a negative left index on a stream.');
      a += len;
    }
    if (b < 0) {
      if (len === undefined) {
        if (b < -1) throw logicError('Cannot use a right index < -1 on a stream.');
        if (!rightClosed) throw logicError('Cannot slice to an open right index of -1 on a stream.');
        b = Infinity;
      } else b += len;
    }
    if (leftOpen) a += 1;
    if (rightClosed) b += 1;
    return [Math.max(0, a), b];
  };
  if (typeof src === 'string') {
    const chars = [...src];
    const [a, b] = bounds(chars.length);
    return chars.slice(a, b).join('');
  }
  if (isObject(src) && src.$reql_type$ === 'BINARY') {
    const buf = Buffer.from(src.data as string, 'base64');
    const [a, b] = bounds(buf.length);
    return { $reql_type$: 'BINARY', data: buf.subarray(a, Math.min(b, buf.length)).toString('base64') };
  }
  const s = seqArg(c, src);
  if (Array.isArray(s)) {
    const [a, b] = bounds(s.length);
    return s.slice(a, b);
  }
  const [a, b] = bounds(undefined);
  return derive(s, function* (items) {
    let i = 0;
    for (const x of items) {
      if (i >= b) return;
      if (i >= a) yield x;
      i++;
    }
  }, true);
}, ['left_bound', 'right_bound']);

def(T.NTH, 2, 2, (c, t) => {
  const src = seqArg(c, c.ev(t.args[0]));
  const n = intArg(c.datum(t.args[1]), 'NUMBER');
  const table = src instanceof Stream ? src.opts.table : undefined;
  let item: Datum | undefined;
  if (n < 0) {
    const all = Array.isArray(src) ? src : [...src.iter()];
    item = all[all.length + n];
    if (item === undefined) throw nonExistence(`Index out of bounds: ${n}`);
  } else {
    let i = 0;
    for (const x of iterOf(src)) if (i++ === n) {
      item = x;
      break;
    }
    if (item === undefined) throw nonExistence(`Index out of bounds: ${n}`);
  }
  return table && isObject(item) ? new Single(table, item[table.primaryKey]) : item;
});

def(T.IS_EMPTY, 1, 1, (c, t) => {
  const src = seqArg(c, c.ev(t.args[0]));
  for (const _ of iterOf(src)) return false;
  return true;
});

def(T.COUNT, 1, 2, (c, t) => {
  const [src, f] = c.args(t);
  if (src instanceof Feed) throw logicError('Cannot call a terminal (`reduce`, `count`, etc.) on an infinite stream (such as a changefeed).');
  if (f === undefined) {
    if (typeof src === 'string') return [...src].length;
    if (isObject(src) && src.$reql_type$ === 'BINARY') return Buffer.from(src.data as string, 'base64').length;
    if (isObject(src) && !src.$reql_type$) return Object.keys(src).length;
    const s = seqArg(c, src);
    if (s instanceof Stream && s.opts.infinite) throw logicError('Cannot use an infinite stream with an aggregation function (`reduce`, `count`, etc.) or coerce it to an array.');
    if (s instanceof Stream && s.typeName === 'TABLE' && s.opts.table) return s.opts.table.size;
    if (Array.isArray(s)) return s.length;
    let n = 0;
    for (const _ of s.iter()) n++;
    return n;
  }
  const s = seqArg(c, src);
  const pred = f instanceof Func ? (x: Datum) => { const r = c.callDatum(f, [x]); return r !== false && r !== null; } : (x: Datum) => equal(x, toDatum(f, c));
  let n = 0;
  for (const x of iterOf(s)) if (pred(x)) n++;
  return n;
});

def(T.CONTAINS, 1, Infinity, (c, t) => {
  const [srcV, ...preds] = c.args(t);
  // Each value or predicate needs an element of its own: [1, 2, 3].contains(2, 2) is false.
  const tests = preds.map((p) => {
    if (p instanceof Func) {
      return (x: Datum) => {
        const r = c.callDatum(p, [x]);
        return r !== false && r !== null;
      };
    }
    const want = toDatum(p, c);
    return (x: Datum) => equal(x, want);
  });
  if (tests.length === 0) return true;
  for (const x of iterOf(seqArg(c, srcV))) {
    const i = tests.findIndex((f) => f(x));
    if (i >= 0) tests.splice(i, 1);
    if (tests.length === 0) return true;
  }
  return false;
});

def(T.UNION, 0, Infinity, (c, t) => {
  const vals = c.args(t);
  const seqs = vals.map((v) => seqArg(c, v));
  if (seqs.every((s) => Array.isArray(s))) {
    const out = (seqs as Datum[][]).flat(1);
    checkArraySize(out.length, c.global.arrayLimit);
    return out;
  }
  return new Stream('STREAM', function* () {
    for (const s of seqs) yield* iterOf(s);
  });
}, ['interleave']);

// --- orderBy ---
type SortKey = { desc: boolean; get: (row: Datum) => Datum };

function sortKeys(c: Ctx, specs: Val[]): SortKey[] {
  return specs.map((s) => {
    const desc = s instanceof Order ? s.desc : false;
    const k = s instanceof Order ? s.key : s;
    if (k instanceof Func) return { desc, get: (row: Datum) => c.callDatum(k, [row]) };
    if (typeof k === 'string') {
      return {
        desc,
        get: (row: Datum) => {
          if (!isObject(row)) throw logicError(`Cannot perform get_field on a non-object non-sequence \`${JSON.stringify(row)}\`.`);
          const v = row[k];
          if (v === undefined) throw nonExistence(`No attribute \`${k}\` in object.`);
          return v;
        },
      };
    }
    throw logicError(`Expected type STRING but found ${valTypeName(k)}.`);
  });
}

export function sortRows(rows: Datum[], keys: SortKey[]): Datum[] {
  const withKeys = rows.map((r) => {
    const ks: Key[] = [];
    for (const k of keys) {
      try {
        ks.push(k.get(r));
      } catch (e) {
        if (!isNonExistence(e)) throw e;
        ks.push(MINVAL); // rows missing the field are kept and sort before every value
      }
    }
    return { r, ks };
  });
  const kept = withKeys;
  kept.sort((a, b) => {
    for (let i = 0; i < keys.length; i++) {
      const cmp = compare(a.ks[i], b.ks[i]);
      if (cmp !== 0) return keys[i].desc ? -cmp : cmp;
    }
    return 0;
  });
  return kept.map((w) => w.r);
}

def(T.ORDER_BY, 1, Infinity, (c, t) => {
  const src = c.ev(t.args[0]);
  if (src instanceof Feed) throw logicError('Cannot call a terminal (`reduce`, `count`, etc.) on an infinite stream (such as a changefeed).');
  const specs = t.args.slice(1).map((a) => c.ev(a));
  const indexOpt = t.optargs.index ? c.ev(t.optargs.index) : undefined;
  if (indexOpt !== undefined) {
    if (!(src instanceof Stream) || !src.opts.table || !(src.typeName === 'TABLE' || (src.typeName === 'TABLE_SLICE' && src.opts.between))) {
      if (src instanceof Stream && src.typeName === 'TABLE_SLICE') throw logicError('Cannot perform multiple indexed ORDER_BYs on the same table.');
      if (src instanceof Stream) throw logicError('Indexed order_by can only be performed on a TABLE or TABLE_SLICE. Make sure order_by comes before any transformations (such as map) or filters.');
      throw logicError(`Expected type TABLE_SLICE but found ${valTypeName(src)}.`);
    }
    const table = src.opts.table;
    const desc = indexOpt instanceof Order ? indexOpt.desc : false;
    const name = toDatum(indexOpt instanceof Order ? indexOpt.key : indexOpt, c);
    if (typeof name !== 'string') throw logicError(`Expected type STRING but found ${typeName(name)}.`);
    const feed = src.opts.feed;
    const range = feed && feed.source.kind === 'between' ? feed.source : undefined;
    if (range && range.index !== name) throw logicError(`Cannot order by index \`${name}\` after calling BETWEEN on index \`${range.index}\`.`);
    const isPk = name === table.primaryKey;
    if (!isPk && !table.indexes.has(name)) throw opIndexMissing(table, name);
    const pairs = function* (): Iterable<[Key, Datum]> {
      const lo: Key = range ? range.lo : minv();
      const hi: Key = range ? range.hi : maxv();
      const loOpen = range ? range.loOpen : false;
      const hiOpen = range ? range.hiOpen : false;
      if (isPk) {
        for (const row of table.primaryRange(lo, hi, loOpen, hiOpen, desc)) yield [row[name], row];
      } else yield* table.indexRange(name, lo, hi, loOpen, hiOpen, desc);
    };
    const iter = function* (): Iterable<Datum> {
      if (isPk) {
        for (const [, row] of pairs()) yield row;
        return;
      }
      // Rows only: an index entry's value is read back only when it is needed (below).
      const lo: Key = range ? range.lo : minv();
      const hi: Key = range ? range.hi : maxv();
      yield* table.indexRows(name, lo, hi, range ? range.loOpen : false, range ? range.hiOpen : false, desc);
    };
    const base = new Stream('TABLE_SLICE', iter, { table, feed: feed ?? { table, source: { kind: 'table' }, transforms: [] }, ordered: { index: name, desc }, between: src.opts.between });
    if (specs.length === 0) return base;
    // The index orders the rows; the other keys order rows with equal index values.
    const keys = sortKeys(c, specs);
    return new Stream('SELECTION<ARRAY>', () => {
      const out: Datum[] = [];
      let run: Datum[] = [];
      let runKey: Key | undefined;
      for (const [k, row] of pairs()) {
        if (runKey !== undefined && compare(k, runKey) !== 0) {
          out.push(...sortRows(run, keys));
          run = [];
        }
        runKey = k;
        run.push(row);
      }
      out.push(...sortRows(run, keys));
      return out;
    }, { table });
  }
  if (specs.length === 0) throw logicError('ORDER_BY requires at least one argument.');
  const keys = sortKeys(c, specs);
  if (src instanceof Stream) {
    if (src.opts.infinite) throw logicError('Cannot use an infinite stream with an aggregation function (`reduce`, `count`, etc.) or coerce it to an array.');
    const table = src.opts.table;
    return new Stream(table ? 'SELECTION<ARRAY>' : 'STREAM', () => sortRows(toDatum(src, c) as Datum[], keys), { table });
  }
  if (Array.isArray(src)) return sortRows(src, keys);
  throw logicError(`Cannot convert ${valTypeName(src)} to SEQUENCE`);
}, ['index']);

const minv = (): Key => MINVAL;
const maxv = (): Key => MAXVAL;

