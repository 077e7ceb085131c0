// Changefeeds. A feed subscribes to its table's committed changes in the same tick that it
// reads its initial values, so nothing written in between is lost or seen twice.
import { ResponseNote } from '../proto.js';
import type { Cursor, Batch } from './api.js';
import { compare, equal, isObject, MAXVAL, MINVAL, type Datum, type DatumObject, type Key } from './datum.js';
import { logicError, opFailed, ReqlError } from './errors.js';
import { OpFamily, num, toDatum, type Ctx } from './eval.js';
import type { RowChange, Table } from '../storage/table.js';
import { T } from './termtypes.js';
import { Feed, Single, Stream, type BetweenSource, type FeedSource, type FeedSpec, type Val } from './values.js';

/** The changefeed terms, joined into the engine's table by registry.ts. */
export const feedOps = new OpFamily('changefeed');
const def = feedOps.def;

export type { BetweenSource, FeedSource, FeedSpec } from './values.js';

/** Adds a transform over change objects of an existing feed (filter/map/pluck after changes()). */
export function withTransform(feed: Feed, f: (change: Datum) => Datum, pred?: (change: Datum) => boolean): Feed {
  return new Feed(feed.spec, feed.options, [...feed.transforms, (ch) => (pred && !pred(ch) ? undefined : f(ch))], feed.limit);
}

/** Counts open feeds (for stats) and closes them all on shutdown. */
export class FeedHub {
  readonly open = new Set<FeedCursor>();
  closeAll(): void {
    for (const f of this.open) f.close();
  }
}

def(T.CHANGES, 1, 1, (c, t) => {
  const src = c.ev(t.args[0]);
  const o = (name: string) => c.opt(t, name);
  const squashOpt = o('squash');
  if (squashOpt !== undefined && typeof squashOpt !== 'boolean' && typeof squashOpt !== 'number') {
    throw logicError(`Expected BOOL or NUMBER but found ${squashOpt === null ? 'NULL' : typeof squashOpt === 'string' ? 'STRING' : Array.isArray(squashOpt) ? 'ARRAY' : 'OBJECT'}.`);
  }
  if (typeof squashOpt === 'number' && squashOpt < 0) throw logicError('Expected BOOL or a positive NUMBER but found a negative NUMBER.');
  const squash = squashOpt === undefined ? false : squashOpt; // RethinkDB sends every change unless asked to squash
  const options = {
    squash,
    includeInitial: o('include_initial') === true,
    includeStates: o('include_states') === true,
    includeTypes: o('include_types') === true,
    includeOffsets: o('include_offsets') === true,
    changefeedQueueSize: (o('changefeed_queue_size') as number | undefined) ?? c.global.changefeedQueueSize,
  };
  let spec: FeedSpec | undefined;
  if (src instanceof Stream) spec = src.opts.feed;
  else if (src instanceof Single) spec = src.feed;
  if (!spec) {
    if (src instanceof Stream || Array.isArray(src)) throw logicError(`Cannot call \`changes\` on this sequence.`);
    throw logicError(`Expected type SEQUENCE but found ${src === null ? 'NULL' : typeof src === 'object' ? 'OBJECT' : 'DATUM'}.`);
  }
  if (options.includeOffsets && spec.source.kind !== 'limit') throw logicError('Cannot include offsets for range subs.');
  if (spec.nondeterministic) throw logicError('Cannot call `changes` after a non-deterministic function.');
  return new Feed(spec, options);
}, ['squash', 'include_initial', 'include_states', 'include_types', 'include_offsets', 'changefeed_queue_size']);

function applyRow(spec: FeedSpec, row: Datum | null): Datum | null {
  if (row === null) return null;
  let v: Datum | undefined = row;
  try {
    for (const tr of spec.transforms) {
      v = tr(v);
      if (v === undefined) return null;
    }
  } catch (e) {
    // A row the feed's map/filter fails on is left out of the feed, as RethinkDB does.
    if (e instanceof ReqlError) return null;
    throw e;
  }
  return v;
}

function inRange(r: BetweenSource, v: Key): boolean {
  const lo = compare(v, r.lo);
  const hi = compare(v, r.hi);
  return (lo > 0 || (lo === 0 && !r.loOpen)) && (hi < 0 || (hi === 0 && !r.hiOpen));
}

/** Opens a feed cursor; called once the query's value is known to be a Feed. */
export function openFeed(c: Ctx, feed: Feed): FeedCursor {
  return new FeedCursor(c, feed);
}

export class FeedCursor implements Cursor {
  readonly notes: number[];
  private queue: Datum[] = [];
  private waiter?: () => void;
  private closed = false;
  private error?: Error;
  private skipped = 0;
  private window: DatumObject[] = [];
  private readonly listener: (changes: RowChange[], version: number) => void;
  private squashTimer?: NodeJS.Timeout;
  private started = false;
  /** how many more changes feed.limit(n) lets through */
  private remaining: number;

