// Aggregation: group/ungroup, reduce, fold, distinct, sum, avg, min, max, and the rule that
// terms applied to grouped data apply to each group.
import { compare, isObject, printDatum, typeName, type Datum, type Key } from '../datum.js';
import { isNonExistence, logicError, nonExistence, resourceLimit, opIndexMissing } from '../errors.js';
import { OpFamily, num, toDatum, valTypeName, type Ctx, type OpDef } from '../eval.js';
import type { Term } from '../term.js';
import { T } from '../termtypes.js';
import { Feed, Func, Grouped, Stream, type Val } from '../values.js';
import type { Table } from '../../storage/table.js';

/** The aggregate terms, joined into the engine's table by registry.ts. */
export const aggregateOps = new OpFamily('aggregate');
const def = aggregateOps.def;

const INFINITE = 'Cannot use an infinite stream with an aggregation function (`reduce`, `count`, etc.) or coerce it to an array.';

/** The rows of a sequence an aggregation reads (not an infinite one). */
function rowsOf(v: Val): Iterable<Datum> {
  if (Array.isArray(v)) return v;
  if (v instanceof Stream) {
    if (v.opts.infinite) throw logicError(INFINITE);
    return v.iter();
  }
  if (v instanceof Feed) throw logicError('Cannot call a terminal (`reduce`, `count`, etc.) on an infinite stream (such as a changefeed).');
  throw logicError(`Cannot convert ${valTypeName(v)} to SEQUENCE`);
}

// --- grouped data ---

/** Marks a group whose reduction saw no rows: such a group is left out of the result. */
export const EMPTY_GROUP: unique symbol = Symbol('empty group');
type GroupResult = Val | typeof EMPTY_GROUP;

/**
 * Applies fn to the value of every group. A GROUPED_STREAM stays one while fn returns streams;
 * groups left with no rows (after a filter, say) disappear, as they would in RethinkDB, where
 * rows are transformed before they are grouped.
 */
export function perGroup(c: Ctx, g: Grouped, fn: (v: Val) => GroupResult): Grouped {
  void c;
  const out: Array<[Datum, Val]> = [];
  let allStreams = true;
  for (const [k, v] of g.groups) {
    let r = fn(v);
    if (r === EMPTY_GROUP) continue;
    if (g.typeName === 'GROUPED_STREAM' && (r instanceof Stream || Array.isArray(r))) {
      if (r instanceof Stream && r.opts.infinite) throw logicError(INFINITE);
      const items = r instanceof Stream ? [...r.iter()] : r;
      if (items.length === 0) continue;
      if (r instanceof Stream) {
        const s: Stream = r;
        r = new Stream(s.typeName, () => items, { table: s.opts.table });
      }
    }
    if (!(r instanceof Stream)) allStreams = false;
    out.push([k, r]);
  }
  const streaming = out.length === 0 ? g.typeName === 'GROUPED_STREAM' : allStreams;
  return new Grouped(out, streaming ? 'GROUPED_STREAM' : 'GROUPED_DATA');
}

/** Calls the term with `arg` as its argument number i (already evaluated). */
function withArg(c: Ctx, t: Term, op: OpDef, i: number, arg: Val): Val {
  const args = t.args.slice();
  args[i] = { type: T.DATUM, args: [], optargs: {}, datum: arg as Datum };
  return op.impl(c, { ...t, args });
}

/**
 * Only a term with a GROUP inside can evaluate to grouped data (a variable never holds grouped
 * data: functions are called per group). Remembered on the term, so the common case, row functions
 * such as `row('a').add(1)`, costs one lookup.
 */
const GROUPABLE = Symbol('groupable');
type Marked = Term & { [GROUPABLE]?: boolean };
function mayBeGrouped(t: Marked): boolean {
  let v = t[GROUPABLE];
  if (v === undefined) {
    v = t.type === T.GROUP || t.args.some(mayBeGrouped) || Object.values(t.optargs).some(mayBeGrouped);
    t[GROUPABLE] = v;
  }
  return v;
}

