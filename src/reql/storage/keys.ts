// Index keys as strings that sort like the values they stand for: for any two keys,
// `encodeKey(a) < encodeKey(b)` exactly when `compare(a, b) < 0` (engine/datum.ts), so the
// trees compare keys with JavaScript's own string comparison instead of walking values.
//
// Every character is a byte (0-255), so the strings are one byte a character in memory. An
// encoding is prefix-free: a key followed by anything never sorts between two other keys.
// Each value starts with a tag that orders the types as RethinkDB does:
//   END 01 (closes an array or object), MINVAL 02, ARRAY 03, false 04, true 05, NULL 06,
//   NUMBER 07 + 8 bytes, OBJECT 08 (keys in order, each a STRING, then its value), PTYPE 09
//   (its $reql_type$ as string bytes, then: TIME its epoch_time's 8 bytes, BINARY its bytes,
//   any other its whole object), STRING 0A (UTF-8 bytes), MAXVAL 0B.
// String bytes are followed by 00; a 00 or 01 byte inside is written 01 01 or 01 02.
// Numbers are IEEE 754, big-endian, sign bit flipped for positives and every bit for
// negatives (-0 is 0). A TIME keeps its instant, not its zone: keys equal in order are equal.
import { compare, MAXVAL, MINVAL, type Datum, type DatumObject, type Key } from '../engine/datum.js';

const END = 0x01, MIN = 0x02, ARRAY = 0x03, FALSE = 0x04, TRUE = 0x05, NULL = 0x06, NUMBER = 0x07, OBJECT = 0x08, PTYPE = 0x09, STRING = 0x0a, MAX = 0x0b;
/** Sorts after every key that starts with a given key's encoding (an exclusive lower bound). */
export const AFTER = '\x0c';
/** The encodings of the bounds. */
export const MIN_KEY = '\x02';
export const MAX_KEY = '\x0b';

let buf = Buffer.allocUnsafe(4096);
let at = 0;
const f64 = new Float64Array(1);
const f64bytes = new Uint8Array(f64.buffer);
const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function room(n: number): void {
  if (at + n <= buf.length) return;
  const bigger = Buffer.allocUnsafe(Math.max(buf.length * 2, at + n));
  buf.copy(bigger, 0, 0, at);
  buf = bigger;
}

function putNumber(x: number): void {
  room(8);
  f64[0] = x === 0 ? 0 : x; // -0 is 0
  const neg = (f64bytes[littleEndian ? 7 : 0] & 0x80) !== 0;
  for (let i = 0; i < 8; i++) {
    const b = f64bytes[littleEndian ? 7 - i : i];
    buf[at++] = neg ? ~b & 0xff : i === 0 ? b ^ 0x80 : b;
  }
}

function putByte(b: number): void {
  if (b < 2) {
    buf[at++] = 1;
    buf[at++] = b + 1;
  } else buf[at++] = b;
}

/** A string's UTF-8 bytes (a lone surrogate as its own three bytes), escaped, then 00. */
function putString(s: string): void {
  room(s.length * 6 + 1);
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      putByte(c);
      continue;
    }
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
      }
    }
    if (c < 0x800) {
      buf[at++] = 0xc0 | (c >> 6);
      buf[at++] = 0x80 | (c & 0x3f);
    } else if (c < 0x10000) {
      buf[at++] = 0xe0 | (c >> 12);
      buf[at++] = 0x80 | ((c >> 6) & 0x3f);
      buf[at++] = 0x80 | (c & 0x3f);
    } else {
      buf[at++] = 0xf0 | (c >> 18);
      buf[at++] = 0x80 | ((c >> 12) & 0x3f);
      buf[at++] = 0x80 | ((c >> 6) & 0x3f);
      buf[at++] = 0x80 | (c & 0x3f);
    }
  }
  buf[at++] = 0;
}

// Object keys sorted as compare() sorts them (by code point).
const byCodePoint = (a: string, b: string) => compare(a, b);

function put(v: Key): void {
  room(1);
  switch (typeof v) {
    case 'string':
      buf[at++] = STRING;
      putString(v);
      return;
    case 'number':
      buf[at++] = NUMBER;
      putNumber(v);
      return;
    case 'boolean':
      buf[at++] = v ? TRUE : FALSE;
      return;
  }
  if (v === null) {
    buf[at++] = NULL;
    return;
  }
  if (v === MINVAL) {
    buf[at++] = MIN;
    return;
  }
  if (v === MAXVAL) {
    buf[at++] = MAX;
    return;
  }
  if (Array.isArray(v)) {
    buf[at++] = ARRAY;
    for (const x of v) put(x);
    room(1);
    buf[at++] = END;
    return;
  }
  const o = v as DatumObject;
  const type = o.$reql_type$;
  if (typeof type === 'string') {
    buf[at++] = PTYPE;
    putString(type);
    if (type === 'TIME') {
      putNumber(typeof o.epoch_time === 'number' ? o.epoch_time : 0);
      return;
    }
    if (type === 'BINARY') {
      const bytes = Buffer.from(typeof o.data === 'string' ? o.data : '', 'base64');
      room(bytes.length * 2 + 1);
      for (const b of bytes) putByte(b);
      buf[at++] = 0;
      return;
    }
    room(1);
  }
  putObject(o);
}

