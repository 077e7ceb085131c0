// Every query the chat makes on the messages table. Reads of a room are ranges of the
// room_sent index ([room, sent, id]); nothing scans the table.
import { r, type RCursor } from 'rethinkdb-ts';
import { z } from 'zod';
import { messageRow, compareMessages, type Message, type NewMessage } from '../chat/message.js';
import type { Pool } from './pool.js';
import { MESSAGES } from './schema.js';

/** One event of a room's "last N, then live" feed. */
export type FeedEvent =
  | { kind: 'state'; state: 'initializing' | 'ready' }
  /** a message entered (newVal) and/or left (oldVal) the window of the last N */
  | { kind: 'change'; oldVal?: Message; newVal?: Message };

export interface FeedCursor extends AsyncIterable<FeedEvent> {
  close(): Promise<void>;
}

export interface MessageStore {
  /** Stores a message stamped with the database's clock. A message whose id is already stored
   *  in the same room is not stored again: the stored one comes back, marked duplicate. */
  insert(m: NewMessage): Promise<{ message: Message; duplicate: boolean }>;
  get(id: string): Promise<Message | undefined>;
  /** The room's messages strictly after `anchor` in room order, oldest first, at most `limit`. */
  after(anchor: Message, limit: number): Promise<Message[]>;
  /** The room's messages sent from about `from` on (all of them when absent), oldest first. */
  since(room: string, from: Date | undefined): Promise<Message[]>;
  /** The atomic "last `limit` messages, then live" feed of a room. */
  latest(room: string, limit: number): Promise<FeedCursor>;
  /** A cheap read that fails unless the database and table answer. */
  ping(): Promise<void>;
}

export class IdConflictError extends Error {
  override name = 'IdConflictError';
}

// Times cross the wire as float seconds and come back as Dates cut to the millisecond, so an
// index bound built from a Date read earlier may sit a hair off the stored value. A range that
// must start exactly after a message starts a little early, and the exact cut is made here,
// by the same comparison clients use.
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

export function createMessageStore(pool: Pool, db: string): MessageStore {
  const table = () => r.db(db).table(MESSAGES);
  const rows = (raw: unknown[]) => raw.map((m) => messageRow.parse(m));
  const roomRange = (room: string, from: Date | undefined) =>
    table().between(from ? [room, from] : [room, r.minval], [room, r.maxval], { index: 'room_sent' });

  async function get(id: string): Promise<Message | undefined> {
    const row: unknown = await pool.run(table().get(id));
    return row === null ? undefined : messageRow.parse(row);
  }

  return {
    get,

    async insert(m) {
      const res = insertResult.parse(
        await pool.run(
          table().insert({ ...m, sent: r.now() }, { conflict: 'error', returnChanges: true }),
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
    },

    async after(anchor, limit) {
      const from = new Date(anchor.sent.getTime() - MARGIN_MS);
      // Over-read by what the margin lets in (the anchor and its last milliseconds), then cut.
      const raw: unknown[] = await pool.run(
        roomRange(anchor.room, from).orderBy({ index: r.asc('room_sent') }).limit(limit + 100),
      );
      return rows(raw).filter((m) => compareMessages(m, anchor) > 0).slice(0, limit);
    },

    async since(room, from) {
      const raw: unknown[] = await pool.run(roomRange(room, from).orderBy({ index: r.asc('room_sent') }));
      return rows(raw);
    },

    async latest(room, limit) {
      const cursor: RCursor = await pool.run(
        table()
          .between([room, r.minval], [room, r.maxval], { index: 'room_sent' })
          .orderBy({ index: r.desc('room_sent') })
          .limit(limit)
          .changes({ includeInitial: true, includeStates: true, includeTypes: true }),
      );
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

    async ping() {
      await pool.run(table().get('readyz'));
    },
  };
}
