// insert, update, replace, delete. Each query's row changes are committed together: applied
// in memory at once (feeds see them), and acknowledged once durable.
import { randomUUID } from 'node:crypto';
import { equal, isBound, isObject, printDatum, typeName, type Datum, type DatumObject } from '../datum.js';
import { logicError, opFailed, ReqlError } from '../errors.js';
import { OpFamily, str, toDatum, valTypeName, type Ctx } from '../eval.js';
import type { Term } from '../term.js';
import { T } from '../termtypes.js';
import { DbVal, Func, Single, Stream, type Val } from '../values.js';
import type { RowChange, Table } from '../../storage/table.js';
import { mergeInto, evalLiteralObj } from './object.js';
import { iterOf } from '../seq.js';
import { checkName, tableConfig, tableOf } from './table.js';

/** The write terms, joined into the engine's table by registry.ts. */
export const writeOps = new OpFamily('write');
const def = writeOps.def;

interface WriteResult {
  deleted: number;
  errors: number;
  inserted: number;
  replaced: number;
  skipped: number;
  unchanged: number;
  first_error?: string;
  generated_keys?: string[];
  changes?: DatumObject[];
  warnings?: string[];
}

function emptyResult(): WriteResult {
  return { deleted: 0, errors: 0, inserted: 0, replaced: 0, skipped: 0, unchanged: 0 };
}

type ReturnChanges = boolean | 'always';

function returnChangesOpt(c: Ctx, t: Term): ReturnChanges {
  const v = c.opt(t, 'return_changes');
  if (v === undefined) return false;
  if (v === 'always') return 'always';
  if (typeof v !== 'boolean') throw logicError(`Expected type BOOL but found ${typeName(v)}.`);
  return v;
}

function durabilityOpt(c: Ctx, t: Term, table: Table): 'hard' | 'soft' {
  const v = c.opt(t, 'durability') ?? c.global.durability ?? table.durability;
  if (v !== 'hard' && v !== 'soft') throw logicError(`Durability option \`${String(v)}\` unrecognized (options are "hard" and "soft").`);
  return v;
}

class Writer {
  readonly res = emptyResult();
  readonly changes: RowChange[] = [];
  /** rows written by this query, so later items see earlier ones */
  private readonly staged = new Map<string, DatumObject | null>();

  constructor(
    readonly table: Table,
    readonly returnChanges: ReturnChanges,
  ) {}

  current(key: Datum): DatumObject | null {
    const k = JSON.stringify(key);
    if (this.staged.has(k)) return this.staged.get(k)!;
    return this.table.get(key) ?? null;
  }

  error(msg: string, old: Datum = null, nu: Datum = null): void {
    this.res.errors++;
    if (this.res.first_error === undefined) this.res.first_error = msg;
    if (this.returnChanges === 'always') this.change({ old_val: old, new_val: nu, error: msg });
  }

  private change(ch: DatumObject): void {
    (this.res.changes ??= []).push(ch);
  }

  write(old: DatumObject | null, nu: DatumObject | null): void {
    const pk = this.table.primaryKey;
    if (old === null && nu === null) {
      this.res.skipped++;
      if (this.returnChanges === 'always') this.change({ old_val: null, new_val: null });
      return;
    }
    if (old !== null && nu !== null && equal(old, nu)) {
      this.res.unchanged++;
      if (this.returnChanges === 'always') this.change({ old_val: old, new_val: nu });
      return;
    }
    if (old === null) this.res.inserted++;
    else if (nu === null) this.res.deleted++;
    else this.res.replaced++;
    const key = (nu ?? old)![pk];
    this.staged.set(JSON.stringify(key), nu);
    this.changes.push({ old, new: nu });
    if (this.returnChanges) this.change({ old_val: old, new_val: nu });
  }

