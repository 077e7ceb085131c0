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

// Cross-type order is by type name, except that minval/maxval bound everything.
function typeRank(v: Key): string {
  if (v === MINVAL) return '\u0000';
  if (v === MAXVAL) return '\uffff';
  return typeName(v);
}

function compareStrings(a: string, b: string): number {
  // By code point, as RethinkDB compares UTF-8 bytes.
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const ca = a.codePointAt(i)!;
    const cb = b.codePointAt(i)!;
    if (ca !== cb) return ca < cb ? -1 : 1;
    if (ca > 0xffff) i++;
  }
  return a.length < b.length ? -1 : a.length > b.length ? 1 : 0;
}

export function compare(a: Key, b: Key): number {
  const ta = typeRank(a);
  const tb = typeRank(b);
  if (ta !== tb) return ta < tb ? -1 : 1;
  if (a instanceof Bound || a === null) return 0;
  switch (typeof a) {
    case 'boolean':
      return a === b ? 0 : a ? 1 : -1;
    case 'number':
      return a < (b as number) ? -1 : a > (b as number) ? 1 : 0;
    case 'string':
      return compareStrings(a, b as string);
  }
  if (Array.isArray(a)) {
    const bb = b as Datum[];
    const n = Math.min(a.length, bb.length);
    for (let i = 0; i < n; i++) {
      const c = compare(a[i], bb[i]);
      if (c !== 0) return c;
    }
    return a.length - bb.length < 0 ? -1 : a.length > bb.length ? 1 : 0;
  }
  const oa = a as DatumObject;
  const ob = b as DatumObject;
  if (isTime(oa)) return Math.sign(oa.epoch_time - (ob as typeof oa).epoch_time);
  if (isBinary(oa)) {
    return Buffer.compare(Buffer.from(oa.data, 'base64'), Buffer.from((ob as typeof oa).data, 'base64'));
  }
  // Objects compare as their sorted [key, value] lists.
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
  const keys = Object.keys(v);
  if (keys.length === 0) return '{}';
  return `{\n${keys.map((k) => `${inner}${JSON.stringify(k)}:\t${printDatum(v[k], inner)}`).join(',\n')}\n${indent}}`;
}

export function deepClone<T extends Datum>(v: T): T {
  if (v === null || typeof v !== 'object') return v;
  return structuredClone(v);
}

export function checkArraySize(n: number, limit = ARRAY_LIMIT): void {
  if (n > limit) throw resourceLimit(`Array over size limit \`${limit}\`.`);
}

export function asNumber(v: Datum): number {
  if (typeof v !== 'number') throw logicError(`Expected type NUMBER but found ${typeName(v)}.`);
  return v;
}
