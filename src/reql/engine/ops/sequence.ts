// Sequence transformations: filter, map, orderBy, limit/skip/slice, nth, count, contains, union...
import { compare, equal, isObject, typeName, type Datum, type Key } from '../datum.js';
import { isNonExistence, logicError, nonExistence } from '../errors.js';
import { def, num, toDatum, valTypeName, type Ctx } from '../eval.js';
import { derive, isSequence, iterOf } from '../seq.js';
import { T } from '../termtypes.js';
import { Feed, Func, Single, Stream, type Val } from '../values.js';
import { Order } from './core.js';
import { withTransform } from '../feeds.js';
import { matchesObject } from './object.js';

function seqArg(c: Ctx, v: Val): Stream | Datum[] {
  if (v instanceof Stream || Array.isArray(v)) return v;
  throw logicError(`Cannot convert ${valTypeName(v)} to SEQUENCE`);
}

/** A row predicate as filter() reads it: a function, an object to match, or a constant. */
export function predicate(c: Ctx, f: Val, dflt: Val | undefined): (row: Datum) => boolean {
  return (row) => {
    let r: Datum;
    try {
      r = f instanceof Func ? c.callDatum(f, [row]) : isObject(f) && !(f as { $reql_type$?: unknown }).$reql_type$ ? matchesObject(row, f) : toDatum(f, c);
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
  const src = c.ev(t.args[0]);
  const f = c.ev(t.args[1]);
  const dflt = t.optargs.default ? c.ev(t.optargs.default) : undefined;
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
    return new Stream(out.typeName, out.iter, { ...out.opts, feed: { ...s.opts.feed, transforms: [...s.opts.feed.transforms, (row) => (pred(row) ? row : undefined)] } });
  }
  return out;
}, ['default']);

/** map's function over one or many sequences (map(a, b, f) zips). */
def(T.MAP, 2, Infinity, (c, t) => {
  const vals = c.args(t);
  const f = vals[vals.length - 1];
  const srcs = vals.slice(0, -1);
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
      return new Stream(out.typeName, out.iter, { ...out.opts, feed: { ...src.opts.feed, transforms: [...src.opts.feed.transforms, (row) => c.callDatum(f, [row])] } });
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
  return anyStream ? new Stream('STREAM', gen) : [...gen()];
});

def(T.CONCAT_MAP, 2, 2, (c, t) => {
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
      if (len === undefined) throw logicError('Cannot use a negative right index on a stream.');
      b += len;
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
  const src = c.ev(t.args[0]);
  if (src instanceof Feed) throw logicError('Cannot call a terminal (`reduce`, `count`, etc.) on an infinite stream (such as a changefeed).');
  if (t.args.length === 1) {
    if (typeof src === 'string') return [...src].length;
    if (isObject(src) && src.$reql_type$ === 'BINARY') return Buffer.from(src.data as string, 'base64').length;
    if (isObject(src) && !src.$reql_type$) return Object.keys(src).length;
    const s = seqArg(c, src);
    if (s instanceof Stream && s.opts.infinite) throw logicError('Cannot use an infinite stream with an aggregation function (`reduce`, `count`, etc.) or coerce it to an array.');
    if (s instanceof Stream && s.typeName === 'TABLE' && s.opts.table) return s.opts.table.rows.size;
    if (Array.isArray(s)) return s.length;
    let n = 0;
    for (const _ of s.iter()) n++;
    return n;
  }
  const s = seqArg(c, src);
  const f = c.ev(t.args[1]);
  const pred = f instanceof Func ? (x: Datum) => { const r = c.callDatum(f, [x]); return r !== false && r !== null; } : (x: Datum) => equal(x, toDatum(f, c));
  let n = 0;
  for (const x of iterOf(s)) if (pred(x)) n++;
  return n;
});

def(T.CONTAINS, 1, Infinity, (c, t) => {
  const [srcV, ...preds] = c.args(t);
  const items = [...iterOf(seqArg(c, srcV))];
  return preds.every((p) =>
    items.some((x) => {
      if (p instanceof Func) {
        const r = c.callDatum(p, [x]);
        return r !== false && r !== null;
      }
      return equal(x, toDatum(p, c));
    }),
  );
});

def(T.UNION, 0, Infinity, (c, t) => {
  const vals = c.args(t);
  const seqs = vals.map((v) => seqArg(c, v));
  if (seqs.every((s) => Array.isArray(s))) return (seqs as Datum[][]).flat(1);
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
    const ks: Datum[] = [];
    for (const k of keys) {
      try {
        ks.push(k.get(r));
      } catch (e) {
        if (!isNonExistence(e)) throw e;
        ks.push(null); // rows missing the field sort as if null... RethinkDB drops them; see below
        (ks as unknown as { missing?: boolean }).missing = true;
      }
    }
    return { r, ks };
  });
  const kept = withKeys.filter((w) => !(w.ks as unknown as { missing?: boolean }).missing);
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
    const iter = (): Iterable<Datum> => {
      const lo: Key = range ? range.lo : minv();
      const hi: Key = range ? range.hi : maxv();
      const loOpen = range ? range.loOpen : false;
      const hiOpen = range ? range.hiOpen : false;
      if (isPk) return table.primaryRange(lo, hi, loOpen, hiOpen, desc);
      return (function* () {
        for (const [, row] of table.indexRange(name, lo, hi, loOpen, hiOpen, desc)) yield row;
      })();
    };
    const base = new Stream('TABLE_SLICE', iter, { table, feed: feed ?? { table, source: { kind: 'table' }, transforms: [] }, ordered: { index: name, desc }, between: src.opts.between });
    if (specs.length === 0) return base;
    return new Stream('SELECTION<ARRAY>', () => sortRows([...iter()], sortKeys(c, specs)), { table });
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

import { MAXVAL, MINVAL } from '../datum.js';
import { opFailed } from '../errors.js';
import type { Table } from '../../storage/table.js';
const minv = (): Key => MINVAL;
const maxv = (): Key => MAXVAL;
export function opIndexMissing(table: Table, name: string): Error {
  return opFailed(`Index \`${name}\` was not found on table \`${table.db}.${table.name}\`.`);
}