/** Applies a term to each group when its sequence argument is grouped data. */
export const runGrouped = (c: Ctx, t: Term, op: OpDef): Val => {
  const i = t.type === T.FUNCALL ? 1 : 0;
  const a: Marked | undefined = t.args[i];
  if (a === undefined || a[GROUPABLE] === false) return op.impl(c, t);
  if ((i === 1 && t.args.length !== 2) || a.type === T.ARGS || !mayBeGrouped(a)) return op.impl(c, t);
  const v = c.ev(a);
  if (v instanceof Grouped) {
    // count(predicate) counts the rows that pass, and a group none pass is left out
    const dropZero = t.type === T.COUNT && t.args.length > 1 && v.typeName === 'GROUPED_STREAM';
    return perGroup(c, v, (g) => {
      const r = withArg(c, t, op, i, g);
      return dropZero && r === 0 ? EMPTY_GROUP : r;
    });
  }
  return withArg(c, t, op, i, v);
};

/** The terms that apply to each group of grouped data. */
export const GROUPED_TERMS: ReadonlySet<number> = new Set([
  T.MAP, T.FILTER, T.CONCAT_MAP, T.ORDER_BY, T.LIMIT, T.SKIP, T.SLICE, T.NTH, T.BRACKET, T.GET_FIELD,
  T.COUNT, T.IS_EMPTY, T.CONTAINS, T.UNION, T.PLUCK, T.WITHOUT, T.MERGE, T.HAS_FIELDS, T.WITH_FIELDS,
  T.KEYS, T.VALUES, T.COERCE_TO, T.FUNCALL,
  T.ADD, T.SUB, T.MUL, T.DIV, T.MOD, T.FLOOR, T.CEIL, T.ROUND,
  T.APPEND, T.PREPEND, T.DIFFERENCE, T.SET_INSERT, T.SET_INTERSECTION, T.SET_UNION, T.SET_DIFFERENCE,
  T.INSERT_AT, T.DELETE_AT, T.CHANGE_AT, T.SPLICE_AT, T.OFFSETS_OF, T.SAMPLE, T.ZIP,
  T.EQ_JOIN, T.INNER_JOIN, T.OUTER_JOIN,
]);

/** Runs an aggregation on a sequence, or on each group of grouped data. */
function aggregate(c: Ctx, src: Val, body: (v: Val) => GroupResult, onEmpty: () => Val): Val {
  if (src instanceof Grouped) return perGroup(c, src, body);
  const r = body(src);
  return r === EMPTY_GROUP ? onEmpty() : r;
}

/** What sum/avg/min/max read from a row: the row, a field (rows without it are skipped) or a function. */
function extractor(c: Ctx, f: Val | undefined): (row: Datum) => Datum | undefined {
  if (f === undefined) return (row) => row;
  if (f instanceof Func) {
    return (row) => {
      try {
        return c.callDatum(f, [row]);
      } catch (e) {
        if (isNonExistence(e)) return undefined;
        throw e;
      }
    };
  }
  const field = toDatum(f, c);
  if (typeof field !== 'string') return () => field;
  return (row) => {
    if (!isObject(row)) throw logicError(`Cannot perform get_field on a non-object non-sequence \`${printDatum(row)}\`.`);
    return row[field];
  };
}

const emptyMsg = (what: string, name: string) =>
  `Cannot take the ${what} of an empty stream.  (If you passed \`${name}\` a field name, it may be that no elements of the stream had that field.)`;

def(T.SUM, 1, 2, (c, t) => {
  const [src, f] = c.args(t);
  const get = extractor(c, f);
  return aggregate(c, src, (v) => {
    let total = 0;
    let n = 0;
    for (const row of rowsOf(v)) {
      const x = get(row);
      if (x === undefined) continue;
      total += num(x);
      n++;
    }
    return n === 0 && v !== src ? EMPTY_GROUP : total;
  }, () => 0);
});