function putObject(o: DatumObject): void {
  buf[at++] = OBJECT;
  for (const k of Object.keys(o).sort(byCodePoint)) {
    room(1);
    buf[at++] = STRING;
    putString(k);
    put(o[k]);
  }
  room(1);
  buf[at++] = END;
}

/** The sortable encoding of a value (or bound). */
export function encodeKey(v: Key): string {
  at = 0;
  put(v);
  return buf.toString('latin1', 0, at);
}

/** The encodings of two values one after the other: an index entry (value, primary key). */
export function encodePair(v: Key, pk: Key): string {
  at = 0;
  put(v);
  put(pk);
  return buf.toString('latin1', 0, at);
}

// --- reading keys back ---

/** Where the string bytes starting at i end (just past their 00). */
function skipString(s: string, i: number): number {
  for (;;) {
    const c = s.charCodeAt(i++);
    if (c === 0) return i;
    if (c === 1) i++;
  }
}

/** Where the encoded value starting at i ends. */
export function skipKey(s: string, i: number): number {
  const tag = s.charCodeAt(i++);
  switch (tag) {
    case STRING:
      return skipString(s, i);
    case NUMBER:
      return i + 8;
    case ARRAY:
    case OBJECT:
      while (s.charCodeAt(i) !== END) i = skipKey(s, i);
      return i + 1;
    case PTYPE: {
      const start = i;
      i = skipString(s, i);
      const type = s.slice(start, i - 1);
      if (type === 'TIME') return i + 8;
      if (type === 'BINARY') return skipString(s, i);
      return skipKey(s, i);
    }
    default:
      return i; // MINVAL, MAXVAL, booleans, null
  }
}

/** Where the last element of the array encoded at the start of s begins and ends. */
export function lastElement(s: string): [number, number] {
  let i = 1;
  let start = i;
  while (s.charCodeAt(i) !== END) {
    start = i;
    i = skipKey(s, i);
  }
  return [start, i];
}

function readNumber(s: string, i: number): number {
  const neg = (s.charCodeAt(i) & 0x80) === 0;
  for (let k = 0; k < 8; k++) {
    const b = s.charCodeAt(i + k);
    f64bytes[littleEndian ? 7 - k : k] = neg ? ~b & 0xff : k === 0 ? b ^ 0x80 : b;
  }
  return f64[0];
}

function readBytes(s: string, i: number): [Buffer, number] {
  const out: number[] = [];
  for (;;) {
    const c = s.charCodeAt(i++);
    if (c === 0) return [Buffer.from(out), i];
    if (c === 1) out.push(s.charCodeAt(i++) - 1);
    else out.push(c);
  }
}

function readString(s: string, i: number): [string, number] {
  const [bytes, next] = readBytes(s, i);
  return [bytes.toString('utf8'), next];
}

/**
 * Decodes the value starting at i; returns it and where it ends. A TIME comes back in UTC
 * (its zone is not kept), an object with its keys in sorted order.
 */
export function decodeKey(s: string, i = 0): [Key, number] {
  const tag = s.charCodeAt(i++);
  switch (tag) {
    case STRING:
      return readString(s, i);
    case NUMBER:
      return [readNumber(s, i), i + 8];
    case FALSE:
      return [false, i];
    case TRUE:
      return [true, i];
    case NULL:
      return [null, i];
    case MIN:
      return [MINVAL, i];
    case MAX:
      return [MAXVAL, i];
    case ARRAY: {
      const out: Datum[] = [];
      while (s.charCodeAt(i) !== END) {
        const [v, next] = decodeKey(s, i);
        out.push(v as Datum);
        i = next;
      }
      return [out, i + 1];
    }
    case OBJECT: {
      const out: DatumObject = {};
      while (s.charCodeAt(i) !== END) {
        const [k, afterKey] = decodeKey(s, i);
        const [v, next] = decodeKey(s, afterKey);
        out[k as string] = v as Datum;
        i = next;
      }
      return [out, i + 1];
    }
    case PTYPE: {
      const [type, next] = readString(s, i);
      if (type === 'TIME') return [{ $reql_type$: 'TIME', epoch_time: readNumber(s, next), timezone: '+00:00' }, next + 8];
      if (type === 'BINARY') {
        const [bytes, end] = readBytes(s, next);
        return [{ $reql_type$: 'BINARY', data: bytes.toString('base64') }, end];
      }
      return decodeKey(s, next);
    }
    default:
      throw new Error(`corrupt index key (tag ${tag} at ${i - 1})`);
  }
}
