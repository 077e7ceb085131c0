// Object field access and shaping: getField, bracket, hasFields, pluck, without, merge, keys...
import { equal, isObject, printDatum, typeName, type Datum, type DatumObject } from '../datum.js';
import { logicError, nonExistence } from '../errors.js';
import { OpFamily, num, str, toDatum, valTypeName, type Ctx } from '../eval.js';
import { derive, iterOf } from '../seq.js';
import { T } from '../termtypes.js';
import { Feed, Func, Single, Stream, type Val } from '../values.js';
import { withTransform } from '../feeds.js';

/** The object terms, joined into the engine's table by registry.ts. */
export const objectOps = new OpFamily('object');
const def = objectOps.def;

export function getField(v: Datum, field: string): Datum {
  // On null the error is a non-existence error, which default() and filter() catch.
  if (!isObject(v)) throw (v === null ? nonExistence : logicError)(`Cannot perform get_field on a non-object non-sequence \`${printDatum(v)}\`.`);
  const r = v[field];
  if (r === undefined) throw nonExistence(`No attribute \`${field}\` in object:\n${printDatum(v)}`);
  return r;
}

/** Applies a per-object function to a value that may be a sequence, a single row or a feed. */
export function mapObjects(c: Ctx, src: Val, f: (o: Datum) => Datum, keepSelection = false): Val {
  if (src instanceof Feed) return withTransform(src, f);
  if (src instanceof Single) return f(src.doc);
  if (src instanceof Stream || Array.isArray(src)) {
    const out = derive(src, function* (items) {
      for (const x of items) yield f(x);
    }, keepSelection);
    if (out instanceof Stream && src instanceof Stream && src.opts.feed) {
      return new Stream(out.typeName, out.iter, { ...out.opts, feed: { ...src.opts.feed, transforms: [...src.opts.feed.transforms, f] } });
    }
    return out;
  }
  return f(toDatum(src, c));
}

def(T.GET_FIELD, 2, 2, (c, t) => {
  const src = c.ev(t.args[0]);
  const field = str(c.datum(t.args[1]));
  if (src instanceof Stream || Array.isArray(src)) {
    // On a sequence, rows without the field are skipped.
    return derive(src as Stream | Datum[], function* (items) {
      for (const x of items) {
        if (!isObject(x)) throw logicError(`Cannot perform get_field on a non-object non-sequence \`${printDatum(x)}\`.`);
        if (x[field] !== undefined) yield x[field];
      }
    }, false);
  }
  return mapObjects(c, src, (o) => getField(o, field));
});

def(T.BRACKET, 2, 2, (c, t) => {
  const src = c.ev(t.args[0]);
  const key = c.datum(t.args[1]);
  if (typeof key === 'number') {
    if (src instanceof Stream || Array.isArray(src)) {
      if (!Number.isInteger(key)) throw logicError(`Number not an integer: ${key}`);
      const items = Array.isArray(src) ? src : undefined;
      if (items) {
        const i = key < 0 ? items.length + key : key;
        if (i < 0 || i >= items.length) throw nonExistence(`Index out of bounds: ${key}`);
        return items[i];
      }
      let i = 0;
      if (key < 0) {
        const all = [...(src as Stream).iter()];
        const v = all[all.length + key];
        if (v === undefined) throw nonExistence(`Index out of bounds: ${key}`);
        return v;
      }
      for (const x of (src as Stream).iter()) if (i++ === key) return x;
      throw nonExistence(`Index out of bounds: ${key}`);
    }
    const d = toDatum(src, c);
    throw logicError(`Cannot convert ${typeName(d)} to SEQUENCE`);
  }
  if (typeof key !== 'string') throw logicError(`Expected NUMBER or STRING as second argument to \`bracket\` but found ${typeName(key)}.`);
  if (src instanceof Stream || Array.isArray(src)) {
    return derive(src as Stream | Datum[], function* (items) {
      for (const x of items) {
        if (!isObject(x)) throw logicError(`Cannot perform bracket on a non-object non-sequence \`${printDatum(x)}\`.`);
        if (x[key] !== undefined) yield x[key];
      }
    }, false);
  }
  return mapObjects(c, src, (o) => {
    if (!isObject(o)) throw (o === null ? nonExistence : logicError)(`Cannot perform bracket on a non-object non-sequence \`${printDatum(o)}\`.`);
    return getField(o, key);
  });
});

// --- selectors shared by pluck, without, hasFields, withFields ---
/** A selector is a field name, a list of selectors, or an object of nested selectors. */
function hasPath(v: Datum, sel: Datum): boolean {
  if (typeof sel === 'string') return isObject(v) && v[sel] !== undefined && v[sel] !== null;
  if (Array.isArray(sel)) return sel.every((s) => hasPath(v, s));
  if (isObject(sel)) {
    return Object.entries(sel).every(([k, sub]) => {
      if (!isObject(v) || v[k] === undefined || v[k] === null) return false;
      return sub === true ? true : hasPath(v[k], sub);
    });
  }
  throw logicError(`Invalid path argument \`${printDatum(sel)}\`.`);
}

