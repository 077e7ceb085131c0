// One changefeed per active room in this process, shared by every socket in the room.
//
// A room's feed is the atomic "last N, then live" query, so the room always holds its window
// of the last N messages in memory: a socket that joins an open room gets its history from
// that window and is subscribed in the same tick, with no query and no gap. The first socket
// waits for the feed's initial values. The feed is closed when the last socket leaves.
//
// When the feed errors (the database connection dropped, say), it is reopened with backoff
// and the gap is backfilled by index from the newest message delivered, with an overlap; ids
// already delivered are dropped, so every subscriber sees every message exactly once.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { compareMessages, type Message } from '../chat/message.js';
import type { FeedCursor, MessageStore } from '../db/messages.js';

export interface Subscriber {
  /** Called once, first: the room's last N messages, or when resuming what came after `since`
   *  (`resumed`), oldest first. */
  start(history: Message[], resumed: boolean): void;
  /** Then each new message of the room, once. */
  deliver(message: Message): void;
}

export interface RoomFeeds {
  /** Subscribes; `since` is the id of the last message the subscriber already has. */
  join(room: string, sub: Subscriber, since?: string): void;
  leave(room: string, sub: Subscriber): void;
  stats(): { rooms: number; subscribers: number; openFeeds: number };
  close(): Promise<void>;
}

export interface RoomFeedsOptions {
  store: MessageStore;
  log: Logger;
  /** the window: how many recent messages a joining socket gets (HISTORY_LIMIT) */
  historyLimit: number;
  /** the most messages a resume sends before it gives up and sends fresh history instead */
  maxResume?: number;
  /** how far before the newest delivered message a backfill starts (clock skew between nodes) */
  overlapMs?: number;
  backoff?: { min: number; max: number };
}

interface SubState {
  started: boolean;
  /** while a resume reads the database, live messages wait here */
  buffer?: Message[];
  /** ids a resume sent before the feed did: not to be sent again */
  skip: Set<string>;
}

interface Room {
  name: string;
  subs: Map<Subscriber, SubState>;
  pending: Array<{ sub: Subscriber; since?: string }>;
  /** the last N messages, in room order */
  window: Message[];
  /** ids delivered recently (newer than newest - 2 * overlap) or in the window, with sent ms */
  seen: Map<string, number>;
  newest?: Message;
  forgetAt: number;
  /** the window has been filled once: joins are served */
  ready: boolean;
  cursor?: FeedCursor;
  closed: boolean;
}