def(T.AVG, 1, 2, (c, t) => {
  const [src, f] = c.args(t);
  const get = extractor(c, f);
  return aggregate(c, src, (v) => {
    let total = 0;
    let n = 0;
    for (const row of rowsOf(v)) {
      const x = get(row);
      if (x === undefined) continue;
      total += num(x);
      n++;
    }
    return n === 0 ? EMPTY_GROUP : total / n;
  }, () => {
    throw nonExistence(emptyMsg('average', 'avg'));
  });
});

function indexKeyOf(table: Table, index: string): (row: Datum) => Key | undefined {
  if (index === table.primaryKey) return (row) => (isObject(row) ? row[index] : undefined);
  const idx = table.indexes.get(index)!;
  return (row) => {
    if (!isObject(row)) return undefined;
    const ks = idx.keys(row);
    if (ks.length === 0) return undefined;
    return ks.reduce((a, b) => (compare(a, b) <= 0 ? a : b));
  };
}

function tableOfSeq(v: Val, what: string): Table {
  if (v instanceof Stream && v.opts.table && (v.typeName === 'TABLE' || v.typeName === 'TABLE_SLICE' || v.typeName === 'SELECTION<STREAM>' || v.typeName === 'SELECTION<ARRAY>')) return v.opts.table;
  void what;
  throw logicError(`Expected type TABLE_SLICE but found ${valTypeName(v)}.`);
}

function minMax(which: 'min' | 'max') {
  const better = which === 'min' ? (r: number) => r < 0 : (r: number) => r > 0;
  return (c: Ctx, t: Term): Val => {
    const [src, f] = c.args(t);
    let indexOpt = c.opt(t, 'index');
    // A whole table's min()/max() is by primary key (as RethinkDB answers it, from the index).
    if (indexOpt === undefined && f === undefined && src instanceof Stream && src.typeName === 'TABLE' && src.opts.table) indexOpt = src.opts.table.primaryKey;
    const onEmpty = () => {
      throw nonExistence(emptyMsg(which, which));
    };
    if (indexOpt !== undefined) {
      if (typeof indexOpt !== 'string') throw logicError(`Expected type STRING but found ${typeName(indexOpt)}.`);
      const table = tableOfSeq(src, which);
      if (indexOpt !== table.primaryKey && !table.indexes.has(indexOpt)) throw opIndexMissing(table, indexOpt);
      const s = src as Stream;
      if (s.typeName === 'TABLE') {
        // The index itself is in order: the first entry from the right end is the answer.
        const desc = which === 'max';
        if (indexOpt === table.primaryKey) {
          for (const row of table.scan(desc)) return row;
        } else {
          for (const row of table.indexScanRows(indexOpt, desc)) return row;
        }
        return onEmpty();
      }
      const key = indexKeyOf(table, indexOpt);
      let best: Datum | undefined;
      let bestKey: Key | undefined;
      for (const row of s.iter()) {
        const k = key(row);
        if (k === undefined || k === null) continue;
        if (bestKey === undefined || better(compare(k, bestKey))) {
          best = row;
          bestKey = k;
        }
      }
      return best === undefined ? onEmpty() : best;
    }
    const get = extractor(c, f);
    return aggregate(c, src, (v) => {
      let best: Datum | undefined;
      let bestKey: Datum | undefined;
      for (const row of rowsOf(v)) {
        const k = get(row);
        if (k === undefined) continue;
        if (bestKey === undefined || better(compare(k, bestKey))) {
          best = row;
          bestKey = k;
        }
      }
      return best === undefined ? EMPTY_GROUP : best;
    }, onEmpty);
  };
}
def(T.MIN, 1, 2, minMax('min'), ['index']);
def(T.MAX, 1, 2, minMax('max'), ['index']);

def(T.REDUCE, 2, 2, (c, t) => {
  const src = c.ev(t.args[0]);
  const f = c.ev(t.args[1]);
  return aggregate(c, src, (v) => {
    let acc: Datum | undefined;
    for (const row of rowsOf(v)) acc = acc === undefined ? row : c.callDatum(f, [acc, row]);
    return acc === undefined ? EMPTY_GROUP : acc;
  }, () => {
    throw nonExistence('Cannot reduce over an empty stream.');
  });
});

