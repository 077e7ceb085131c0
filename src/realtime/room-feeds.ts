// One changefeed per active room in this process, shared by every socket in the room.
//
// Opening a room: its feed of every change (no initial values) is opened first; once it is
// ready, the room's last N messages are read by index. Anything that commits after the feed
// is ready comes through it, anything before is in the read, and what is in both is dropped
// by id: no gap, no duplicate, and both queries cost O(log n + N) on any server. The room
// then holds its window of the last N messages in memory, so a socket that joins an open
// room gets its history from the window in the same tick, with no query.
//
// Messages are ordered by the database's timestamp, then id; but on RethinkDB a write's
// timestamp is taken when the query is parsed, not when it commits, and nodes' clocks differ.
// So a message may commit (and reach the feed) after one with a later timestamp. It is put in
// its place, and every resume and backfill starts `reorderWindowMs` before the newest message
// already held, dropping what is held by id: nothing that commits up to that late is missed.
//
// When the feed errors (the database connection dropped, say), it is reopened with backoff
// and the gap is backfilled the same way. A join the database cannot answer gets `fail`.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { compareMessages, type Message } from '../chat/message.js';
import type { FeedCursor, MessageStore } from '../db/messages.js';
import { noMetrics, type Metrics } from '../ops/metrics.js';

export interface Subscriber {
  /** Called first: the room's last N messages, or when resuming (`resumed`) what the
   *  subscriber may have missed, oldest first. */
  start(history: Message[], resumed: boolean): void;
  /** Then each new message of the room, once. */
  deliver(message: Message): void;
  /** The room started over from fresh history after a gap too long to backfill: `history`
   *  is the new window, `unseen` those of its messages not delivered before. */
  restart(history: Message[], unseen: Message[]): void;
  /** The room could not be opened (the database failed); the subscriber is dropped. */
  fail(reason: string): void;
  /** A message of the room changed (edited, deleted, reacted to): its whole new state. May
   *  come more than once, and an older state after a newer one: keep the newest `updated`. */
  changed?(message: Message): void;
}

export interface JoinOptions {
  /** the id of the newest message (in room order) the subscriber holds */
  since?: string;
  /** ids the subscriber holds from `reorderWindowMs` before `since` on: not sent again */
  have?: readonly string[];
  /** the newest change the subscriber holds (ISO): changes from the window before it on are sent */
  changedSince?: string;
}

export interface RoomFeeds {
  join(room: string, sub: Subscriber, opts?: JoinOptions): void;
  leave(room: string, sub: Subscriber): void;
  stats(): { rooms: number; subscribers: number; openFeeds: number; lateBeyondWindow: number };
  close(): Promise<void>;
}

export interface RoomFeedsOptions {
  store: MessageStore;
  log: Logger;
  /** the window: how many recent messages a joining socket gets (HISTORY_LIMIT) */
  historyLimit: number;
  /** how much later than its timestamp a message may commit, plus the clock difference
   *  between database nodes: resumes and backfills reach back this far */
  reorderWindowMs: number;
  /** the most messages a resume or a backfill sends; past it, fresh history instead */
  maxResume?: number;
  backoff?: { min: number; max: number };
  /** counts deliveries, fan-out latency and reopens */
  metrics?: Pick<Metrics, 'delivered' | 'fanOutLatency' | 'feedReopened'>;
}

interface SubState {
  started: boolean;
  /** while a resume reads the database, live messages wait here */
  buffer?: Message[];
  /** ids the subscriber already has and the room has not delivered yet: not sent again */
  skip: Set<string>;
  skipUntil: number;
}

interface Room {
  name: string;
  subs: Map<Subscriber, SubState>;
  pending: Array<{ sub: Subscriber; opts: JoinOptions }>;
  /** every message of the room from window[0] on, in room order (at most N) */
  window: Message[];
  /** the window holds the whole room */
  complete: boolean;
  /** ids delivered recently (newer than newest - 2 * reorder window) or in the window, with sent ms */
  seen: Map<string, number>;
  newest?: Message;
  /** the database's clock of the newest change or message seen: a backfill of changes starts a window before it */
  changeMark?: number;
  forgetAt: number;
  /** the window has been filled once: joins are served */
  ready: boolean;
  cursor?: FeedCursor;
  closed: boolean;
}