  constructor(
    private readonly c: Ctx,
    private readonly feed: Feed,
  ) {
    const { spec, options } = feed;
    const src = spec.source;
    this.remaining = feed.limit ?? Infinity;
    this.notes = [src.kind === 'point' ? ResponseNote.ATOM_FEED : src.kind === 'limit' ? ResponseNote.ORDER_BY_LIMIT_FEED : ResponseNote.SEQUENCE_FEED];
    if (options.includeStates) this.notes.push(ResponseNote.INCLUDES_STATES);
    if (options.includeStates && options.includeInitial) this.push(this.typed({ state: 'initializing' }, 'state'), true);
    if (src.kind === 'limit') this.window = this.computeWindow();
    if (options.includeInitial) for (const v of this.initialValues()) this.push(this.typed({ new_val: v }, 'initial'), true);
    if (options.includeStates) this.push(this.typed({ state: 'ready' }, 'state'), true);
    // Batches applied before the feed opened are in what it just read (or before its start),
    // even if they are announced only now, after their fsync.
    const openedAt = spec.table.version;
    this.listener = (changes, version) => {
      if (version > openedAt) this.onChanges(changes);
    };
    spec.table.listeners.add(this.listener);
    c.state.feeds.open.add(this);
  }

  private typed(ch: DatumObject, type: string): Datum {
    if (this.feed.options.includeTypes) ch.type = type;
    return ch;
  }

  private initialValues(): Datum[] {
    const { table, source } = this.feed.spec;
    switch (source.kind) {
      case 'point':
        return [applyRow(this.feed.spec, table.get(source.key) ?? null)];
      case 'limit':
        return this.window.map((r) => applyRow(this.feed.spec, r)).filter((v) => v !== null);
      default: {
        const out: Datum[] = [];
        for (const row of this.rowsInSource()) {
          const v = applyRow(this.feed.spec, row);
          if (v !== null) out.push(v);
        }
        return out;
      }
    }
  }

  private *rowsInSource(): Iterable<DatumObject> {
    const { table, source } = this.feed.spec;
    if (source.kind === 'table') yield* table.scan();
    else if (source.kind === 'getAll') {
      for (const k of source.keys) {
        if (source.index === table.primaryKey) {
          const r = table.get(k);
          if (r) yield r;
        } else yield* table.indexRows(source.index, k, k, false, false);
      }
    } else if (source.kind === 'between') {
      if (source.index === table.primaryKey) yield* table.primaryRange(source.lo, source.hi, source.loOpen, source.hiOpen);
      else yield* table.indexRows(source.index, source.lo, source.hi, source.loOpen, source.hiOpen);
    }
  }

  private computeWindow(): DatumObject[] {
    const { table, source } = this.feed.spec;
    if (source.kind !== 'limit') return [];
    const r = source.range;
    const lo = r ? r.lo : MINVAL;
    const hi = r ? r.hi : MAXVAL;
    const out: DatumObject[] = [];
    const rows =
      source.index === table.primaryKey
        ? table.primaryRange(lo, hi, r?.loOpen ?? false, r?.hiOpen ?? false, source.desc)
        : table.indexRows(source.index, lo, hi, r?.loOpen ?? false, r?.hiOpen ?? false, source.desc);
    for (const row of rows) {
      if (out.length >= source.n) break;
      // A row passing the feed's filters counts toward the window.
      if (applyRow(this.feed.spec, row) !== null) out.push(row);
    }
    return out;
  }

  private indexValues(row: DatumObject | null, index: string): Datum[] {
    if (!row) return [];
    const { table } = this.feed.spec;
    if (index === table.primaryKey) return [row[index]];
    return table.indexValues(index, row);
  }

  private matches(row: DatumObject | null): boolean {
    if (!row) return false;
    const { table, source } = this.feed.spec;
    switch (source.kind) {
      case 'table':
        return true;
      case 'point':
        return equal(row[table.primaryKey], source.key);
      case 'getAll':
        return this.indexValues(row, source.index).some((v) => source.keys.some((k) => equal(k, v)));
      case 'between':
        return this.indexValues(row, source.index).some((v) => inRange(source, v));
      case 'limit':
        return source.range ? this.indexValues(row, source.index).some((v) => inRange(source.range!, v)) : this.indexValues(row, source.index).length > 0;
    }
  }

  private onChanges(changes: RowChange[]): void {
    if (this.closed) return;
    try {
      if (this.feed.spec.source.kind === 'limit') return this.onLimitChanges(changes);
      for (const ch of changes) {
        const oldIn = this.matches(ch.old);
        const newIn = this.matches(ch.new);
        if (!oldIn && !newIn) continue;
        const oldV = oldIn ? applyRow(this.feed.spec, ch.old) : null;
        const newV = newIn ? applyRow(this.feed.spec, ch.new) : null;
        if (oldV === null && newV === null) continue;
        if (oldV !== null && newV !== null && equal(oldV, newV)) continue;
        const type = oldV === null ? 'add' : newV === null ? 'remove' : 'change';
        this.push(this.typed({ old_val: oldV, new_val: newV }, type), false, (ch.new ?? ch.old)![this.feed.spec.table.primaryKey]);
      }
    } catch (e) {
      this.fail(e as Error);
    }
  }

