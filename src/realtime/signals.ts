// Short-lived signals to a room's sockets on every process: who is typing. A signal is a row
// (`<room>/<user>`, rewritten each time, so a busy typist is one row), followed by one
// changefeed per process and handed to the sockets here that are in the room. A signal is
// worth something for a few seconds only: nothing is backfilled after a gap, and old rows
// are swept.
import { r } from 'rethinkdb-ts';
import type { Logger } from 'pino';
import { z } from 'zod';
import { follow, type Feed } from '../db/follow.js';
import type { Pool } from '../db/pool.js';
import { SIGNALS } from '../db/schema.js';

export interface TypingSignal {
  room: string;
  userId: string;
  name: string;
}

const signalRow = z.object({ room: z.string(), userId: z.string(), name: z.string() });

export interface Signals {
  readonly ready: Promise<void>;
  typing(s: TypingSignal): Promise<void>;
  stop(): Promise<void>;
}

/** Rows older than this are swept. */
const SWEEP_AFTER_SECONDS = 60;

export function createSignals(opts: { pool: Pick<Pool, 'run'>; db: string; log: Logger; deliver: (s: TypingSignal) => void }): Signals {
  const table = r.db(opts.db).table(SIGNALS);
  let lastSweep = 0;
  const feed = follow(
    'signals',
    async (): Promise<Feed<TypingSignal>> => {
      const cursor = await opts.pool.run(table.changes());
      return {
        close: () => cursor.close(),
        async *[Symbol.asyncIterator]() {
          for await (const raw of cursor as AsyncIterable<unknown>) {
            const row = signalRow.safeParse((raw as { new_val?: unknown }).new_val);
            if (row.success) yield row.data;
          }
        },
      };
    },
    opts.deliver,
    { log: opts.log },
  );
  return {
    ready: feed.ready,
    async typing(s) {
      await opts.pool.run(table.insert({ id: `${s.room}/${s.userId}`, ...s, at: r.now() }, { conflict: 'replace' }));
      if (Date.now() - lastSweep > SWEEP_AFTER_SECONDS * 1000) {
        lastSweep = Date.now();
        await opts.pool.run(table.between(r.minval, r.now().sub(SWEEP_AFTER_SECONDS), { index: 'at' }).delete());
      }
    },
    stop: () => feed.stop(),
  };
}