export function createRoomFeeds(opts: RoomFeedsOptions): RoomFeeds {
  const { store, log, historyLimit } = opts;
  const maxResume = opts.maxResume ?? 1000;
  const overlapMs = opts.overlapMs ?? 5000;
  const backoff = opts.backoff ?? { min: 100, max: 5000 };
  const rooms = new Map<string, Room>();
  const running = new Set<Promise<void>>();

  function remember(room: Room, m: Message): boolean {
    if (room.seen.has(m.id)) return false;
    room.seen.set(m.id, m.sent.getTime());
    if (!room.newest || compareMessages(m, room.newest) > 0) room.newest = m;
    return true;
  }

  /** Keeps `seen` to what a backfill can return again: the window and the overlap. */
  function forget(room: Room): void {
    if (room.seen.size < room.forgetAt || !room.newest) return;
    const cutoff = room.newest.sent.getTime() - 2 * overlapMs;
    const inWindow = new Set(room.window.map((m) => m.id));
    for (const [id, sent] of room.seen) if (sent < cutoff && !inWindow.has(id)) room.seen.delete(id);
    room.forgetAt = Math.max(4 * historyLimit, 2 * room.seen.size);
  }

  function broadcast(room: Room, m: Message): void {
    for (const [sub, st] of room.subs) {
      if (st.buffer) st.buffer.push(m);
      else if (st.skip.delete(m.id)) continue;
      else if (st.started) safely(() => sub.deliver(m));
    }
  }

  function safely(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      log.warn({ err: String(e) }, 'subscriber failed');
    }
  }

  /** Applies a feed change to the window; announces a message seen for the first time. */
  function apply(room: Room, oldVal: Message | undefined, newVal: Message | undefined): void {
    if (oldVal) room.window = room.window.filter((m) => m.id !== oldVal.id);
    if (newVal) {
      room.window = insertSorted(room.window.filter((m) => m.id !== newVal.id), newVal).slice(-historyLimit);
      if (remember(room, newVal)) broadcast(room, newVal);
    }
    forget(room);
  }

  function serve(room: Room, sub: Subscriber, since: string | undefined): void {
    const st = room.subs.get(sub);
    if (!st) return;
    const at = since === undefined ? -1 : room.window.findIndex((m) => m.id === since);
    if (since === undefined || at >= 0) {
      st.started = true;
      safely(() => sub.start(room.window.slice(at + 1), at >= 0));
      return;
    }
    // The subscriber is further behind than the window: read what it missed from the
    // database while live messages wait in its buffer, then send both without duplicates.
    st.buffer = [];
    void (async () => {
      let missed: Message[] | undefined;
      try {
        const anchor = await store.get(since);
        if (anchor && anchor.room === room.name) {
          const after = await store.after(anchor, maxResume + 1);
          if (after.length <= maxResume) missed = after;
        }
      } catch (e) {
        log.warn({ room: room.name, err: String(e) }, 'resume failed; sending fresh history');
      }
      if (room.subs.get(sub) !== st) return; // left meanwhile
      const buffered = st.buffer ?? [];
      st.buffer = undefined;
      st.started = true;
      if (!missed) {
        // Unknown anchor, too far behind or no database: fresh history. The window already
        // holds everything that was buffered.
        safely(() => sub.start(room.window.slice(), false));
        return;
      }
      const ids = new Set(missed.map((m) => m.id));
      // What the database showed before the feed did will come through the feed later.
      for (const m of missed) if (!room.seen.has(m.id)) st.skip.add(m.id);
      const all = [...missed, ...buffered.filter((m) => !ids.has(m.id))].sort(compareMessages);
      safely(() => sub.start(all, true));
    })();
  }

  async function run(room: Room): Promise<void> {
    let attempt = 0;
    while (!room.closed) {
      try {
        const cursor = await store.latest(room.name, historyLimit);
        if (room.closed) {
          await cursor.close();
          return;
        }
        room.cursor = cursor;
        let initial: Message[] = [];
        let live = false;
        for await (const ev of cursor) {
          if (live) {
            if (ev.kind === 'change') apply(room, ev.oldVal, ev.newVal);
          } else if (ev.kind === 'change') {
            if (ev.oldVal) initial = initial.filter((m) => m.id !== ev.oldVal?.id);
            if (ev.newVal) initial.push(ev.newVal);
          } else if (ev.state === 'ready') {
            initial.sort(compareMessages);
            if (!room.ready) {
              room.window = initial.slice(-historyLimit);
              for (const m of room.window) remember(room, m);
              room.ready = true;
              for (const { sub, since } of room.pending.splice(0)) serve(room, sub, since);
            } else {
              // Reopened: while this backfill runs, the new feed's changes wait in the cursor.
              const from = room.newest && new Date(room.newest.sent.getTime() - overlapMs);
              const gap = await store.since(room.name, from);
              if (room.closed) break;
              // The new window's messages are all either old (seen) or in the gap.
              room.window = initial.slice(-historyLimit);
              for (const m of gap) if (remember(room, m)) broadcast(room, m);
              log.info({ room: room.name, backfilled: gap.length }, 'room feed reopened');
            }
            live = true;
            attempt = 0;
          }
        }
        if (!room.closed) log.warn({ room: room.name }, 'room feed ended; reopening');
      } catch (e) {
        if (!room.closed) log.warn({ room: room.name, err: String(e) }, 'room feed failed; reopening');
      } finally {
        // rethinkdb-ts cursors do not close when iteration stops early: close it here.
        const cursor = room.cursor;
        room.cursor = undefined;
        await cursor?.close().catch(() => undefined);
      }
      if (room.closed) return;
      await sleep(Math.min(backoff.max, backoff.min * 2 ** attempt++) * (0.75 + Math.random() / 2));
    }
  }

  function open(name: string): Room {
    const room: Room = {
      name,
      subs: new Map(),
      pending: [],
      window: [],
      seen: new Map(),
      forgetAt: 4 * historyLimit,
      ready: false,
      closed: false,
    };
    rooms.set(name, room);
    const p = run(room).catch((e: unknown) => log.error({ room: name, err: String(e) }, 'room feed stopped'));
    running.add(p);
    void p.finally(() => running.delete(p));
    return room;
  }

  function shut(room: Room): void {
    room.closed = true;
    rooms.delete(room.name);
    void room.cursor?.close().catch(() => undefined);
  }

  return {
    join(name, sub, since) {
      const room = rooms.get(name) ?? open(name);
      room.subs.set(sub, { started: false, skip: new Set() });
      if (room.ready) serve(room, sub, since);
      else room.pending.push({ sub, since });
    },
    leave(name, sub) {
      const room = rooms.get(name);
      if (!room || !room.subs.delete(sub)) return;
      room.pending = room.pending.filter((p) => p.sub !== sub);
      if (room.subs.size === 0) shut(room);
    },
    stats() {
      let subscribers = 0;
      let openFeeds = 0;
      for (const room of rooms.values()) {
        subscribers += room.subs.size;
        if (room.cursor) openFeeds++;
      }
      return { rooms: rooms.size, subscribers, openFeeds };
    },
    async close() {
      for (const room of [...rooms.values()]) shut(room);
      await Promise.all(running);
    },
  };
}

function insertSorted(list: Message[], m: Message): Message[] {
  let i = list.length;
  while (i > 0 && compareMessages(list[i - 1], m) > 0) i--;
  return [...list.slice(0, i), m, ...list.slice(i)];
}
