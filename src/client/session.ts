// The client side of the socket protocol (version 2), for every client we write: the load
// generator, the tests and the page. Plain logic, no DOM and no Node: it is handed a function
// that writes a frame, and is told what arrives and when the connection opens.
//
// It keeps what a client must get right across reconnects:
// - a room's messages in the one room order, each once, a late one put in its place;
// - a resume that asks for everything that may have been missed (from the reorder window
//   before the newest message held) and lists what is held, so nothing comes twice;
// - sends with ids chosen here, resent with the same id until acknowledged, so a message is
//   stored once whatever happens to the connection;
// - changes (edits, deletions, reactions) applied by their `updated` time, newest wins, and
//   asked for again on a resume from the newest change held, so a client that was away
//   comes back to the state a fresh load shows.
import { compareWire, inThreadOnly, isNewerState, type OutboundFrame, type WireMessage } from '../chat/wire.js';

/** How many held ids a resume lists at most (the server's limit). */
export const MAX_HAVE = 1000;

/** One room's messages in room order, each once, each in its newest known state. */
export class RoomHistory {
  private readonly list: WireMessage[] = [];
  private readonly ids = new Set<string>();
  /** the newest `updated` among the messages held (ISO), for a resume's changedSince */
  private newestChange: string | undefined;

  private noteChange(m: WireMessage): void {
    if (m.updated !== undefined && (this.newestChange === undefined || Date.parse(m.updated) > Date.parse(this.newestChange))) this.newestChange = m.updated;
  }

  /** Replaces a held message by a newer state of it; returns its index, or -1 (not held, or
   *  not newer than what is held). */
  change(m: WireMessage): number {
    if (!this.ids.has(m.id)) return -1;
    const i = this.list.findIndex((x) => x.id === m.id);
    if (i < 0 || !isNewerState(this.list[i], m)) return -1;
    this.list[i] = m;
    this.noteChange(m);
    return i;
  }

  get messages(): readonly WireMessage[] {
    return this.list;
  }

  has(id: string): boolean {
    return this.ids.has(id);
  }

  /** Puts a message in its place; returns its index, or -1 when it is already held. */
  add(m: WireMessage): number {
    if (this.ids.has(m.id)) return -1;
    this.ids.add(m.id);
    this.noteChange(m);
    const list = this.list;
    let lo = 0;
    let hi = list.length;
    // Nearly always the newest: look at the end first.
    if (hi === 0 || compareWire(list[hi - 1], m) < 0) lo = hi;
    else {
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (compareWire(list[mid], m) < 0) lo = mid + 1;
        else hi = mid;
      }
    }
    list.splice(lo, 0, m);
    return lo;
  }

  clear(): void {
    this.list.length = 0;
    this.ids.clear();
    this.newestChange = undefined;
  }

  /** The joinRoom fields of a resume: the newest message held, and the ids held from
   *  `windowMs` before it on (the newest MAX_HAVE of them). */
  resume(windowMs: number): { since?: string; have?: string[]; changedSince?: string } {
    const newest = this.list.at(-1);
    if (!newest) return {};
    // Changes since the newest one held, or, when none is held, since the oldest message held.
    const changedSince = this.newestChange ?? this.list[0].sent;
    const from = Date.parse(newest.sent) - windowMs;
    const have: string[] = [];
    for (let i = this.list.length - 2; i >= 0 && have.length < MAX_HAVE; i--) {
      const m = this.list[i];
      if (Date.parse(m.sent) < from) break;
      have.push(m.id);
    }
    return { since: newest.id, have, changedSince };
  }
}

export interface PendingSend {
  readonly id: string;
  readonly room: string;
  readonly body: string;
  /** a reply in the thread of this message (also shown in the room with alsoRoom) */
  readonly thread?: string;
  readonly alsoRoom?: boolean;
  /** refused for good (a bad frame, a taken id): not resent until retry() */
  failed?: { code: string; message: string };
}