  finish(c: Ctx, durability: 'hard' | 'soft'): DatumObject {
    // Several writes to one row in one query collapse into the net change.
    const net = new Map<string, RowChange>();
    for (const ch of this.changes) {
      const k = JSON.stringify((ch.new ?? ch.old)![this.table.primaryKey]);
      const prev = net.get(k);
      net.set(k, prev ? { old: prev.old, new: ch.new } : ch);
    }
    const list = [...net.values()].filter((ch) => !(ch.old === null && ch.new === null));
    c.pending.push(c.state.catalog.commit(this.table, list, durability));
    const out = { ...this.res } as unknown as DatumObject;
    if (this.returnChanges && out.changes === undefined) out.changes = [];
    return out;
  }
}

function validateRow(w: Writer, row: Datum, old: DatumObject | null): DatumObject | string {
  if (!isObject(row) || row.$reql_type$ !== undefined) return `Expected type OBJECT but found ${typeName(row)}.`;
  const pk = w.table.primaryKey;
  const key = row[pk];
  if (key === undefined) return `Inserted object must have primary key \`${pk}\`:\n${printDatum(row)}`;
  if (containsBound(row)) return '`r.minval` and `r.maxval` cannot be written to disk.';
  if (key === null || (isObject(key) && key.$reql_type$ === undefined)) {
    return `Primary keys must be either a number, string, bool, pseudotype or array (got type ${typeName(key)}):\n${printDatum(key)}`;
  }
  if (typeof key === 'string' && Buffer.byteLength(key) > 127) return `Primary key too long (max 127 characters): ${printDatum(key)}`;
  if (old && !equal(old[pk], key)) {
    return `Primary key \`${pk}\` cannot be changed (\`${printDatum(old)}\` -> \`${printDatum(row)}\`).`;
  }
  return row;
}

def(T.INSERT, 2, 2, (c, t) => {
  const tv = c.ev(t.args[0]);
  if (!(tv instanceof Stream && tv.typeName === 'TABLE' && tv.opts.table)) throw logicError(`Expected type TABLE but found ${valTypeName(tv)}.`);
  const table = tv.opts.table;
  const src = c.ev(t.args[1]);
  const docs: Datum[] = src instanceof Stream || Array.isArray(src) ? [...iterOf(src)] : [toDatum(src, c)];
  if (t.optargs.return_vals) throw logicError('Error: encountered obsolete optarg `return_vals`.  Use `return_changes` instead.');
  const conflictV = t.optargs.conflict ? c.ev(t.optargs.conflict) : 'error';
  if (!(conflictV instanceof Func) && conflictV !== 'error' && conflictV !== 'replace' && conflictV !== 'update') {
    throw logicError(`Conflict option \`${String(toDatum(conflictV as Val, c))}\` unrecognized (options are "error", "replace" and "update").`);
  }
  const w = new Writer(table, returnChangesOpt(c, t));
  const pk = table.primaryKey;
  const generated: string[] = [];
  for (const d of docs) {
    if (!isObject(d) || d.$reql_type$ !== undefined) {
      w.error(`Expected type OBJECT but found ${typeName(d)}.`);
      continue;
    }
    let doc = d;
    if (doc[pk] === undefined) {
      const id = randomUUID();
      generated.push(id);
      doc = { ...doc, [pk]: id };
    }
    const v = validateRow(w, doc, null);
    if (typeof v === 'string') {
      w.error(v);
      continue;
    }
    const old = w.current(v[pk]);
    if (!old) {
      w.write(null, v);
      continue;
    }
    let nu: Datum;
    try {
      if (conflictV === 'error') {
        w.error(`Duplicate primary key \`${pk}\`:\n${printDatum(old)}\n${printDatum(v)}`, old, v);
        continue;
      } else if (conflictV === 'replace') nu = v;
      else if (conflictV === 'update') nu = mergeInto(old, v);
      else nu = c.callDatum(conflictV, [old[pk], old, v]);
    } catch (e) {
      if (e instanceof ReqlError) {
        w.error(e.message, old, v);
        continue;
      }
      throw e;
    }
    if (nu === null) {
      w.write(old, null);
      continue;
    }
    const checked = validateRow(w, nu, old);
    if (typeof checked === 'string') w.error(checked, old, v);
    else w.write(old, checked);
  }
  const out = w.finish(c, durabilityOpt(c, t, table));
  if (generated.length) out.generated_keys = generated;
  return out;
}, ['conflict', 'durability', 'return_changes', 'return_vals', 'ignore_write_hook']);

