// Values inside the engine are wire JSON (TIME and BINARY as `$reql_type$` objects), plus the
// two sentinels minval/maxval, which only ever live inside a query or an index bound.
import type { Datum } from './api.js';
import { logicError, resourceLimit } from './errors.js';

export type { Datum };
export type DatumObject = { [key: string]: Datum };

class Bound {
  constructor(readonly name: 'MINVAL' | 'MAXVAL') {}
}
export const MINVAL = new Bound('MINVAL');
export const MAXVAL = new Bound('MAXVAL');
export type Key = Datum | Bound;
export const isBound = (v: unknown): v is Bound => v instanceof Bound;

export const ARRAY_LIMIT = 100_000;

/** A plain JSON object (not an array, and not one of the engine's value classes). */
export function isObject(v: unknown): v is DatumObject {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}
export function isTime(v: unknown): v is { $reql_type$: 'TIME'; epoch_time: number; timezone: string } {
  return isObject(v) && v.$reql_type$ === 'TIME';
}
export function isBinary(v: unknown): v is { $reql_type$: 'BINARY'; data: string } {
  return isObject(v) && v.$reql_type$ === 'BINARY';
}
export function isPtype(v: unknown): boolean {
  return isObject(v) && typeof v.$reql_type$ === 'string';
}

/** RethinkDB's type names, as typeOf() reports and error messages print them. */
export function typeName(v: Key): string {
  if (v === null) return 'NULL';
  if (v instanceof Bound) return v.name;
  switch (typeof v) {
    case 'boolean':
      return 'BOOL';
    case 'number':
      return 'NUMBER';
    case 'string':
      return 'STRING';
  }
  if (Array.isArray(v)) return 'ARRAY';
  const t = (v as DatumObject).$reql_type$;
  if (typeof t === 'string') return `PTYPE<${t}>`;
  return 'OBJECT';
}

// Cross-type order is by type name (ARRAY < BOOL < NULL < NUMBER < OBJECT < PTYPE<BINARY> <
// PTYPE<GEOMETRY> < PTYPE<TIME> < STRING), with minval/maxval bounding everything. Ranks are
// numbers so that index trees compare without building type-name strings.
const R_MIN = 0, R_ARRAY = 1, R_BOOL = 2, R_NULL = 3, R_NUMBER = 4, R_OBJECT = 5, R_PTYPE = 6, R_STRING = 7, R_MAX = 8;
function rank(v: Key): number {
  switch (typeof v) {
    case 'string':
      return R_STRING;
    case 'number':
      return R_NUMBER;
    case 'boolean':
      return R_BOOL;
  }
  if (v === null) return R_NULL;
  if (Array.isArray(v)) return R_ARRAY;
  if (v === MINVAL) return R_MIN;
  if (v === MAXVAL) return R_MAX;
  return typeof (v as DatumObject).$reql_type$ === 'string' ? R_PTYPE : R_OBJECT;
}

// UTF-16 code units order like code points except surrogates (D800-DFFF), which stand for
// code points above every unit in E000-FFFF.
function unitKey(u: number): number {
  return u < 0xd800 ? u : u <= 0xdfff ? u + 0x2000 : u - 0x800;
}

function compareStrings(a: string, b: string): number {
  if (a === b) return 0;
  const n = a.length < b.length ? a.length : b.length;
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) {
      if (x < 0xd800 || y < 0xd800) return x < y ? -1 : 1;
      return unitKey(x) < unitKey(y) ? -1 : 1;
    }
  }
  return a.length < b.length ? -1 : a.length > b.length ? 1 : 0;
}

export function compare(a: Key, b: Key): number {
  if (typeof a === 'string' && typeof b === 'string') return compareStrings(a, b);
  if (typeof a === 'number' && typeof b === 'number') return a < b ? -1 : a > b ? 1 : 0;
  const ra = rank(a);
  const rb = rank(b);
  if (ra !== rb) return ra < rb ? -1 : 1;
  switch (ra) {
    case R_MIN:
    case R_MAX:
    case R_NULL:
      return 0;
    case R_BOOL:
      return a === b ? 0 : a ? 1 : -1;
    case R_ARRAY: {
      const aa = a as Datum[];
      const bb = b as Datum[];
      const n = Math.min(aa.length, bb.length);
      for (let i = 0; i < n; i++) {
        const c = compare(aa[i], bb[i]);
        if (c !== 0) return c;
      }
      return aa.length < bb.length ? -1 : aa.length > bb.length ? 1 : 0;
    }
    case R_PTYPE: {
      const ta = (a as DatumObject).$reql_type$ as string;
      const tb = (b as DatumObject).$reql_type$ as string;
      if (ta !== tb) return compareStrings(ta, tb);
      if (ta === 'TIME') {
        const d = ((a as DatumObject).epoch_time as number) - ((b as DatumObject).epoch_time as number);
        return d < 0 ? -1 : d > 0 ? 1 : 0;
      }
      if (ta === 'BINARY') {
        return Buffer.compare(Buffer.from((a as DatumObject).data as string, 'base64'), Buffer.from((b as DatumObject).data as string, 'base64'));
      }
      return compareObjects(a as DatumObject, b as DatumObject);
    }
    default:
      return compareObjects(a as DatumObject, b as DatumObject);
  }
}

// Objects compare as their sorted [key, value] lists.
function compareObjects(oa: DatumObject, ob: DatumObject): number {
  const ka = Object.keys(oa).sort(compareStrings);
  const kb = Object.keys(ob).sort(compareStrings);
  const n = Math.min(ka.length, kb.length);
  for (let i = 0; i < n; i++) {
    const c = compareStrings(ka[i], kb[i]);
    if (c !== 0) return c;
    const cv = compare(oa[ka[i]], ob[kb[i]]);
    if (cv !== 0) return cv;
  }
  return ka.length < kb.length ? -1 : ka.length > kb.length ? 1 : 0;
}

export function equal(a: Key, b: Key): boolean {
  return compare(a, b) === 0;
}

/** Pretty JSON the way RethinkDB prints values inside error messages (tab indentation). */
export function printDatum(v: Key, indent = ''): string {
  if (v instanceof Bound) return `r.${v.name.toLowerCase()}`;
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  const inner = indent + '\t';
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]';
    return `[\n${v.map((x) => inner + printDatum(x, inner)).join(',\n')}\n${indent}]`;
  }
  const keys = Object.keys(v).sort(compareStrings); // RethinkDB prints keys in sorted order
  if (keys.length === 0) return '{}';
  return `{\n${keys.map((k) => `${inner}${JSON.stringify(k)}:\t${printDatum(v[k], inner)}`).join(',\n')}\n${indent}}`;
}

export function deepClone<T extends Datum>(v: T): T {
  if (v === null || typeof v !== 'object') return v;
  return structuredClone(v);
}

export function arrayLimitMessage(limit: number): string {
  return `Array over size limit \`${limit}\`.  To raise the number of allowed elements, modify the \`array_limit\` option to \`.run\` (not available in the Data Explorer), or use an index.`;
}

export function checkArraySize(n: number, limit = ARRAY_LIMIT): void {
  if (n > limit) throw resourceLimit(arrayLimitMessage(limit));
}

export function asNumber(v: Datum): number {
  if (typeof v !== 'number') throw logicError(`Expected type NUMBER but found ${typeName(v)}.`);
  return v;
}
