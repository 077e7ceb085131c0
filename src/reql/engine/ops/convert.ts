// Type conversion (coerceTo) and info().
import { createHash } from 'node:crypto';
import { compare, isBinary, isBound, isObject, MAXVAL, MINVAL, printDatum, typeName, type Datum, type DatumObject, type Key } from '../datum.js';
import { logicError, opFailed } from '../errors.js';
import { OpFamily, str, toDatum, valTypeName, type Ctx } from '../eval.js';
import type { Term } from '../term.js';
import { T } from '../termtypes.js';
import { DbVal, Func, Grouped, Single, Stream, type Val } from '../values.js';
import type { Table } from '../../storage/table.js';

/** The convert terms, joined into the engine's table by registry.ts. */
export const convertOps = new OpFamily('convert');
const def = convertOps.def;

/** RethinkDB's text for a number: integers without a decimal point, other doubles in shortest round-trip form. */
export function numberText(n: number): string {
  if (Number.isNaN(n)) return 'nan';
  if (!Number.isFinite(n)) return n > 0 ? 'inf' : '-inf';
  if (Number.isInteger(n) && Math.abs(n) < 2 ** 53) return Object.is(n, -0) ? '-0.0' : String(n);
  return String(n).replace('e+', 'e');
}

function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Compact JSON as RethinkDB writes it (object keys in sorted order). */
export function jsonText(v: Key): string {
  if (isBound(v)) throw logicError(`Cannot convert \`${printDatum(v)}\` to JSON.`);
  if (v === null) return 'null';
  switch (typeof v) {
    case 'boolean':
      return v ? 'true' : 'false';
    case 'number':
      return numberText(v);
    case 'string':
      return JSON.stringify(v);
  }
  if (Array.isArray(v)) return `[${v.map(jsonText).join(',')}]`;
  const o = v as DatumObject;
  const keys = Object.keys(o).sort(compareKeys);
  return `{${keys.map((k) => `${JSON.stringify(k)}:${jsonText(o[k])}`).join(',')}}`;
}

/** The type name used in "Cannot coerce X to Y." messages. */
function coerceName(v: Datum): string {
  if (isBinary(v)) return 'BINARY';
  return typeName(v);
}

const HEX_RE = /^\s*([+-]?)0[xX]([0-9a-fA-F]*)(?:\.([0-9a-fA-F]*))?(?:[pP]([+-]?\d+))?$/;
const DEC_RE = /^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const SPECIAL_RE = /^\s*([+-]?)(inf|infinity|nan)$/i;

/** Parses a number as C's strtod does, requiring the whole string to be used. */
function parseNumber(s: string): number {
  let n: number | undefined;
  if (DEC_RE.test(s)) n = Number(s.trim());
  else {
    const h = HEX_RE.exec(s);
    if (h && (h[2] !== '' || (h[3] !== undefined && h[3] !== ''))) {
      const frac = h[3] ?? '';
      const mant = parseInt((h[2] || '0') + frac, 16);
      n = mant * 2 ** (-4 * frac.length) * 2 ** Number(h[4] ?? 0);
      if (h[1] === '-') n = -n;
    } else {
      const sp = SPECIAL_RE.exec(s);
      if (sp) n = sp[2].toLowerCase() === 'nan' ? NaN : sp[1] === '-' ? -Infinity : Infinity;
    }
  }
  if (n === undefined) throw logicError(`Could not coerce \`${s}\` to NUMBER.`);
  if (!Number.isFinite(n)) throw logicError(`Non-finite number: ${numberText(n)}`);
  return n;
}

function pairsToObject(items: Iterable<Datum>): DatumObject {
  const out: DatumObject = {};
  for (const item of items) {
    if (!Array.isArray(item)) throw logicError(`Expected type ARRAY but found ${typeName(item)}.`);
    if (item.length !== 2) throw logicError(`Expected array of size 2, but got size ${item.length}.`);
    const k = str(item[0]);
    out[k] = item[1];
  }
  return out;
}

export function coerceDatum(v: Datum, target: string): Datum {
  const from = coerceName(v);
  const cannot = () => logicError(`Cannot coerce ${from} to ${target}.`);
  if (isBound(v)) {
    if (target === 'STRING') throw logicError(`Cannot convert \`${printDatum(v)}\` to JSON.`);
    throw cannot();
  }
  switch (target) {
    case 'STRING':
      if (typeof v === 'string') return v;
      if (isBinary(v)) return Buffer.from(v.data, 'base64').toString('utf8');
      return jsonText(v);
    case 'NUMBER':
      if (typeof v === 'number') return v;
      if (typeof v === 'string') return parseNumber(v);
      throw cannot();
    case 'BOOL':
      return v !== null && v !== false;
    case 'NULL':
      if (v === null) return null;
      throw cannot();
    case 'ARRAY':
      if (Array.isArray(v)) return v;
      if (isObject(v) && v.$reql_type$ === undefined) return Object.entries(v).map(([k, x]) => [k, x]);
      throw cannot();
    case 'OBJECT':
      if (isObject(v) && !isBinary(v)) {
        if (v.$reql_type$ === undefined) return v;
        throw cannot();
      }
      if (Array.isArray(v)) return pairsToObject(v);
      throw cannot();
    case 'BINARY':
      if (isBinary(v)) return v;
      if (typeof v === 'string') return { $reql_type$: 'BINARY', data: Buffer.from(v, 'utf8').toString('base64') };
      throw cannot();
    default:
      if (from === target) return v;
      throw cannot();
  }
}