/** An emit function's result: an array of values to emit. */
function emitted(c: Ctx, v: Val): Datum[] {
  if (v instanceof Stream) throw logicError('Expected type DATUM but found SEQUENCE:\nVALUE SEQUENCE');
  const d = toDatum(v, c);
  if (!Array.isArray(d)) throw logicError(`Expected type ARRAY but found ${typeName(d)}.`);
  return d;
}

def(T.FOLD, 3, 3, (c, t) => {
  const src = c.ev(t.args[0]);
  const base = c.datum(t.args[1]);
  const f = c.ev(t.args[2]);
  const emit = t.optargs.emit ? c.ev(t.optargs.emit) : undefined;
  const finalEmit = t.optargs.final_emit ? c.ev(t.optargs.final_emit) : undefined;
  const one = (v: Val): GroupResult => {
    if (emit === undefined) {
      let acc = base;
      for (const row of rowsOf(v)) acc = c.callDatum(f, [acc, row]);
      return finalEmit === undefined ? acc : c.callDatum(finalEmit, [acc]);
    }
    if (!(v instanceof Stream) && !Array.isArray(v)) rowsOf(v);
    const gen = function* (): Generator<Datum> {
      let acc = base;
      const it = v instanceof Stream ? v.iter() : (v as Datum[]);
      for (const row of it) {
        const next = c.callDatum(f, [acc, row]);
        yield* emitted(c, c.call(emit, [acc, row, next]));
        acc = next;
      }
      if (finalEmit !== undefined) yield* emitted(c, c.call(finalEmit, [acc]));
    };
    if (Array.isArray(v)) return [...gen()];
    return new Stream('STREAM', gen, { infinite: (v as Stream).opts.infinite });
  };
  if (src instanceof Grouped) return perGroup(c, src, one);
  return one(src) as Val;
}, ['emit', 'final_emit']);

/** Sorted distinct values. */
function distinctSorted(items: Iterable<Datum>): Datum[] {
  const all = [...items].sort(compare);
  const out: Datum[] = [];
  for (const x of all) if (out.length === 0 || compare(out[out.length - 1], x) !== 0) out.push(x);
  return out;
}

def(T.DISTINCT, 1, 1, (c, t) => {
  const src = c.ev(t.args[0]);
  const indexOpt = c.opt(t, 'index');
  if (indexOpt !== undefined) {
    if (typeof indexOpt !== 'string') throw logicError(`Expected type STRING but found ${typeName(indexOpt)}.`);
    const table = tableOfSeq(src, 'distinct');
    const s = src as Stream;
    if (indexOpt !== table.primaryKey && !table.indexes.has(indexOpt)) throw opIndexMissing(table, indexOpt);
    return new Stream('STREAM', () => {
      if (indexOpt === table.primaryKey) return distinctSorted((function* () {
        for (const row of s.iter()) if (isObject(row)) yield row[indexOpt];
      })());
      const idx = table.indexes.get(indexOpt)!;
      // The values as the rows hold them (an index entry keeps a time's instant, not its zone).
      return distinctSorted((function* () {
        for (const row of s.iter()) if (isObject(row)) yield* idx.keys(row);
      })());
    });
  }
  return aggregate(c, src, (v) => {
    if (Array.isArray(v)) return distinctSorted(v);
    const rows = rowsOf(v);
    return new Stream('STREAM', () => distinctSorted(rows));
  }, () => []);
}, ['index']);

// --- group / ungroup ---