export interface SessionEvents {
  /** a message entered the room's history at `index`; `live` unless it came with a join */
  message?(m: WireMessage, index: number, live: boolean): void;
  /** a reply kept in its thread arrived (it is not part of the room's history) */
  reply?(m: WireMessage): void;
  /** such a reply changed (edited, deleted, reacted to) */
  replyChanged?(m: WireMessage): void;
  /** a held message changed (edited, deleted, reacted to): its new state, at `index` */
  changed?(m: WireMessage, index: number): void;
  /** the room's history was replaced by fresh history (a first join, or a gap too long) */
  reset?(room: string): void;
  /** the history of a join arrived */
  joined?(room: string, resumed: boolean): void;
  /** a send is known to be stored: acknowledged, or its message came through the room first */
  acked?(p: PendingSend, id: string): void;
  /** a send was refused for good */
  failed?(p: PendingSend): void;
  /** any error frame */
  error?(f: Extract<OutboundFrame, { type: 'error' }>): void;
}

export interface SessionOptions {
  /** writes a frame on the current connection, if any */
  write(frame: unknown): void;
  events?: SessionEvents;
  /** the author shown on this client's messages */
  author?: () => { name: string };
  newId?: () => string;
  /** waits between resends of one message the server could not store (ms) */
  retry?: { min: number; max: number };
}

/** Waits before a send the server could not store goes again, and before a join it could
 *  not answer is asked again (ms): doubling from min up to max. */
const DEFAULT_RETRY = { min: 250, max: 8000 };

export class ClientSession {
  /** the room joined (or being joined) */
  room: string | undefined;
  history = new RoomHistory();
  readonly pending = new Map<string, PendingSend>();
  /** learned from the server's hello; until then RethinkDB-cluster-sized */
  reorderWindowMs = 5000;
  private open = false;
  private readonly retryAt = new Map<string, { attempt: number; timer?: ReturnType<typeof setTimeout> }>();

  constructor(private readonly opts: SessionOptions) {}

  /** The connection (re)opened: say hello, rejoin the room from where we are, resend. */
  connected(): void {
    this.open = true;
    this.opts.write({ type: 'hello', protocol: 2 });
    if (this.room !== undefined) this.writeJoin(this.room, this.history.resume(this.reorderWindowMs));
    for (const p of this.pending.values()) if (!p.failed) this.writeSend(p);
  }

  disconnected(): void {
    this.open = false;
  }

  /** Joins a room, leaving the one before; its history starts afresh. */
  join(room: string): void {
    if (room !== this.room) {
      this.room = room;
      this.history = new RoomHistory();
    }
    if (this.open) this.writeJoin(room, {});
  }

  /** Sends a message (a reply, with `thread`); it stays pending (and is resent on
   *  reconnect) until acknowledged. */
  send(body: string, id = (this.opts.newId ?? (() => crypto.randomUUID()))(), reply: { thread?: string; alsoRoom?: boolean } = {}): PendingSend {
    if (this.room === undefined) throw new Error('join a room first');
    const p: PendingSend = { id, room: this.room, body, ...(reply.thread !== undefined ? { thread: reply.thread, alsoRoom: reply.alsoRoom === true } : {}) };
    this.pending.set(id, p);
    if (this.open) this.writeSend(p);
    return p;
  }

  /** Sends a failed message again. */
  retry(id: string): void {
    const p = this.pending.get(id);
    if (!p?.failed) return;
    const { failed: _failed, ...again } = p;
    this.pending.set(id, again);
    if (this.open) this.writeSend(again);
  }