def(T.COERCE_TO, 2, 2, (c, t) => {
  const v = c.ev(t.args[0]);
  const target = str(c.datum(t.args[1])).toUpperCase();
  if (v instanceof Stream) {
    // Sequences become arrays (or objects of pairs); toDatum refuses infinite streams.
    if (target === 'ARRAY') return toDatum(v, c);
    if (target === 'OBJECT') return pairsToObject(toDatum(v, c) as Datum[]);
    if (target === v.typeName || (target === 'STREAM' && v.typeName !== 'TABLE')) return v;
    throw logicError(`Cannot coerce ${v.typeName} to ${target}.`);
  }
  if (v instanceof Func || v instanceof DbVal) {
    if (target === v.typeName) return v;
    throw logicError(`Cannot coerce ${v.typeName} to ${target}.`);
  }
  return coerceDatum(toDatum(v, c), target);
});

// --- info() ---
const SYSTEM_DB = 'rethinkdb';

/** A stable id for a database the catalog doesn't list (the system database). */
function pseudoId(name: string): string {
  const x = createHash('sha1').update(`db:${name}`).digest('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-5${x.slice(13, 16)}-a${x.slice(17, 20)}-${x.slice(20, 32)}`;
}

function dbInfo(c: Ctx, name: string): DatumObject {
  const db = c.state.catalog.dbs.get(name);
  if (db) return { type: 'DB', name: db.name, id: db.id };
  if (name === SYSTEM_DB) return { type: 'DB', name, id: pseudoId(name) };
  throw opFailed(`Database \`${name}\` does not exist.`);
}

function tableInfo(c: Ctx, table: Table): DatumObject {
  let count = 0;
  for (const _ of table.scan()) count++;
  return {
    type: 'TABLE',
    name: table.name,
    id: table.id,
    db: dbInfo(c, table.db),
    primary_key: table.primaryKey,
    indexes: [...table.indexes.keys()].sort(compareKeys),
    doc_count_estimates: [count],
  };
}

/** info() of a system table, which has no storage table: its name comes from the query. */
function systemTableInfo(c: Ctx, term: Term): DatumObject | undefined {
  if (term.type !== T.TABLE) return undefined;
  const nameTerm = term.args[term.args.length - 1];
  const dbTerm = term.args.length === 2 ? term.args[0] : undefined;
  if (nameTerm.type !== T.DATUM || typeof nameTerm.datum !== 'string') return undefined;
  let db = c.global.db;
  if (dbTerm) {
    const v = c.ev(dbTerm);
    if (v instanceof DbVal) db = v.name;
  }
  return {
    type: 'TABLE',
    name: nameTerm.datum,
    id: pseudoId(`${db}.${nameTerm.datum}`),
    db: dbInfo(c, db),
    primary_key: 'id',
    indexes: [],
    doc_count_estimates: [0],
  };
}

/** info() of an index range (between, orderBy({index})). */
function sliceInfo(c: Ctx, v: Stream, table: Table): DatumObject {
  const src = v.opts.feed?.source;
  const range = src && src.kind === 'between' ? src : undefined;
  const index = range?.index ?? v.opts.ordered?.index ?? table.primaryKey;
  const out: DatumObject = { type: 'TABLE_SLICE', index };
  const lo: Key = range ? range.lo : MINVAL;
  const hi: Key = range ? range.hi : MAXVAL;
  const c0 = compare(lo, hi);
  if (c0 > 0 || (c0 === 0 && (range?.loOpen || range?.hiOpen))) {
    out.left_bound_type = 'unachievable';
    out.right_bound_type = 'unachievable';
  } else {
    if (lo === MINVAL) out.left_bound_type = 'unbounded';
    else {
      out.left_bound = lo as Datum;
      out.left_bound_type = range?.loOpen ? 'open' : 'closed';
    }
    if (hi === MAXVAL) out.right_bound_type = 'unbounded';
    else {
      out.right_bound = hi as Datum;
      out.right_bound_type = range?.hiOpen ? 'open' : 'closed';
    }
  }
  out.sorting = v.opts.ordered ? (v.opts.ordered.desc ? 'DESCENDING' : 'ASCENDING') : 'UNORDERED';
  out.table = tableInfo(c, table);
  return out;
}

def(T.INFO, 1, 1, (c, t) => {
  const v: Val = c.ev(t.args[0]);
  if (v instanceof DbVal) return dbInfo(c, v.name);
  if (v instanceof Stream) {
    if (v.typeName === 'TABLE') {
      if (v.opts.table) return tableInfo(c, v.opts.table);
      return systemTableInfo(c, t.args[0]) ?? { type: 'TABLE' };
    }
    if (v.typeName === 'TABLE_SLICE' && v.opts.table) return sliceInfo(c, v, v.opts.table);
    if (v.opts.table) return { type: v.typeName, table: tableInfo(c, v.opts.table) };
    return { type: v.typeName };
  }
  if (v instanceof Single) return { type: v.typeName, table: tableInfo(c, v.table) };
  if (v instanceof Func) return { type: 'FUNCTION' };
  if (v instanceof Grouped) return { type: v.typeName };
  const name = valTypeName(v);
  if (isBound(v)) return { type: name };
  const d = toDatum(v, c);
  if (d === null) return { type: 'NULL' };
  return { type: name, value: printDatum(d) };
});
