// Every query the chat makes on the messages table. Reads of a room are ranges of its
// indexes: room_sent ([room, sent, id], every row, what the room's feed carries), room_main
// (the same without the replies kept in their thread: history pages), thread_sent (a
// thread's replies); nothing scans the table.
import { setTimeout as sleep } from 'node:timers/promises';
import { isRethinkDBError, r, RethinkDBErrorType, type RCursor, type RDatum } from 'rethinkdb-ts';
import { z } from 'zod';
import { MAX_REACTION_KINDS, messageRow, type Message, type NewMessage } from '../chat/message.js';
import { DbUnavailableError, type Pool } from './pool.js';
import { MESSAGES } from './schema.js';
import type { Metrics } from '../ops/metrics.js';
import { fieldsOnEdit, fieldsOnInsert, SEARCH_FIELDS } from '../search/stored.js';

/** One event of a room's feed: every change to the room's messages, from when it is ready. */
export type FeedEvent =
  /** 'ready': every write that commits from now on comes through this feed */
  | { kind: 'state'; state: 'initializing' | 'ready' }
  /** a message was stored (newVal), changed (both) or removed (oldVal) */
  | { kind: 'change'; oldVal?: Message; newVal?: Message };

export interface FeedCursor extends AsyncIterable<FeedEvent> {
  close(): Promise<void>;
}

export interface MessageStore {
  /** Stores a message stamped with the database's clock. A message whose id is already stored
   *  in the same room is not stored again: the stored one comes back, marked duplicate. */
  insert(m: NewMessage): Promise<{ message: Message; duplicate: boolean }>;
  get(id: string): Promise<Message | undefined>;
  /** The room's last `limit` messages in room order, oldest first: an index read. */
  latest(room: string, limit: number): Promise<Message[]>;
  /** The room's messages sent at `from` or later, oldest first, at most `limit`. */
  range(room: string, from: Date, limit: number): Promise<Message[]>;
  /** Every change to the room's messages, live (no initial values). */
  changes(room: string): Promise<FeedCursor>;
  /** The room's messages before (`older`) or from (`newer`) the anchor message in room order,
   *  the nearest `limit`, oldest first: an index cursor at any depth. */
  page(room: string, anchor: Message, direction: 'older' | 'newer', limit: number): Promise<Message[]>;
  /** Messages of the room changed at `from` or later (edits, deletions, reactions), oldest
   *  change first, at most `limit`. */
  changedSince(room: string, from: Date, limit: number): Promise<Message[]>;
  /** Replaces the text of a message that is not deleted; undefined when it is gone or deleted. */
  edit(id: string, body: string): Promise<Message | undefined>;
  /** Deletes a message's text and reactions, leaving a tombstone. */
  remove(id: string): Promise<Message | undefined>;
  /** Adds (on) or takes away a user's reaction. Refused past MAX_REACTION_KINDS kinds. */
  react(id: string, userId: string, emoji: string, on: boolean): Promise<Message | undefined>;
  /** A thread's replies in room order after `after` (or from its first), at most `limit`. */
  replies(threadId: string, after: Message | undefined, limit: number): Promise<Message[]>;
  /** Brings a thread's start up to date after a reply from `replierId`: the reply count and
   *  last reply time (read from the thread's index, so running it twice, or for two replies
   *  at once, ends the same), and the replier among its followers. */
  touchThread(threadId: string, replierId: string | undefined): Promise<Message | undefined>;
  /** Adds or takes away a follower of a thread. */
  follow(id: string, userId: string, on: boolean): Promise<Message | undefined>;
  /** A cheap read that fails unless the database and table answer. */
  ping(): Promise<void>;
}

export class TooManyReactionsError extends Error {
  override name = 'TooManyReactionsError';
}

export class IdConflictError extends Error {
  override name = 'IdConflictError';
}

/** The database would not take a write for the whole retry time. */
export class WriteTimeoutError extends Error {
  override name = 'WriteTimeoutError';
}

/** Failures that pass: no connection, a connection lost, a table without a primary while a
 *  cluster elects one. A write is tried again on these (by id, so never stored twice). */
export function isTransient(e: unknown): boolean {
  if (e instanceof DbUnavailableError) return true;
  if (isRethinkDBError(e)) {
    const passing: RethinkDBErrorType[] = [RethinkDBErrorType.CONNECTION, RethinkDBErrorType.TIMEOUT, RethinkDBErrorType.OP_FAILED, RethinkDBErrorType.OP_INDETERMINATE, RethinkDBErrorType.POOL_FAIL, RethinkDBErrorType.MASTER_POOL_FAIL];
    if (passing.includes(e.type)) return true;
  }
  return e instanceof Error && /primary replica|not available|connection (was )?closed/i.test(e.message);
}

export interface MessageStoreOptions {
  /** how long a write is tried again while the database is away (default 10 s) */
  retryWritesForMs?: number;
  /** counts the messages stored */
  metrics?: Pick<Metrics, 'messageStored'>;
}