  /** A frame from the server. */
  receive(f: OutboundFrame): void {
    const ev = this.opts.events ?? {};
    switch (f.type) {
      case 'hello':
        this.reorderWindowMs = f.reorderWindowMs;
        return;
      case 'joined': {
        if (f.room !== this.room) return;
        if (!f.resumed) {
          this.history.clear();
          ev.reset?.(f.room);
        }
        for (const m of f.messages) this.add(m, false);
        this.retryAt.delete(`room:${f.room}`);
        ev.joined?.(f.room, f.resumed);
        return;
      }
      case 'deliverMessage':
        if (f.message.room !== this.room) return;
        if (inThreadOnly(f.message)) {
          const own = this.pending.get(f.message.id);
          if (own) this.settle(own, f.message.id);
          ev.reply?.(f.message);
          return;
        }
        this.add(f.message, true);
        return;
      case 'messageChanged': {
        if (f.message.room !== this.room) return;
        if (inThreadOnly(f.message)) return ev.replyChanged?.(f.message);
        const index = this.history.change(f.message);
        if (index >= 0) ev.changed?.(this.history.messages[index], index);
        return;
      }
      case 'ack': {
        const p = f.clientId === undefined ? undefined : this.pending.get(f.clientId);
        if (p) this.settle(p, f.id);
        return;
      }
      case 'error':
        ev.error?.(f);
        if (f.clientId !== undefined) this.refused(f.clientId, f);
        else if (f.room !== undefined && f.room === this.room && f.code === 'unavailable') this.rejoinLater(f.room);
        return;
    }
  }

  private add(m: WireMessage, live: boolean): void {
    const index = this.history.add(m);
    if (index < 0) return;
    // Our own message arrived through the room: it is stored, whatever became of its ack.
    const own = this.pending.get(m.id);
    if (own) this.settle(own, m.id);
    this.opts.events?.message?.(m, index, live);
  }

  private refused(id: string, f: Extract<OutboundFrame, { type: 'error' }>): void {
    const p = this.pending.get(id);
    if (!p) return;
    if (f.code === 'unavailable' || f.code === 'rate_limited') {
      // Not stored: the same frame again, later (the id makes a double store impossible).
      const r = this.retryAt.get(id) ?? { attempt: 0 };
      clearTimeout(r.timer);
      const backoff = this.opts.retry ?? DEFAULT_RETRY;
      const wait = Math.max(f.retryAfterMs ?? 0, Math.min(backoff.max, backoff.min * 2 ** r.attempt++));
      r.timer = setTimeout(() => {
        const still = this.pending.get(id);
        if (still && !still.failed && this.open) this.writeSend(still);
      }, wait);
      this.retryAt.set(id, r);
      return;
    }
    const failed = { ...p, failed: { code: f.code, message: f.message } };
    this.pending.set(id, failed);
    this.opts.events?.failed?.(failed);
  }

  private rejoinLater(room: string): void {
    const r = this.retryAt.get(`room:${room}`) ?? { attempt: 0 };
    clearTimeout(r.timer);
    const backoff = this.opts.retry ?? DEFAULT_RETRY;
    r.timer = setTimeout(() => {
      if (this.room === room && this.open) this.writeJoin(room, this.history.resume(this.reorderWindowMs));
    }, Math.min(backoff.max, backoff.min * 2 ** r.attempt++));
    this.retryAt.set(`room:${room}`, r);
  }

  private settle(p: PendingSend, storedAs: string): void {
    this.pending.delete(p.id);
    const r = this.retryAt.get(p.id);
    if (r) clearTimeout(r.timer);
    this.retryAt.delete(p.id);
    this.opts.events?.acked?.(p, storedAs);
  }

  private writeJoin(room: string, resume: { since?: string; have?: string[]; changedSince?: string }): void {
    this.opts.write(resume.since === undefined ? { type: 'joinRoom', room } : { type: 'joinRoom', room, ...resume });
  }

  private writeSend(p: PendingSend): void {
    const author = this.opts.author?.() ?? { name: 'Anonymous' };
    const reply = p.thread !== undefined ? { thread: p.thread, alsoRoom: p.alsoRoom === true } : {};
    this.opts.write({ type: 'createMessage', message: { id: p.id, room: p.room, body: p.body, author, ...reply } });
  }

  /** Stops the timers (the client is going away). */
  close(): void {
    for (const r of this.retryAt.values()) clearTimeout(r.timer);
    this.retryAt.clear();
  }
}
