// The retention sweep: messages older than the workspace's messageRetentionDays for their
// kind of room are deleted with their files; files older than fileRetentionDays are deleted
// and their messages kept without them; files nothing shows any more (an upload that never
// finished, a deleted message's file, a file whose message is gone) are deleted too.
//
// One process at a time sweeps (a lease, src/files/lease.ts), and a sweep stopped anywhere
// (the process killed) leaves nothing a reader could trip on, because every step is ordered:
// a message lets go of its file before the file's bytes go, and a file's row goes last, so
// the next sweep finds whatever is left over by the row and finishes it. No message ever
// points at a missing file; a file without its message lasts until the next sweep.
import { r, type RDatum } from 'rethinkdb-ts';
import type { Logger } from 'pino';
import type { RetentionDays, Settings } from '../accounts/schema.js';
import { messageRow, type Message } from '../chat/message.js';
import type { Pool } from '../db/pool.js';
import { MESSAGES } from '../db/schema.js';
import type { Room } from '../rooms/schema.js';
import type { RoomStore } from '../rooms/store.js';
import type { Lease } from './lease.js';
import type { FileRow, Files } from './store.js';

const DAY_MS = 86_400_000;
/** An upload this old that never became a message is abandoned. */
export const ABANDONED_AFTER_MS = 3_600_000;
const BATCH = 200;
const KINDS = ['channel', 'group', 'dm'] as const;

export interface SweepResult {
  /** false: another process holds the lease */
  ran: boolean;
  messagesDeleted: number;
  filesDeleted: number;
  /** with the lease lost midway, the sweep stopped */
  stopped?: boolean;
}

export interface RetentionOptions {
  pool: Pick<Pool, 'run'>;
  db: string;
  files: Files;
  rooms: Pick<RoomStore, 'room' | 'byKind'>;
  settings: () => Promise<Pick<Settings, 'fileRetentionDays' | 'messageRetentionDays'>>;
  lease: Lease;
  log: Logger;
  /** called after each write, with its name (tests stop a sweep here, as a kill would) */
  onStep?: (step: string) => void | Promise<void>;
  /** the clock the cutoffs are computed from (the database's times are compared with it) */
  now?: () => number;
}

export interface Retention {
  sweep(): Promise<SweepResult>;
  /** Tries a sweep every `everyMs` (the first after one period). */
  start(everyMs: number): void;
  stop(): Promise<void>;
}

class LeaseLost extends Error {}

export function createRetention(opts: RetentionOptions): Retention {
  const { pool, files, lease, log } = opts;
  const messages = () => r.db(opts.db).table(MESSAGES);
  const now = opts.now ?? Date.now;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;

  const cutoff = (days: number) => new Date(now() - days * DAY_MS);

  async function step(name: string, counter: { n: number }): Promise<void> {
    await opts.onStep?.(name);
    // Renewed every few writes: a holder that lost it stops before writing more.
    if (++counter.n % 20 === 0 && !(await lease.take())) throw new LeaseLost();
  }

  /** The message lets go of its file; a caption-less message says what was there. */
  async function unlink(messageId: string, file: FileRow): Promise<void> {
    await pool.run(
      messages()
        .get(messageId)
        .replace((m: RDatum) =>
          r.branch(
            m.eq(null).not().and(m('file')('id').default(null).eq(file.id)),
            m.without('file').merge({ updated: r.now(), body: r.branch(m('body').eq(''), `${file.name} was removed`, m('body')) }),
            m,
          ),
        ),
    );
  }

  async function getMessage(id: string): Promise<Message | undefined> {
    const row: unknown = await pool.run(messages().get(id));
    return row === null ? undefined : messageRow.parse(row);
  }

  async function sweepMessages(days: RetentionDays, result: SweepResult, counter: { n: number }): Promise<void> {
    for (const kind of KINDS) {
      if (days[kind] <= 0) continue;
      const before = cutoff(days[kind]);
      for (const room of await opts.rooms.byKind(kind)) {
        for (;;) {
          const raw: unknown[] = await pool.run(messages().between([room.id, r.minval], [room.id, before], { index: 'room_sent' }).limit(BATCH));
          if (raw.length === 0) break;
          for (const m of raw.map((x) => messageRow.parse(x))) {
            // The message first: its file, left without it, is found by the files pass.
            await pool.run(messages().get(m.id).delete());
            result.messagesDeleted++;
            await step('message deleted', counter);
            if (m.file) {
              await files.remove(m.file.id);
              result.filesDeleted++;
              await step('file of a deleted message deleted', counter);
            }
          }
        }
      }
    }
  }

  async function sweepFiles(days: RetentionDays, result: SweepResult, counter: { n: number }): Promise<void> {
    const rooms = new Map<string, Room | undefined>();
    const roomOf = async (id: string) => {
      if (!rooms.has(id)) rooms.set(id, await opts.rooms.room(id));
      return rooms.get(id);
    };
    const before = new Date(now() - ABANDONED_AFTER_MS);
    let after: FileRow | undefined;
    for (;;) {
      const page = await files.olderThan(before, after, BATCH);
      if (page.length === 0) return;
      for (const f of page) {
        after = f;
        const room = await roomOf(f.room);
        const message = f.state === 'ready' ? await getMessage(f.message) : undefined;
        const shown = room && message && !message.deleted && message.file?.id === f.id;
        const kind = room?.kind;
        const expired = kind !== undefined && kind !== 'open' && days[kind] > 0 && f.created < cutoff(days[kind]);
        if (shown && !expired) continue;
        if (shown) {
          await unlink(f.message, f);
          await step('message let go of its file', counter);
        } else if (message && message.file?.id === f.id) {
          // A deleted message (a tombstone) still names the file: it lets go first.
          await unlink(f.message, f);
          await step('deleted message let go of its file', counter);
        }
        await files.remove(f.id);
        result.filesDeleted++;
        await step('file deleted', counter);
      }
    }
  }

  async function sweep(): Promise<SweepResult> {
    const result: SweepResult = { ran: false, messagesDeleted: 0, filesDeleted: 0 };
    if (!(await lease.take())) return result;
    result.ran = true;
    const counter = { n: 0 };
    try {
      const s = await opts.settings();
      await sweepMessages(s.messageRetentionDays, result, counter);
      await sweepFiles(s.fileRetentionDays, result, counter);
      await lease.release();
    } catch (e) {
      if (!(e instanceof LeaseLost)) throw e;
      result.stopped = true;
      log.warn('retention sweep stopped: another process took the lease');
    }
    if (result.messagesDeleted + result.filesDeleted > 0) log.info(result, 'retention sweep');
    return result;
  }

  return {
    sweep,
    start(everyMs) {
      const tick = () => {
        running = sweep()
          .catch((e: unknown) => log.warn({ err: String(e) }, 'retention sweep failed'))
          .finally(() => {
            running = undefined;
            if (timer) timer = setTimeout(tick, everyMs).unref();
          });
      };
      timer = setTimeout(tick, everyMs).unref();
    },
    async stop() {
      clearTimeout(timer);
      timer = undefined;
      await running;
    },
  };
}