// Times cross the wire as float seconds and come back as Dates cut to the millisecond, so an
// index bound built from a Date may sit a hair off the stored value. A range starts a little
// early, and the exact cut is made here.
const MARGIN_MS = 2;

const insertResult = z.object({
  inserted: z.number(),
  errors: z.number(),
  first_error: z.string().optional(),
  changes: z.array(z.object({ new_val: messageRow })).optional(),
});

const feedRow = z.union([
  z.object({ state: z.enum(['initializing', 'ready']) }),
  z.object({ old_val: messageRow.nullish(), new_val: messageRow.nullish() }),
]);

export function createMessageStore(pool: Pool, db: string, opts: MessageStoreOptions = {}): MessageStore {
  const retryForMs = opts.retryWritesForMs ?? 10_000;
  const table = () => r.db(db).table(MESSAGES);
  const rows = (raw: unknown[]) => raw.map((m) => messageRow.parse(m));
  /** every row of the room, replies kept in their thread included: what its feed carries */
  const roomRange = (room: string, from: Date | undefined) =>
    table().between(from ? [room, from] : [room, r.minval], [room, r.maxval], { index: 'room_sent' });
  /** the room as its reader scrolls it (without the replies kept in their thread) */
  const mainRange = (room: string, from: Date | undefined) =>
    table().between(from ? [room, from] : [room, r.minval], [room, r.maxval], { index: 'room_main' });
  const threadRange = (thread: string) => table().between([thread, r.minval], [thread, r.maxval], { index: 'thread_sent' });
  /** A thread's followers as stored, or, before its first reply, its author alone. */
  const followersOf = (m: RDatum) => {
    const starter = m('author')('id').default(null);
    return m('followers').default(r.branch(starter.eq(null), [], [starter]));
  };
  /** Updates one message with `fn` and returns its new state. */
  const updateOne = async (id: string, fn: (m: RDatum) => unknown) => changed(await pool.run(table().get(id).update(fn, { returnChanges: 'always' })), () => true);

  async function get(id: string): Promise<Message | undefined> {
    const row: unknown = await pool.run(table().get(id));
    return row === null ? undefined : messageRow.parse(row);
  }

  /** The row after an update or replace with returnChanges 'always', if it passes `ok`. */
  function changed(res: unknown, ok: (m: Message) => boolean): Message | undefined {
    const parsed = z.object({ first_error: z.string().optional(), changes: z.array(z.object({ new_val: messageRow.nullable() })).optional() }).parse(res);
    if (parsed.first_error) throw new Error(parsed.first_error);
    const m = parsed.changes?.[0]?.new_val ?? undefined;
    return m && ok(m) ? m : undefined;
  }

  async function insertOnce(m: NewMessage): Promise<{ message: Message; duplicate: boolean }> {
    const res = insertResult.parse(
      await pool.run(
        table().insert({ ...m, ...fieldsOnInsert(m), sent: r.now() }, { conflict: 'error', returnChanges: true }),
      ),
    );
    const stored = res.changes?.[0]?.new_val;
    if (res.inserted === 1 && stored) return { message: stored, duplicate: false };
    if (res.first_error?.startsWith('Duplicate primary key')) {
      const existing = await get(m.id);
      if (existing && existing.room === m.room) return { message: existing, duplicate: true };
      throw new IdConflictError(`message id ${m.id} is taken`);
    }
    throw new Error(`insert failed: ${res.first_error ?? 'no change returned'}`);
  }

  return {
    get,

    async insert(m) {
      // Tried again, with the same id, while the failure passes: a write that was stored but
      // whose answer was lost comes back as the duplicate it is.
      const deadline = Date.now() + retryForMs;
      for (let attempt = 0; ; attempt++) {
        try {
          const done = await insertOnce(m);
          // A duplicate on a retry is almost surely this insert's own first try, answer lost.
          if (!done.duplicate || attempt > 0) opts.metrics?.messageStored();
          return done;
        } catch (e) {
          const wait = Math.min(1000, 50 * 2 ** attempt);
          if (!isTransient(e)) throw e;
          if (Date.now() + wait > deadline) throw new WriteTimeoutError(`the database did not take the message for ${Math.round(retryForMs / 1000)} s (${(e as Error).message})`);
          await sleep(wait);
        }
      }
    },

    async latest(room, limit) {
      // A plain index read, O(log n + limit) on RethinkDB as on the embedded server (a
      // changefeed with orderBy().limit() costs the size of the room on RethinkDB).
      const raw: unknown[] = await pool.run(mainRange(room, undefined).orderBy({ index: r.desc('room_main') }).limit(limit));
      return rows(raw).reverse();
    },

    async range(room, from, limit) {
      const raw: unknown[] = await pool.run(
        mainRange(room, new Date(from.getTime() - MARGIN_MS)).orderBy({ index: r.asc('room_main') }).limit(limit),
      );
      return rows(raw).filter((m) => m.sent.getTime() >= from.getTime());
    },

    async changes(room) {
      const cursor: RCursor = await pool.run(roomRange(room, undefined).changes({ includeStates: true, includeTypes: true }));
      return {
        close: () => cursor.close(),
        async *[Symbol.asyncIterator]() {
          for await (const raw of cursor as AsyncIterable<unknown>) {
            const row = feedRow.parse(raw);
            if ('state' in row) yield { kind: 'state', state: row.state };
            else yield { kind: 'change', oldVal: row.old_val ?? undefined, newVal: row.new_val ?? undefined };
          }
        },
      };
    },

    async page(room, anchor, direction, limit) {
      const at = [room, anchor.sent, anchor.id];
      if (direction === 'older') {
        const raw: unknown[] = await pool.run(
          table().between([room, r.minval], at, { index: 'room_main', rightBound: 'open' }).orderBy({ index: r.desc('room_main') }).limit(limit),
        );
        return rows(raw).reverse();
      }
      const raw: unknown[] = await pool.run(
        table().between(at, [room, r.maxval], { index: 'room_main', leftBound: 'open' }).orderBy({ index: r.asc('room_main') }).limit(limit),
      );
      return rows(raw);
    },

    async changedSince(room, from, limit) {
      const raw: unknown[] = await pool.run(
        table().between([room, new Date(from.getTime() - MARGIN_MS)], [room, r.maxval], { index: 'room_updated' }).orderBy({ index: r.asc('room_updated') }).limit(limit),
      );
      return rows(raw);
    },

    async edit(id, body) {
      return changed(
        await pool.run(
          table()
            .get(id)
            .update((m: RDatum) => r.branch(m('deleted').default(false), {}, { body, ...fieldsOnEdit(body, m), edited: r.now(), updated: r.now() }), { returnChanges: 'always' }),
        ),
        (m) => !m.deleted,
      );
    },

    async remove(id) {
      return changed(
        await pool.run(
          table()
            .get(id)
            .replace((m: RDatum) => r.branch(m.eq(null), null, m.without('reactions', ...SEARCH_FIELDS).merge({ body: '', deleted: true, updated: r.now() })), { returnChanges: 'always' }),
        ),
        () => true,
      );
    },

    async react(id, userId, emoji, on) {
      const res = await pool.run(
        table()
          .get(id)
          .replace(
            (m: RDatum) => {
              const all = m('reactions').default({});
              const who = all(emoji).default([]);
              const next = on ? who.setInsert(userId) : who.setDifference([userId]);
              const full = all.keys().count().ge(MAX_REACTION_KINDS).and(all.hasFields(emoji).not());
              return r.branch(
                m.eq(null).or(m('deleted').default(false)),
                m,
                r.branch(on ? full : false, r.error('too many kinds of reaction'), m.without('reactions').merge({ updated: r.now(), reactions: r.branch(next.isEmpty(), all.without(emoji), all.merge(r.object(emoji, next))) })),
              );
            },
            { returnChanges: 'always' },
          ),
      );
      try {
        return changed(res, (m) => !m.deleted);
      } catch (e) {
        // r.error inside a write is the write's first_error.
        if (e instanceof Error && /too many kinds of reaction/.test(e.message)) throw new TooManyReactionsError(`a message holds at most ${MAX_REACTION_KINDS} kinds of reaction`);
        throw e;
      }
    },

    async replies(threadId, after, limit) {
      const range = after
        ? table().between([threadId, after.sent, after.id], [threadId, r.maxval], { index: 'thread_sent', leftBound: 'open' })
        : threadRange(threadId);
      const raw: unknown[] = await pool.run(range.orderBy({ index: r.asc('thread_sent') }).limit(limit));
      return rows(raw);
    },

    async touchThread(threadId, replierId) {
      // Read first, then written as plain values: an update with a subquery is not atomic on
      // RethinkDB. Counts only grow, so the larger of the stored and the read one is right.
      const facts = z.object({ n: z.number(), last: z.date().nullable() }).parse(
        await pool.run(r.expr({ n: threadRange(threadId).count(), last: threadRange(threadId).orderBy({ index: r.desc('thread_sent') }).limit(1)('sent').nth(0).default(null) })),
      );
      if (facts.last === null) return get(threadId);
      const last = facts.last;
      return updateOne(threadId, (m: RDatum) => ({
        replies: r.branch(m('replies').default(0).gt(facts.n), m('replies'), facts.n),
        lastReply: r.branch(m.hasFields('lastReply').and(m('lastReply').gt(last)), m('lastReply'), last),
        followers: replierId ? followersOf(m).setInsert(replierId) : followersOf(m),
        updated: r.now(),
      }));
    },

    async follow(id, userId, on) {
      return updateOne(id, (m: RDatum) => ({ followers: on ? followersOf(m).setInsert(userId) : followersOf(m).setDifference([userId]), updated: r.now() }));
    },

    async ping() {
      await pool.run(table().get('readyz'));
    },
  };
}