/** The rows a write applies to: a single row, a selection, or (for errors) anything else. */
function targets(c: Ctx, v: Val): { table: Table; rows: Iterable<{ key: Datum; single: boolean }> } {
  if (v instanceof Single) return { table: v.table, rows: [{ key: v.key, single: true }] };
  if (v instanceof Stream && v.opts.table) {
    const table = v.opts.table;
    const pk = table.primaryKey;
    return {
      table,
      rows: (function* () {
        // Collect keys first: writing while walking a B+ tree would disturb the walk.
        const keys = [...v.iter()].map((r) => (r as DatumObject)[pk]);
        for (const key of keys) yield { key, single: false };
      })(),
    };
  }
  if (v instanceof Stream || v instanceof Func) throw logicError(`Expected type SELECTION but found ${valTypeName(v)}.`);
  throw logicError(`Expected type SELECTION but found DATUM:\n${printDatum(toDatum(v, c))}`);
}

function isDeterministicTerm(x: Term): boolean {
  if (x.type === T.JAVASCRIPT || x.type === T.HTTP || x.type === T.RANDOM || (x.type === T.UUID && x.args.length === 0)) return false;
  if (x.type === T.TABLE || x.type === T.DB || x.type === T.GET || x.type === T.GET_ALL) return false;
  return x.args.every(isDeterministicTerm) && Object.values(x.optargs).every(isDeterministicTerm);
}

/** Whether a function value always gives the same result for the same row. */
export function deterministic(f: Val): boolean {
  return !(f instanceof Func) || f.native !== undefined || isDeterministicTerm(f.body);
}

/** Functions passed to update/replace must be deterministic unless nonAtomic is set. */
function checkDeterministic(t: Term): void {
  if (!isDeterministicTerm(t)) throw logicError('Could not prove argument deterministic.  Maybe you want to use the non_atomic flag?');
}

function containsBound(v: unknown): boolean {
  if (isBound(v)) return true;
  if (Array.isArray(v)) return v.some(containsBound);
  if (isObject(v)) return Object.values(v).some(containsBound);
  return false;
}

function modify(c: Ctx, t: Term, kind: 'update' | 'replace'): DatumObject {
  if (kind === 'update' && t.args[0].type === T.CONFIG) return updateConfig(c, t);
  const sel = c.ev(t.args[0]);
  const fnTerm = t.args[1];
  if (c.opt(t, 'non_atomic') !== true) checkDeterministic(fnTerm);
  const evalPatch = () => (kind === 'update' ? evalLiteralObj(c, fnTerm) : c.ev(fnTerm));
  // A function is evaluated once here and called per row; a plain value is evaluated per row
  // so that an error in it (r.error) becomes a counted write error, as in RethinkDB.
  const once = fnTerm.type === T.FUNC ? evalPatch() : undefined;
  const { table, rows } = targets(c, sel);
  const w = new Writer(table, returnChangesOpt(c, t));
  const pk = table.primaryKey;
  for (const { key } of rows) {
    const old = w.current(key);
    let nu: Datum;
    try {
      const f = once ?? evalPatch();
      if (kind === 'update') {
        if (old === null) {
          w.write(null, null);
          continue;
        }
        const patch = f instanceof Func ? c.call(f, [old]) : f;
        const pd = patch instanceof Func ? patch : patch;
        if (pd === null) nu = old;
        else {
          const p = isObject(pd) || pd instanceof Object ? pd : toDatum(pd as Val, c);
          if (!isObject(p) && !(p !== null && typeof p === 'object' && !Array.isArray(p))) throw logicError(`Expected type OBJECT but found ${typeName(p as Datum)}.`);
          nu = mergeInto(old, p);
        }
      } else {
        const r = f instanceof Func ? c.call(f, [old]) : f;
        nu = toDatum(r as Val, c);
      }
    } catch (e) {
      if (e instanceof ReqlError) {
        w.error(e.message, old, old);
        continue;
      }
      throw e;
    }
    if (nu === null) {
      if (kind === 'update') w.write(old, old);
      else w.write(old, null);
      continue;
    }
    if (old === null && isObject(nu) && nu[pk] !== undefined && !equal(nu[pk], key)) {
      w.error(`Primary key \`${pk}\` cannot be changed (\`null\` -> \`${printDatum(nu)}\`).`);
      continue;
    }
    const checked = validateRow(w, nu, old);
    if (typeof checked === 'string') w.error(checked, old, old);
    else w.write(old, checked);
  }
  return w.finish(c, durabilityOpt(c, t, table));
}

