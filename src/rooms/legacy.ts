// The messages stored before accounts: the 2015 article's rooms are named, not numbered, and
// their messages carry the name as their room. With ANONYMOUS_ROOMS=1 they are open rooms
// as they are (an open room's id is its name), so nothing moves. With it off, the release
// phase (and every start) makes each such room a public channel of the same name and moves
// its messages there, keeping their ids, authors and times, so the history stays readable.
//
// Safe to run again, and from two processes at once: a claim `legacy:<name>` fixes each old
// room's channel id before anything is written, so a run cut short resumes where it stopped
// and two runs move the same messages to the same channel. Messages move in batches of the
// room_sent index; nothing scans the table. Finding the rooms is a skip through that index,
// one read per room, so a marker records that no old room is left (cleared whenever the
// server runs with open rooms on, since they can get messages then).
import { randomUUID } from 'node:crypto';
import { r } from 'rethinkdb-ts';
import { z } from 'zod';
import type { Logger } from 'pino';
import { isRoomId } from '../chat/access.js';
import { messageRow } from '../chat/message.js';
import type { Pool } from '../db/pool.js';
import { CLAIMS, MESSAGES, WORKSPACE } from '../db/schema.js';
import { roomName } from './schema.js';
import { RoomNameTakenError, type RoomStore } from './store.js';

const MARKER = 'legacy-rooms';
const BATCH = 1000;
/** the article's lobby was the room named '' */
const LOBBY = 'lobby';

export interface LegacyResult {
  /** old rooms made channels by this run */
  rooms: number;
  /** messages moved by this run */
  messages: number;
}

export async function migrateLegacyRooms(opts: { pool: Pool; db: string; rooms: RoomStore; anonymousRooms: boolean; log: Logger }): Promise<LegacyResult> {
  const { pool, db, rooms, log } = opts;
  const t = (name: string) => r.db(db).table(name);
  const done = { rooms: 0, messages: 0 };
  if (opts.anonymousRooms) {
    // Open rooms are served as they are, and may get new messages from now on.
    await pool.run(t(WORKSPACE).get(MARKER).delete());
    return done;
  }
  if ((await pool.run(t(WORKSPACE).get(MARKER))) !== null) return done;

  for (const name of await oldRoomNames()) {
    const id = await channelFor(name);
    const moved = await moveMessages(name, id);
    done.messages += moved;
    done.rooms++;
    log.info({ room: name, channel: id, messages: moved }, 'made an old open room a public channel');
  }
  await pool.run(t(WORKSPACE).insert({ id: MARKER, checkedAt: r.now() }, { conflict: 'replace' }));
  return done;

  /** Every room value of the messages table that is not an account room's id. */
  async function oldRoomNames(): Promise<string[]> {
    const names: string[] = [];
    let after: string | undefined;
    for (;;) {
      const lower = after === undefined ? r.minval : [after, r.maxval];
      const next: unknown[] = await pool.run(
        t(MESSAGES).between(lower, r.maxval, { index: 'room_sent', leftBound: 'open' }).orderBy({ index: 'room_sent' }).limit(1)('room'),
      );
      if (next.length === 0) return names;
      after = z.string().parse(next[0]);
      if (!isRoomId(after)) names.push(after);
    }
  }

  /** The channel the old room `name` becomes: claimed once, made if missing. */
  async function channelFor(name: string): Promise<string> {
    const key = `legacy:${name}`;
    // The first run to get here picks the id; any other reads it.
    await pool.run(t(CLAIMS).insert({ id: key, roomId: randomUUID() }, { conflict: 'error' }));
    const id = z.object({ roomId: z.string() }).parse(await pool.run(t(CLAIMS).get(key))).roomId;
    if (await rooms.room(id)) return id;
    const first = await pool.run(t(MESSAGES).between([name, r.minval], [name, r.maxval], { index: 'room_sent' }).orderBy({ index: 'room_sent' }).limit(1));
    const createdAt = z.array(messageRow).parse(first)[0]?.sent ?? new Date();
    const base = channelName(name);
    for (let n = 1; n <= 100; n++) {
      const candidate = n === 1 ? base : `${base.slice(0, 70)} (${n})`;
      try {
        await rooms.create({ id, kind: 'channel', name: candidate, topic: 'messages from before accounts', ownerId: null, createdAt });
        return id;
      } catch (e) {
        // Another run made it meanwhile, or the name is some other channel's.
        if (await rooms.room(id)) return id;
        if (!(e instanceof RoomNameTakenError)) throw e;
      }
    }
    throw new Error(`no free channel name for the old room ${JSON.stringify(name)}`);
  }

  /** Moves the old room's messages to the channel, a batch at a time, until none is left. */
  async function moveMessages(name: string, id: string): Promise<number> {
    let moved = 0;
    for (;;) {
      const res = z
        .object({ replaced: z.number(), errors: z.number(), first_error: z.string().optional() })
        .parse(await pool.run(t(MESSAGES).between([name, r.minval], [name, r.maxval], { index: 'room_sent' }).limit(BATCH).update({ room: id })));
      if (res.errors > 0) throw new Error(`could not move the messages of ${JSON.stringify(name)}: ${res.first_error ?? 'unknown error'}`);
      if (res.replaced === 0) return moved;
      moved += res.replaced;
    }
  }
}

/** A channel name for an old room name: the same when it is one, else made into one. */
function channelName(name: string): string {
  // Control characters out, length cut; the empty name was the article's lobby.
  const cleaned = [...name.replace(/\p{Cc}/gu, ' ').trim()].slice(0, 80).join('').trim();
  const parsed = roomName.safeParse(cleaned);
  return parsed.success ? parsed.data : LOBBY;
}