  private onLimitChanges(changes: RowChange[]): void {
    if (!changes.some((ch) => this.matches(ch.old) || this.matches(ch.new))) return;
    const pk = this.feed.spec.table.primaryKey;
    const before = this.window;
    const after = this.computeWindow();
    this.window = after;
    const byKey = (rows: DatumObject[]) => new Map(rows.map((r) => [JSON.stringify(r[pk]), r]));
    const b = byKey(before);
    const a = byKey(after);
    const removed: DatumObject[] = [];
    const added: DatumObject[] = [];
    for (const [k, row] of b) {
      const now = a.get(k);
      if (!now) removed.push(row);
      else if (!equal(now, row)) {
        const ov = applyRow(this.feed.spec, row);
        const nv = applyRow(this.feed.spec, now);
        if (!equal(ov, nv)) this.push(this.typed({ old_val: ov, new_val: nv }, 'change'));
      }
    }
    for (const [k, row] of a) if (!b.has(k)) added.push(row);
    const n = Math.max(removed.length, added.length);
    for (let i = 0; i < n; i++) {
      const ov = removed[i] ? applyRow(this.feed.spec, removed[i]) : null;
      const nv = added[i] ? applyRow(this.feed.spec, added[i]) : null;
      this.push(this.typed({ old_val: ov, new_val: nv }, ov === null ? 'add' : nv === null ? 'remove' : 'change'));
    }
  }

  private push(change: Datum, initial = false, key?: Datum): void {
    let v: Datum | undefined = change;
    if (!isObject(change) || change.state === undefined) {
      try {
        for (const tr of this.feed.transforms) {
          v = tr(v);
          if (v === undefined) return;
        }
      } catch (e) {
        // An error in a map/filter after changes() ends the feed with that error; an initial
        // value it fails on is left out.
        if (e instanceof ReqlError) return initial ? undefined : this.fail(e);
        throw e;
      }
    }
    if (this.feed.options.squash !== false && key !== undefined && !initial) {
      // Squash: a later change to the same row replaces an undelivered earlier one.
      const i = this.queue.findIndex((q) => isObject(q) && (q as { __key?: unknown }).__key !== undefined && equal((q as DatumObject).__key, key));
      if (i >= 0) {
        const prev = this.queue[i] as DatumObject;
        const merged: DatumObject = { ...(v as DatumObject), old_val: prev.old_val };
        this.queue.splice(i, 1);
        if (equal(merged.old_val ?? null, merged.new_val ?? null)) return this.wake();
        v = merged;
      }
      if (isObject(v)) Object.defineProperty(v, '__key', { value: key, enumerable: false });
    }
    if (this.queue.length >= this.feed.options.changefeedQueueSize) {
      this.skipped++;
      this.wake();
      return;
    }
    this.queue.push(v);
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  private fail(e: Error): void {
    this.error = e;
    this.wake();
  }

  async next(): Promise<Batch> {
    for (;;) {
      if (this.closed) return { items: [], done: true };
      if (this.skipped > 0) {
        // RethinkDB reports an overflow in-band, as an error item before what it kept.
        const n = this.skipped;
        this.skipped = 0;
        return { items: [{ error: `Changefeed cache over array size limit, skipped ${n} elements.` }, ...this.queue.splice(0, 10_000)], done: false };
      }
      if (this.error && this.queue.length === 0) {
        const e = this.error;
        this.close();
        throw e;
      }
      if (this.queue.length > 0) {
        const sq = this.feed.options.squash;
        if (typeof sq === 'number' && sq > 0 && !this.squashTimer) {
          await new Promise<void>((res) => (this.squashTimer = setTimeout(res, sq * 1000)));
          this.squashTimer = undefined;
        }
        this.started = true;
        const items = this.queue.splice(0, Math.min(10_000, this.remaining));
        this.remaining -= items.length;
        if (this.remaining <= 0) {
          this.close();
          return { items, done: true };
        }
        return { items, done: false };
      }
      // The first batch answers START at once, even empty, so the client gets its cursor.
      if (!this.started) {
        this.started = true;
        return { items: [], done: false };
      }
      await new Promise<void>((res) => (this.waiter = res));
    }
  }

  /** Ends the feed because its table or database went away. */
  abort(message: string): void {
    this.fail(opFailed(message));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.feed.spec.table.listeners.delete(this.listener);
    this.c.state.feeds.open.delete(this);
    if (this.squashTimer) clearTimeout(this.squashTimer);
    this.wake();
  }
}

export { toDatum, type Val };