export function createRoomFeeds(opts: RoomFeedsOptions): RoomFeeds {
  const { store, log, historyLimit, reorderWindowMs } = opts;
  const maxResume = opts.maxResume ?? 1000;
  const backoff = opts.backoff ?? { min: 100, max: 5000 };
  const metrics = opts.metrics ?? noMetrics;
  /** how long a resumed subscriber's held ids are kept for skipping: another process's feed
   *  may deliver a message a little later than the one the subscriber first got it from */
  const skipForMs = Math.max(2 * reorderWindowMs, 10_000);
  const rooms = new Map<string, Room>();
  const running = new Set<Promise<void>>();
  let lateBeyondWindow = 0;

  function mark(room: Room, m: Message): void {
    const at = Math.max(m.sent.getTime(), m.updated?.getTime() ?? 0);
    if (room.changeMark === undefined || at > room.changeMark) room.changeMark = at;
  }

  /** A change of a message: every started subscriber gets the new state. */
  function broadcastChange(room: Room, m: Message): void {
    mark(room, m);
    for (const [sub, st] of room.subs) if (st.started && !st.buffer) safely(() => sub.changed?.(m));
  }

  function remember(room: Room, m: Message): boolean {
    mark(room, m);
    if (room.seen.has(m.id)) return false;
    room.seen.set(m.id, m.sent.getTime());
    if (!room.newest || compareMessages(m, room.newest) > 0) room.newest = m;
    return true;
  }

  /** Keeps `seen` to what a backfill can return again: the window and the reorder window. */
  function forget(room: Room): void {
    if (room.seen.size < room.forgetAt || !room.newest) return;
    const cutoff = room.newest.sent.getTime() - 2 * reorderWindowMs;
    const inWindow = new Set(room.window.map((m) => m.id));
    for (const [id, sent] of room.seen) if (sent < cutoff && !inWindow.has(id)) room.seen.delete(id);
    room.forgetAt = Math.max(4 * historyLimit, 2 * room.seen.size);
  }

  function broadcast(room: Room, m: Message): void {
    const now = Date.now();
    let delivered = 0;
    for (const [sub, st] of room.subs) {
      if (st.buffer) {
        st.buffer.push(m);
        continue;
      }
      if (!st.started) continue;
      if (st.skip.size > 0) {
        if (now > st.skipUntil) st.skip.clear();
        else if (st.skip.delete(m.id)) continue;
      }
      safely(() => sub.deliver(m));
      delivered++;
    }
    metrics.delivered(delivered);
  }

  function safely(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      log.warn({ err: String(e) }, 'subscriber failed');
    }
  }

  /** Puts a message in the window if it belongs there (it is not older than the window). */
  function place(room: Room, m: Message): void {
    const w = room.window;
    if (!room.complete && w.length > 0 && compareMessages(m, w[0]) < 0) return;
    let i = w.length;
    while (i > 0 && compareMessages(w[i - 1], m) > 0) i--;
    w.splice(i, 0, m);
    if (w.length > historyLimit) {
      w.splice(0, w.length - historyLimit);
      room.complete = false;
    }
  }

  /** A new message from the feed (`live`) or a backfill: held, placed, and sent once to everyone. */
  function arrive(room: Room, m: Message, live: boolean): void {
    const newest = room.newest;
    if (!remember(room, m)) return;
    if (newest && newest.sent.getTime() - m.sent.getTime() > reorderWindowMs) {
      // Live subscribers get it, but a resume that started meanwhile may have missed it.
      lateBeyondWindow++;
      log.warn({ room: room.name, id: m.id, lateMs: newest.sent.getTime() - m.sent.getTime(), reorderWindowMs }, 'a message committed later than the reorder window allows');
    }
    // A reply kept in its thread goes to everyone in the room (a thread beside the room
    // shows it), but is not part of the room's own history: not in the window.
    if (m.thread === undefined || m.alsoRoom) place(room, m);
    broadcast(room, m);
    if (live) metrics.fanOutLatency(Date.now() - m.sent.getTime());
  }

  /** Applies a feed change. */
  function apply(room: Room, oldVal: Message | undefined, newVal: Message | undefined): void {
    if (newVal && !oldVal) arrive(room, newVal, true);
    else if (oldVal && !newVal) room.window = room.window.filter((m) => m.id !== oldVal.id);
    else if (oldVal && newVal) {
      room.window = room.window.map((m) => (m.id === newVal.id ? newVal : m));
      broadcastChange(room, newVal);
    }
    forget(room);
  }

  /** True when the window holds every message of the room sent at `fromMs` or later. */
  function windowCovers(room: Room, fromMs: number): boolean {
    return room.complete || (room.window.length > 0 && room.window[0].sent.getTime() < fromMs);
  }

  /** What changed since the subscriber's newest change, once its history is sent. */
  function sendChanges(room: Room, sub: Subscriber, changedSince: string | undefined): void {
    if (changedSince === undefined || !sub.changed) return;
    const from = new Date(Date.parse(changedSince) - reorderWindowMs);
    void store.changedSince(room.name, from, maxResume).then(
      (changes) => {
        if (!room.subs.get(sub)?.started) return;
        for (const m of changes) safely(() => sub.changed?.(m));
      },
      (e: unknown) => log.warn({ room: room.name, err: String(e) }, 'could not read the changes a subscriber missed'),
    );
  }

  function serve(room: Room, sub: Subscriber, opts: JoinOptions): void {
    const served = serveHistory(room, sub, opts);
    if (served) void served.then(() => sendChanges(room, sub, opts.changedSince));
    else sendChanges(room, sub, opts.changedSince);
  }

  /** Sends the subscriber its history; a promise when that needs the database first. */
  function serveHistory(room: Room, sub: Subscriber, { since, have }: JoinOptions): Promise<void> | undefined {
    const st = room.subs.get(sub);
    if (!st) return undefined;
    if (since === undefined) {
      st.started = true;
      safely(() => sub.start(room.window.slice(), false));
      return undefined;
    }
    const held = new Set(have);
    held.add(since);
    const missing = (m: Message) => !held.has(m.id);
    // What the subscriber holds and the room has not delivered yet must not come twice.
    const skipHeld = () => {
      for (const id of held) if (!room.seen.has(id)) st.skip.add(id);
      st.skipUntil = Date.now() + skipForMs;
    };
    const anchorMs = room.seen.get(since);
    if (anchorMs !== undefined && windowCovers(room, anchorMs - reorderWindowMs)) {
      const from = anchorMs - reorderWindowMs;
      skipHeld();
      st.started = true;
      const missed = room.window.filter((m) => m.sent.getTime() >= from && missing(m));
      safely(() => sub.start(missed, true));
      return undefined;
    }
    // Further behind than the window: read what it may have missed from the database while
    // live messages wait in its buffer, then send both, each once.
    st.buffer = [];
    return (async () => {
      let missed: Message[] | undefined;
      try {
        const anchor = await store.get(since);
        if (anchor && anchor.room === room.name) {
          const from = new Date(anchor.sent.getTime() - reorderWindowMs);
          const found = await store.range(room.name, from, maxResume + held.size + 1);
          if (found.length <= maxResume + held.size) missed = found;
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
      skipHeld();
      const ids = new Set(missed.map((m) => m.id));
      // What the database showed before the feed did will come through the feed later.
      for (const m of missed) if (!room.seen.has(m.id)) st.skip.add(m.id);
      const all = [...missed, ...buffered.filter((m) => !ids.has(m.id))].filter(missing).sort(compareMessages);
      safely(() => sub.start(all, true));
    })();
  }

  /** The feed is ready for the first time: the window is read, and the joins waiting served. */
  async function fill(room: Room): Promise<void> {
    const latest = await store.latest(room.name, historyLimit);
    room.window = [];
    room.complete = latest.length < historyLimit;
    for (const m of latest) if (remember(room, m)) place(room, m);
    room.ready = true;
    for (const { sub, opts: o } of room.pending.splice(0)) serve(room, sub, o);
  }

  /** The feed reopened: what was written while it was down is read and delivered. */
  async function backfill(room: Room): Promise<void> {
    const from = new Date(room.newest ? room.newest.sent.getTime() - reorderWindowMs : 0);
    const gap = await store.range(room.name, from, maxResume + 1);
    if (room.closed) return;
    // What changed meanwhile (edits, deletions, reactions), read before the gap is applied so
    // that the mark is the one from before the gap.
    const changesFrom = new Date((room.changeMark ?? Date.now()) - reorderWindowMs);
    const changes = await store.changedSince(room.name, changesFrom, maxResume);
    if (room.closed) return;
    const newState = new Map(changes.map((m) => [m.id, m]));
    room.window = room.window.map((w) => newState.get(w.id) ?? w);
    if (gap.length <= maxResume) {
      let n = 0;
      for (const m of gap) {
        if (room.seen.has(m.id)) continue;
        arrive(room, m, false);
        n++;
      }
      for (const m of changes) broadcastChange(room, m);
      metrics.feedReopened('backfilled', n);
      log.info({ room: room.name, backfilled: n }, 'room feed reopened');
      return;
    }
    // Too much was written meanwhile to send it all: start the room over from fresh history.
    const latest = await store.latest(room.name, historyLimit);
    if (room.closed) return;
    const unseen = latest.filter((m) => !room.seen.has(m.id));
    room.window = [];
    room.complete = latest.length < historyLimit;
    room.seen.clear();
    room.newest = undefined;
    for (const m of latest) if (remember(room, m)) place(room, m);
    for (const [sub, st] of room.subs) {
      if (!st.started) continue;
      st.skip.clear();
      safely(() => sub.restart(room.window.slice(), unseen));
    }
    metrics.feedReopened('restarted', unseen.length);
    log.warn({ room: room.name, maxResume }, 'room feed reopened after a long gap; subscribers restarted from fresh history');
  }

  /** The first open failed: every waiting join is told, and the room is let go. */
  function failPending(room: Room, reason: string): void {
    for (const { sub } of room.pending.splice(0)) {
      room.subs.delete(sub);
      safely(() => sub.fail(reason));
    }
    if (room.subs.size === 0) shut(room);
  }

  async function run(room: Room): Promise<void> {
    let attempt = 0;
    while (!room.closed) {
      try {
        const cursor = await store.changes(room.name);
        if (room.closed) {
          await cursor.close();
          return;
        }
        room.cursor = cursor;
        let live = false;
        // While fill() or backfill() reads, the feed's changes wait in the cursor.
        for await (const ev of cursor) {
          if (ev.kind === 'change') {
            if (live) apply(room, ev.oldVal, ev.newVal);
          } else if (ev.state === 'ready' && !live) {
            if (room.ready) await backfill(room);
            else await fill(room);
            if (room.closed) break;
            live = true;
            attempt = 0;
          }
        }
        if (!room.closed) log.warn({ room: room.name }, 'room feed ended; reopening');
      } catch (e) {
        if (!room.closed) {
          log.warn({ room: room.name, err: String(e) }, 'room feed failed; reopening');
          if (!room.ready) failPending(room, 'the room could not be opened: the database did not answer');
        }
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
      complete: false,
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
    if (rooms.get(room.name) === room) rooms.delete(room.name);
    void room.cursor?.close().catch(() => undefined);
  }

  return {
    join(name, sub, o = {}) {
      const room = rooms.get(name) ?? open(name);
      room.subs.set(sub, { started: false, skip: new Set(), skipUntil: 0 });
      if (room.ready) serve(room, sub, o);
      else room.pending.push({ sub, opts: o });
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
      return { rooms: rooms.size, subscribers, openFeeds, lateBeyondWindow };
    },
    async close() {
      for (const room of [...rooms.values()]) shut(room);
      await Promise.all(running);
    },
  };
}