function pluckOne(v: Datum, sels: Datum[]): Datum {
  if (Array.isArray(v)) return v.map((x) => pluckOne(x, sels));
  if (!isObject(v)) throw logicError(`Cannot perform pluck on a non-object non-sequence \`${printDatum(v)}\`.`);
  const out: DatumObject = {};
  const take = (src: DatumObject, sel: Datum, dst: DatumObject) => {
    if (typeof sel === 'string') {
      if (src[sel] !== undefined) dst[sel] = src[sel];
    } else if (Array.isArray(sel)) for (const s of sel) take(src, s, dst);
    else if (isObject(sel)) {
      for (const [k, sub] of Object.entries(sel)) {
        const sv = src[k];
        if (sv === undefined) continue;
        if (sub === true) dst[k] = sv;
        else if (Array.isArray(sv)) dst[k] = sv.map((x) => pluckOne(x, [sub]));
        else if (isObject(sv)) {
          const inner: DatumObject = isObject(dst[k]) ? (dst[k] as DatumObject) : {};
          take(sv, sub, inner);
          dst[k] = inner;
        }
      }
    } else throw logicError(`Invalid path argument \`${printDatum(sel)}\`.`);
  };
  for (const s of sels) take(v, s, out);
  return out;
}

function withoutOne(v: Datum, sels: Datum[]): Datum {
  if (Array.isArray(v)) return v.map((x) => withoutOne(x, sels));
  if (!isObject(v)) throw logicError(`Cannot perform without on a non-object non-sequence \`${printDatum(v)}\`.`);
  const out: DatumObject = { ...v };
  const drop = (dst: DatumObject, sel: Datum) => {
    if (typeof sel === 'string') delete dst[sel];
    else if (Array.isArray(sel)) for (const s of sel) drop(dst, s);
    else if (isObject(sel)) {
      for (const [k, sub] of Object.entries(sel)) {
        if (sub === true) delete dst[k];
        else if (isObject(dst[k])) {
          const inner = { ...(dst[k] as DatumObject) };
          drop(inner, sub);
          dst[k] = inner;
        }
      }
    } else throw logicError(`Invalid path argument \`${printDatum(sel)}\`.`);
  };
  for (const s of sels) drop(out, s);
  return out;
}

def(T.PLUCK, 1, Infinity, (c, t) => {
  const [src, ...rest] = c.args(t);
  const sels = rest.map((s) => toDatum(s, c));
  const isSeq = src instanceof Stream || Array.isArray(src);
  return mapObjects(c, src, (o) => {
    if (isSeq && Array.isArray(o)) throw logicError('Cannot perform pluck on a sequence of sequences.');
    return pluckOne(o, sels);
  });
});

def(T.WITHOUT, 1, Infinity, (c, t) => {
  const [src, ...rest] = c.args(t);
  const sels = rest.map((s) => toDatum(s, c));
  return mapObjects(c, src, (o) => withoutOne(o, sels));
});

def(T.HAS_FIELDS, 1, Infinity, (c, t) => {
  const [src, ...rest] = c.args(t);
  const sels = rest.map((s) => toDatum(s, c));
  if (src instanceof Stream || Array.isArray(src)) {
    return derive(src as Stream | Datum[], function* (items) {
      for (const x of items) if (sels.every((s) => hasPath(x, s))) yield x;
    }, true);
  }
  const d = toDatum(src, c);
  if (!isObject(d)) throw logicError(`Cannot perform has_fields on a non-object non-sequence \`${printDatum(d)}\`.`);
  return sels.every((s) => hasPath(d, s));
});

def(T.WITH_FIELDS, 1, Infinity, (c, t) => {
  const [src, ...rest] = c.args(t);
  const sels = rest.map((s) => toDatum(s, c));
  if (!(src instanceof Stream || Array.isArray(src))) {
    const d = toDatum(src, c);
    throw logicError(`Cannot perform has_fields on a non-object non-sequence \`${printDatum(d)}\`.`);
  }
  return derive(src, function* (items) {
    for (const x of items) if (sels.every((s) => hasPath(x, s))) yield pluckOne(x, sels);
  }, false);
});

// --- merge and literal ---
export class Literal {
  constructor(readonly value: Datum | undefined) {}
}
export const STRAY_LITERAL = 'Stray literal keyword found: literal is only legal inside of the object passed to merge or update and cannot nest inside other literals.';
function hasLiteral(v: unknown): boolean {
  if (v instanceof Literal) return true;
  if (Array.isArray(v)) return v.some(hasLiteral);
  return isObject(v) && Object.values(v).some(hasLiteral);
}
def(T.LITERAL, 0, 1, (c, t) => {
  const v = t.args.length ? c.datum(t.args[0]) : undefined;
  if (hasLiteral(v)) throw logicError(STRAY_LITERAL);
  return new Literal(v) as unknown as Val;
});