def(T.UPDATE, 2, 2, (c, t) => modify(c, t, 'update'), ['durability', 'return_changes', 'non_atomic', 'ignore_write_hook']);
def(T.REPLACE, 2, 2, (c, t) => modify(c, t, 'replace'), ['durability', 'return_changes', 'non_atomic', 'ignore_write_hook']);

def(T.DELETE, 1, 1, (c, t) => {
  const { table, rows } = targets(c, c.ev(t.args[0]));
  const w = new Writer(table, returnChangesOpt(c, t));
  for (const { key } of rows) w.write(w.current(key), null);
  return w.finish(c, durabilityOpt(c, t, table));
}, ['durability', 'return_changes', 'ignore_write_hook']);

/**
 * `table.config().update(...)`: a single node has no shards or replicas to move, so of a
 * table's config only its name and durability can change; anything else is refused by name.
 */
function updateConfig(c: Ctx, t: Term): DatumObject {
  const target = c.ev(t.args[0].args[0]);
  if (target instanceof DbVal) throw opFailed('The embedded server does not support `config().update` on a database.');
  const table = tableOf(c, target, 'config');
  const old = tableConfig(table, c);
  const f = evalLiteralObj(c, t.args[1]);
  const patch = f instanceof Func ? c.call(f, [old]) : f;
  const p = toDatum(patch as Val, c);
  if (!isObject(p)) throw logicError(`Expected type OBJECT but found ${typeName(p)}.`);
  const merged = mergeInto(old, p);
  if (!isObject(merged)) throw logicError(`Expected type OBJECT but found ${typeName(merged)}.`);
  const nu: DatumObject = merged;
  for (const key of new Set([...Object.keys(old), ...Object.keys(nu)])) {
    if (key !== 'name' && key !== 'durability' && !equal(old[key] ?? null, nu[key] ?? null)) {
      throw opFailed(`The embedded server cannot change \`${key}\` of a table's config (only \`name\` and \`durability\`).`);
    }
  }
  const { name, durability } = nu;
  if (durability !== 'hard' && durability !== 'soft') throw logicError(`Durability option \`${printDatum(durability ?? null)}\` unrecognized (options are "hard" and "soft").`);
  if (typeof name !== 'string') throw logicError(`Expected type STRING but found ${typeName(name ?? null)}.`);
  checkName('Table', name);
  if (name === table.name && durability === table.durability) return { ...emptyResult(), unchanged: 1 } as unknown as DatumObject;
  const clash = c.state.catalog.findTable(table.db, name);
  if (clash && clash !== table) throw opFailed(`Table \`${table.db}.${name}\` already exists.`);
  c.pending.push(c.state.catalog.configureTable(table, name, durability));
  const res: WriteResult = { ...emptyResult(), replaced: 1 };
  if (c.opt(t, 'return_changes') === true) res.changes = [{ old_val: old, new_val: tableConfig(table, c) }];
  return res as unknown as DatumObject;
}

export { str };