/** A canonical text for a group key, so equal keys share a group. */
function canon(v: Datum): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canon).join(',')}]`;
  if (v.$reql_type$ === 'TIME') return `T${String(v.epoch_time)}`;
  return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canon(v[k])}`).join(',')}}`;
}

def(T.GROUP, 1, Infinity, (c, t) => {
  const [src, ...sels] = c.args(t);
  const indexOpt = c.opt(t, 'index');
  const multiOpt = c.opt(t, 'multi');
  if (multiOpt !== undefined && typeof multiOpt !== 'boolean') throw logicError(`Expected type BOOL but found ${typeName(multiOpt)}.`);
  const multi = multiOpt === true;
  if (src instanceof Grouped) throw logicError('Cannot call `group` on the output of `group` (did you mean to `ungroup`?).');
  if (sels.length === 0 && indexOpt === undefined) throw logicError('Cannot group by nothing.');

  const keyFns: Array<(row: Datum) => Datum> = sels.map((s) => {
    if (s instanceof Func) {
      return (row: Datum) => {
        try {
          return c.callDatum(s, [row]);
        } catch (e) {
          if (isNonExistence(e)) return null;
          throw e;
        }
      };
    }
    const d = toDatum(s, c);
    if (typeof d === 'string') {
      return (row: Datum) => {
        if (!isObject(row)) throw logicError(`Cannot perform get_field on a non-object non-sequence \`${printDatum(row)}\`.`);
        return row[d] === undefined ? null : row[d];
      };
    }
    return () => d;
  });

  let indexKeys: ((row: Datum) => Datum[]) | undefined;
  if (indexOpt !== undefined) {
    if (typeof indexOpt !== 'string') throw logicError(`Expected type STRING but found ${typeName(indexOpt)}.`);
    const table = tableOfSeq(src, 'group');
    if (indexOpt !== table.primaryKey && !table.indexes.has(indexOpt)) throw opIndexMissing(table, indexOpt);
    if (indexOpt === table.primaryKey) indexKeys = (row) => (isObject(row) ? [row[indexOpt]] : []);
    else {
      const idx = table.indexes.get(indexOpt)!;
      indexKeys = (row) => (isObject(row) ? table.indexValues(indexOpt, row) : []);
    }
  }

  const groups = new Map<string, [Datum, Datum[]]>();
  const add = (key: Datum, row: Datum) => {
    const k = canon(key);
    const g = groups.get(k);
    if (g) g[1].push(row);
    else groups.set(k, [key, [row]]);
  };
  for (const row of rowsOf(src)) {
    // Each selector gives one value, or (multi) each element of an array.
    const parts: Datum[][] = keyFns.map((f) => {
      const v = f(row);
      if (multi && Array.isArray(v)) return v.length === 0 ? [null] : dedupe(v);
      return [v];
    });
    if (indexKeys) {
      const ks = indexKeys(row);
      if (ks.length === 0) continue;
      parts.push(dedupe(ks));
    }
    let combos: Datum[][] = [[]];
    for (const p of parts) combos = combos.flatMap((pre) => p.map((x) => [...pre, x]));
    for (const combo of combos) add(combo.length === 1 ? combo[0] : combo, row);
  }
  const out = [...groups.values()].sort((a, b) => compare(a[0], b[0]));
  return new Grouped(out.map(([k, rows]) => [k, new Stream('STREAM', () => rows)]), 'GROUPED_STREAM');
}, ['index', 'multi']);

function dedupe(items: Datum[]): Datum[] {
  const seen = new Set<string>();
  return items.filter((x) => {
    const k = canon(x);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** Grouped data as a datum, within the array size limit. */
export function groupedRows(c: Ctx, g: Grouped): Array<[Datum, Datum]> {
  const limit = c.global.arrayLimit;
  let total = 0;
  return g.groups.map(([k, v]) => {
    const d = toDatum(v, c);
    if (Array.isArray(d)) {
      total += d.length;
      if (total > limit) throw resourceLimit(`Grouped data over size limit \`${limit}\`.  Try putting a reduction (like \`.reduce\` or \`.count\`) on the end.`);
    }
    return [k, d];
  });
}

def(T.UNGROUP, 1, 1, (c, t) => {
  const v = c.ev(t.args[0]);
  if (!(v instanceof Grouped)) throw logicError(`Expected type GROUPED_DATA but found ${valTypeName(v)}.`);
  return groupedRows(c, v).map(([group, reduction]) => ({ group, reduction }));
});