/** Recursive merge; r.literal() replaces instead of merging. */
export function mergeInto(base: Datum, patch: unknown): Datum {
  if (patch instanceof Literal) return patch.value === undefined ? (undefined as unknown as Datum) : patch.value;
  if (!isObject(patch) || (patch as DatumObject).$reql_type$ !== undefined) return patch as Datum;
  if (!isObject(base) || base.$reql_type$ !== undefined) return stripLiterals(patch);
  const out: DatumObject = { ...base };
  for (const [k, v] of Object.entries(patch as Record<string, unknown>)) {
    const merged = mergeInto(out[k] as Datum, v);
    if (merged === undefined) delete out[k];
    else out[k] = merged;
  }
  return out;
}

function stripLiterals(v: unknown): Datum {
  if (v instanceof Literal) return v.value as Datum;
  if (isObject(v)) {
    const out: DatumObject = {};
    for (const [k, x] of Object.entries(v)) {
      const s = stripLiterals(x);
      if (s !== undefined) out[k] = s;
    }
    return out;
  }
  return v as Datum;
}

/** Evaluates a merge argument, keeping r.literal() markers inside objects. */
function evalPatch(c: Ctx, v: Val, row: Datum): unknown {
  if (v instanceof Func) return c.call(v, [row]);
  return v;
}

def(T.MERGE, 1, Infinity, (c, t) => {
  const src = c.ev(t.args[0]);
  const patches = t.args.slice(1).map((a) => evalLiteralObj(c, a));
  return mapObjects(c, src, (o) => {
    let out: Datum = o;
    for (const p of patches) {
      const pv = evalPatch(c, p as Val, o);
      if (pv instanceof Literal) throw logicError(STRAY_LITERAL);
      if (!isObject(out)) throw logicError(`Expected type OBJECT but found ${typeName(out)}.`);
      out = mergeInto(out, pv instanceof Func ? pv : pv);
    }
    return out;
  });
});

/** Evaluates a term but keeps Literal markers at any depth of MAKE_OBJ. */
export function evalLiteralObj(c: Ctx, t: import('../term.js').Term): unknown {
  if (t.type === T.MAKE_OBJ) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(t.optargs)) out[k] = evalLiteralObj(c, v);
    return out;
  }
  if (t.type === T.LITERAL) return c.ev(t);
  const v = c.ev(t);
  return v instanceof Func ? v : toDatum(v, c);
}

def(T.KEYS, 1, 1, (c, t) => {
  const v = c.datum(t.args[0]);
  if (!isObject(v)) throw logicError(`Cannot call \`keys\` on objects of type \`${typeName(v)}\`.`);
  return Object.keys(v).sort();
});

def(T.VALUES, 1, 1, (c, t) => {
  const v = c.datum(t.args[0]);
  if (!isObject(v)) throw logicError(`Cannot call \`values\` on objects of type \`${typeName(v)}\`.`);
  return Object.keys(v).sort().map((k) => v[k]);
});

def(T.OBJECT, 0, Infinity, (c, t) => {
  const a = c.dargs(t);
  if (a.length % 2 !== 0) throw logicError('OBJECT expects an even number of arguments (but found ' + a.length + ').');
  const out: DatumObject = {};
  for (let i = 0; i < a.length; i += 2) {
    const k = a[i];
    if (typeof k !== 'string') throw logicError(`Expected type STRING but found ${typeName(k)}.`);
    if (out[k] !== undefined) throw logicError(`Duplicate key ${JSON.stringify(k)} in object.  (got ${printDatum(out[k])} and ${printDatum(a[i + 1])} as values)`);
    out[k] = a[i + 1];
  }
  return out;
});

/** filter({...}) semantics: every field of the pattern matches (recursively for objects). */
export function matchesObject(row: Datum, pattern: Val): boolean {
  if (!isObject(row)) return false;
  for (const [k, pv] of Object.entries(pattern as DatumObject)) {
    const rv = row[k];
    if (rv === undefined) throw nonExistence(`No attribute \`${k}\` in object:\n${printDatum(row)}`);
    if ((pv as unknown) instanceof Literal) {
      // a literal matches only an equal value, not a superset of its fields
      if (!equal(rv, (pv as unknown as Literal).value ?? null)) return false;
    } else if (isObject(pv) && pv.$reql_type$ === undefined) {
      if (!matchesObject(rv, pv)) return false;
    } else if (!equal(rv, pv)) return false;
  }
  return true;
}

export { num };
