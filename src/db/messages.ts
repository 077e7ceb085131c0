// Every query the chat makes on the messages table. Reads of a room are ranges of the
// room_sent index ([room, sent, id]); nothing scans the table.
import { r, type RCursor } from 'rethinkdb-ts';
import { z } from 'zod';
import { messageRow, type Message, type NewMessage } from '../chat/message.js';
import type { Pool } from './pool.js';
import { MESSAGES } from './schema.js';

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
  /** A cheap read that fails unless the database and table answer. */
  ping(): Promise<void>;
}

export class IdConflictError extends Error {
  override name = 'IdConflictError';
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

    async latest(room, limit) {
      // A plain index read, O(log n + limit) on RethinkDB as on the embedded server (a
      // changefeed with orderBy().limit() costs the size of the room on RethinkDB).
      const raw: unknown[] = await pool.run(roomRange(room, undefined).orderBy({ index: r.desc('room_sent') }).limit(limit));
      return rows(raw).reverse();
    },

    async range(room, from, limit) {
      const raw: unknown[] = await pool.run(
        roomRange(room, new Date(from.getTime() - MARGIN_MS)).orderBy({ index: r.asc('room_sent') }).limit(limit),
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

    async ping() {
      await pool.run(table().get('readyz'));
    },
  };
}
