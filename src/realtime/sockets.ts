// The socket side: Primus over engine.io on the app's HTTP server. Every inbound frame is
// rate-limited, then parsed by the protocol schema, then checked by the access module, then
// handled. A bad frame gets an error reply and the socket stays usable.
import { randomUUID } from 'node:crypto';
import { ServerResponse, type IncomingMessage, type Server } from 'node:http';
import { parse as parseCookies } from 'cookie';
import { Duplex } from 'node:stream';
import Primus from 'primus';
import type { Logger } from 'pino';
import { ANONYMOUS, isRoomId, type Access, type Checked, type Viewer } from '../chat/access.js';
import { clientIdOf, parseFrame, toWire, type InboundFrame, type OutboundFrame, type Protocol } from '../chat/protocol.js';
import type { Message } from '../chat/message.js';
import { IdConflictError, WriteTimeoutError, type MessageStore } from '../db/messages.js';
import type { Accounts } from '../accounts/service.js';
import type { User } from '../accounts/schema.js';
import type { Room } from '../rooms/schema.js';
import type { Counts, RoomStore } from '../rooms/store.js';
import { notifyDefault, type Member } from '../rooms/schema.js';
import type { WireLevel, WireRoom } from '../chat/wire.js';
import type { AccountStore } from '../accounts/store.js';
import { PostRefused, type Posting } from '../chat/posting.js';
import type { Presence, PresenceState, SocketPresence } from './presence.js';
import type { Signals, TypingSignal } from './signals.js';
import { prepareFrame, writePrepared, type PreparedFrame } from './prepared.js';
import { createWatchHub, type Watcher } from './watch.js';
import { TokenBucket } from './rate-limit.js';
import type { RoomFeeds, Subscriber } from './room-feeds.js';

export interface RealtimeOptions {
  feeds: RoomFeeds;
  store: MessageStore;
  log: Logger;
  rateLimit: { burst: number; perSecond: number };
  /** told to protocol-2 clients in hello: the span of `have` when they resume */
  reorderWindowMs: number;
  /** how long the store tries a message again before giving up (told in the error) */
  sendRetryMs: number;
  /** a socket's identity comes from the session cookie of its handshake */
  accounts: Accounts;
  /** every join and every post is asked here */
  access: Access;
  /** rooms and memberships: what a watching socket follows */
  rooms: RoomStore;
  /** a signed-in user's message in a room: replies, mentions, read position */
  posting: Posting;
  /** the workspace's settings (what a member who chose nothing is told of) */
  users: Pick<AccountStore, 'settings'>;
  /** who is online, on every process */
  presence: Presence;
  /** makes the typing signals of every process, delivered through `signalled` */
  signals: (deliver: (s: TypingSignal) => void) => Signals;
}

/** A socket's typing signals for one room go out at most this often. */
const TYPING_EVERY_MS = 2000;

/** The most rooms one socket follows. */
const MAX_WATCHED = 500;

/** Who a socket is, settled at its handshake. */
interface SocketIdentity {
  user?: User;
  sessionId?: string;
}

const SESSION_COOKIE = 'sid';

export interface Realtime {
  readonly primus: Primus;
  /** the Primus client library, for the page */
  readonly library: string;
  connections(): number;
  /** open sockets by engine.io transport ('websocket', 'polling') */
  transports(): Record<string, number>;
  /** Closes the sockets of a session that ended (on any process). */
  revoke(sessionId: string): void;
  /** Checks every open socket's session again (after the revocation feed had a gap). */
  recheckSessions(): Promise<void>;
  /** resolves once the membership feed is open */
  readonly ready: Promise<void>;
  /** Ends every socket telling its client to reconnect (elsewhere), and closes the HTTP server. */
  close(): Promise<void>;
}

/** Larger frames close the connection (engine.io's limit); smaller bad ones get an error reply. */
const MAX_FRAME_BYTES = 64 * 1024;

export function attachRealtime(server: Server, opts: RealtimeOptions): Realtime {
  const { feeds, store, log } = opts;
  // WebSocket upgrades for any other path. Registered before Primus, which keeps it and calls
  // it for the requests that are not its own; without it such a socket is never answered.
  server.on('upgrade', (_req: unknown, socket: Duplex) => {
    socket.on('error', () => undefined);
    socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
  });
  const primus = new Primus(server, {
    transformer: 'engine.io',
    parser: 'JSON',
    pathname: '/primus',
    maxLength: MAX_FRAME_BYTES,
    // Primus's own heartbeat pings every socket from one timer, in one loop: with 10,000
    // sockets that is a stall of hundreds of milliseconds every interval. engine.io already
    // pings each socket on its own timer (and closes dead ones, which ends their sparks), so
    // Primus's is off; the client library it serves then stops expecting Primus pings.
    pingInterval: false,
  });

  // Primus answers polling requests with Access-Control-Allow-Origin set to whatever Origin
  // came, with credentials: any site could read a user's socket. Only this origin may.
  primus.remove('cors');
  // The client library is served by the app, with the app's security headers.
  primus.remove('primus.js');
  primus.authorize((req: IncomingMessage & { identity?: SocketIdentity }, done: (err?: { statusCode: number; message: string }) => void) => {
    if (!sameOrigin(req)) return done({ statusCode: 403, message: 'this socket must be opened from the page of this server' });
    if (req.identity) return done();
    const token = req.headers.cookie ? parseCookies(req.headers.cookie)[SESSION_COOKIE] : undefined;
    if (!token) {
      req.identity = {};
      return done();
    }
    opts.accounts.resolve(token).then(
      (found) => {
        req.identity = found ? { user: found.user, sessionId: found.session.id } : {};
        done();
      },
      (e: unknown) => {
        log.warn({ err: String(e) }, 'could not check a socket session');
        done({ statusCode: 503, message: 'the server cannot check sessions right now' });
      },
    );
  });

  guardPrimusHandlers(server, log);

  /** the signed-in sockets of this process in each room (watched or joined), for signals */
  const inRoom = new Map<string, Set<{ userId: string; send: (f: OutboundFrame) => void }>>();
  const enter = (roomId: string, who: { userId: string; send: (f: OutboundFrame) => void }) => {
    const set = inRoom.get(roomId) ?? new Set();
    set.add(who);
    inRoom.set(roomId, set);
  };
  const exit = (roomId: string, who: { userId: string; send: (f: OutboundFrame) => void }) => {
    const set = inRoom.get(roomId);
    set?.delete(who);
    if (set?.size === 0) inRoom.delete(roomId);
  };
  const signals = opts.signals((s) => {
    for (const who of inRoom.get(s.room) ?? []) if (who.userId !== s.userId) who.send({ type: 'typing', room: s.room, userId: s.userId, name: s.name });
  });

  /** open sockets by session, to close them when the session ends */
  const bySession = new Map<string, Set<Primus.Spark>>();
  const watch = createWatchHub({ rooms: opts.rooms, log, membersChanged: (roomId) => memberCounts.delete(roomId) });

  // A channel's size decides what a member who chose nothing is told of: a room's count is
  // kept until the membership feed says someone joined or left it (or for a minute after a
  // gap); the workspace's threshold is read for every reply.
  const memberCounts = new Map<string, { n: number; at: number }>();
  async function defaultLevel(room: Room, bigRoom: () => Promise<number>): Promise<WireLevel> {
    if (room.kind !== 'channel') return 'all';
    const now = Date.now();
    let count = memberCounts.get(room.id);
    if (!count || now - count.at > 60_000) {
      count = { n: await opts.rooms.memberCount(room.id), at: now };
      if (memberCounts.size > 10_000) memberCounts.clear();
      memberCounts.set(room.id, count);
    }
    return notifyDefault(room.kind, count.n, await bigRoom());
  }
  /** The workspace's threshold, read once for all the rooms of one reply. */
  const threshold = () => {
    let n: Promise<number> | undefined;
    return () => (n ??= opts.users.settings().then((s) => s.bigRoomMembers));
  };

  async function wireRoom(room: Room, member: Member | undefined, counts: Counts, bigRoom = threshold()): Promise<WireRoom> {
    const level = member?.level ?? (await defaultLevel(room, bigRoom));
    const wire: WireRoom = { id: room.id, kind: room.kind, name: room.name, topic: room.topic, archived: room.archived, announcement: room.announcement, unread: counts.unread, mentions: counts.mentions, level, levelChosen: member?.level !== undefined };
    if (member?.readId) wire.readId = member.readId;
    return wire;
  }

  /** The sidebar's view of one room for a user, read afresh. */
  async function readRoom(room: Room, userId: string): Promise<WireRoom> {
    const member = await opts.rooms.member(room.id, userId);
    return wireRoom(room, member, await opts.rooms.counts(room.id, member));
  }

  // A room message is encoded once per protocol and the same frame written to every socket
  // in the room. The room's feed delivers a message to all its sockets in one synchronous
  // loop, so the frames of the last message delivered are all there is to keep.
  let last: { message: Message; frames: { 1?: PreparedFrame; 2?: PreparedFrame } } | undefined;
  function delivery(message: Message, protocol: Protocol): PreparedFrame {
    if (last?.message !== message) last = { message, frames: {} };
    return (last.frames[protocol] ??= prepareFrame({ type: 'deliverMessage', message: toWire(message, protocol) }));
  }

  primus.on('connection', (spark) => {
    // Every line this socket logs names it.
    const log = opts.log.child({ socket: spark.id });
    const identity: SocketIdentity = (spark.request as { identity?: SocketIdentity }).identity ?? {};
    const viewer: Viewer = identity.user ? { user: identity.user } : ANONYMOUS;
    /** joins in the order they came: a later one wins over an earlier one still being checked */
    let joinSeq = 0;
    if (identity.sessionId) {
      const set = bySession.get(identity.sessionId) ?? new Set();
      set.add(spark);
      bySession.set(identity.sessionId, set);
    }
    const bucket = new TokenBucket(opts.rateLimit.burst, opts.rateLimit.perSecond);
    let protocol: Protocol = 1;
    let joined: { room: string; sub: Subscriber; active: boolean } | undefined;

    const send = (frame: OutboundFrame) => void spark.write(frame);
    const here = identity.user ? { userId: identity.user.id, send } : undefined;
    const presence: SocketPresence | undefined = identity.user ? opts.presence.attach(identity.user.id) : undefined;
    let unwatchPresence: (() => void) | undefined;
    const lastTyping = new Map<string, number>();

    // ---- watching every room of the user ------------------------------------------------
    const watched = new Map<string, { sub: Subscriber; active: boolean; isStarted: boolean; started: Promise<void> }>();
    /** the rooms this socket was told it is in (a snapshot, then roomAdded and roomRemoved) */
    const told = new Set<string>();
    /** rooms whose feed could not open, waiting to be tried again */
    const retries = new Set<NodeJS.Timeout>();
    let ended = false;
    let watcher: Watcher | undefined;
    const myId = identity.user?.id;
    /** a system message saying this user was removed: from here on, nothing of the room */
    const removesMe = (m: Message) => m.event?.type === 'member_removed' && m.event.userId === myId;

    function unwatch(roomId: string, tell: boolean): void {
      const w = watched.get(roomId);
      if (w) {
        w.active = false;
        watched.delete(roomId);
        feeds.leave(roomId, w.sub);
        if (here) exit(roomId, here);
      }
      if (joined?.room === roomId) leave();
      if (tell) {
        told.delete(roomId);
        send({ type: 'roomRemoved', room: roomId });
      }
    }

    function watchRoom(roomId: string, resume: { since?: string; have?: string[]; changedSince?: string } | undefined, attempt = 0): void {
      if (watched.has(roomId) || watched.size >= MAX_WATCHED) return;
      let started = () => undefined as void;
      const entry = {
        active: true,
        isStarted: false,
        /** resolves once the room's feed delivers to this socket (or could not open) */
        started: new Promise<void>((resolve) => (started = resolve)),
        sub: {
          start(history, resumed) {
            entry.isStarted = true;
            started();
            if (entry.active && resumed && resume?.since) send({ type: 'joined', room: roomId, resumed: true, messages: history.map((m) => toWire(m, 2)) });
          },
          deliver(m) {
            if (!entry.active) return;
            if (removesMe(m)) return unwatch(roomId, true);
            writePrepared(spark, delivery(m, 2));
          },
          restart(history) {
            if (entry.active) send({ type: 'joined', room: roomId, resumed: false, messages: history.map((m) => toWire(m, 2)) });
          },
          changed(m) {
            if (entry.active) send({ type: 'messageChanged', message: toWire(m, 2) });
          },
          fail() {
            started();
            // The room's feed could not open (the database is away): tried again later,
            // less and less often, while the socket is open and its user still in the room.
            entry.active = false;
            watched.delete(roomId);
            if (here) exit(roomId, here);
            const wait = Math.min(30_000, 500 * 2 ** attempt);
            const timer = setTimeout(() => {
              retries.delete(timer);
              if (!ended && told.has(roomId)) watchRoom(roomId, resume, attempt + 1);
            }, wait);
            retries.add(timer);
          },
        } satisfies Subscriber,
      };
      watched.set(roomId, entry);
      if (here) enter(roomId, here);
      feeds.join(roomId, entry.sub, resume ?? {});
    }

    async function startWatching(resume: Record<string, { since?: string; have?: string[]; changedSince?: string }>): Promise<void> {
      const user = identity.user;
      if (!user) return send({ type: 'error', code: 'unauthenticated', message: 'log in to watch your rooms' });
      if (!watcher) {
        watcher = {
          userId: user.id,
          added: (member) => {
            void opts.rooms.room(member.roomId).then(async (room) => {
              if (!room || watched.has(room.id)) return;
              watchRoom(room.id, undefined);
              const wire = await readRoom(room, user.id);
              told.add(room.id);
              send({ type: 'roomAdded', room: wire });
            }).catch((e: unknown) => log.warn({ err: String(e) }, 'could not follow a new room'));
          },
          removed: (roomId) => {
            if (watched.has(roomId)) unwatch(roomId, true);
          },
          read: (member) => {
            void opts.rooms.counts(member.roomId, member).then((c) => send({ type: 'read', room: member.roomId, id: member.readId ?? '', unread: c.unread, mentions: c.mentions })).catch(() => undefined);
          },
          level: (member) => {
            if (!told.has(member.roomId)) return;
            void opts.rooms.room(member.roomId).then(async (room) => {
              if (room) send({ type: 'roomUpdated', room: await readRoom(room, user.id) });
            }).catch(() => undefined);
          },
          resync: () => {
            void snapshot(user, {}).catch((e: unknown) => log.warn({ err: String(e) }, 'could not read the rooms again after a gap'));
          },
        };
        watch.add(watcher);
      }
      await snapshot(user, resume);
    }

    /** Follows every room of the user (and no other), and sends the sidebar's snapshot. */
    async function snapshot(user: User, resume: Record<string, { since?: string; have?: string[]; changedSince?: string }>): Promise<void> {
      // The rooms first (an index read), then their feeds, then the counts: those of when
      // every room's feed delivers here, so a message stored after them comes live. A room
      // whose feed opens now (none is open yet on this process) is waited for, a few seconds
      // at most.
      const rooms = (await opts.rooms.sidebar(user.id, { counts: false })).slice(0, MAX_WATCHED);
      // Closed meanwhile: nothing may be left subscribed in its name.
      if (ended) return;
      const now = new Set(rooms.map((x) => x.room.id));
      for (const id of new Set([...watched.keys(), ...told])) if (!now.has(id)) unwatch(id, true);
      for (const x of rooms) watchRoom(x.room.id, resume[x.room.id]);
      const opening = rooms.map((x) => watched.get(x.room.id)).filter((w) => w !== undefined && !w.isStarted).map((w) => w!.started);
      if (opening.length > 0) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([Promise.all(opening), new Promise<void>((resolve) => (timer = setTimeout(resolve, 5000)))]);
        clearTimeout(timer);
        if (ended) return;
      }
      const mine = (await opts.rooms.sidebar(user.id)).slice(0, MAX_WATCHED).filter((x) => now.has(x.room.id));
      if (ended) return;
      const bigRoom = threshold();
      const wire = await Promise.all(mine.map((x) => wireRoom(x.room, x.member, x, bigRoom)));
      told.clear();
      for (const room of wire) told.add(room.id);
      send({ type: 'rooms', rooms: wire });
    }

    async function markRead(roomId: string, id: string): Promise<void> {
      const user = identity.user;
      if (!user) return send({ type: 'error', code: 'unauthenticated', message: 'log in to keep read positions', room: roomId });
      const may = await opts.access.check(viewer, roomId, 'read');
      if (!may.ok || !may.isMember) return send({ type: 'error', code: may.ok ? 'forbidden' : may.code, message: may.ok ? 'you are not in this room' : may.reason, room: roomId });
      const m = await store.get(id);
      if (!m || m.room !== roomId) return send({ type: 'error', code: 'not_found', message: 'no such message in that room', room: roomId });
      await opts.rooms.setRead(roomId, user.id, m.sent, m.id);
    }

    function leave(): void {
      joinSeq++; // a join still being checked is dropped
      if (!joined) return;
      joined.active = false;
      feeds.leave(joined.room, joined.sub);
      if (here && !watched.has(joined.room)) exit(joined.room, here);
      joined = undefined;
    }

    /** Asks the access module, at once for an open room, after a read of the room otherwise. */
    function asked(room: string, action: 'read' | 'post', then: (c: Checked | { ok: false; code: 'unavailable'; reason: string }) => void): void {
      const now = opts.access.checkNow(viewer, room, action);
      if (now) return then(now);
      opts.access.check(viewer, room, action).then(then, (e: unknown) => {
        // The database failed, not the rule: the client tries again (not_found is final).
        log.warn({ err: String(e) }, 'could not check access to a room');
        then({ ok: false, code: 'unavailable', reason: 'the room could not be checked just now; try again' });
      });
    }

    function join(room: string, since: string | undefined, have: string[] | undefined, changedSince: string | undefined): void {
      const seq = ++joinSeq;
      asked(room, 'read', (may) => {
        if (seq !== joinSeq) return;
        if (!may.ok) return send({ type: 'error', code: may.code, message: may.reason, room });
        if (watched.has(room)) {
          // Watched already: its messages come; this answers with its history only.
          void store.latest(room, 100).then(
            (history) => send({ type: 'joined', room, resumed: false, messages: history.map((m) => toWire(m, 2)) }),
            () => send({ type: 'error', code: 'unavailable', room, message: 'the history could not be read; join again' }),
          );
          return;
        }
        subscribe(room, since, have, changedSince);
      });
    }

    function subscribe(room: string, since: string | undefined, have: string[] | undefined, changedSince: string | undefined): void {
      const previous = joined;
      const entry = {
        room,
        active: true,
        sub: {
          start(history, resumed) {
            if (!entry.active) return;
            if (protocol === 2) send({ type: 'joined', room, resumed, messages: history.map((m) => toWire(m, 2)) });
            else for (const m of history) send({ type: 'deliverMessage', message: toWire(m, 1) });
          },
          deliver(m) {
            if (!entry.active) return;
            if (removesMe(m)) return unwatch(room, true);
            writePrepared(spark, delivery(m, protocol));
          },
          restart(history, unseen) {
            if (!entry.active) return;
            if (protocol === 2) send({ type: 'joined', room, resumed: false, messages: history.map((m) => toWire(m, 2)) });
            else for (const m of unseen) send({ type: 'deliverMessage', message: toWire(m, 1) });
          },
          changed(m) {
            if (entry.active && protocol === 2) send({ type: 'messageChanged', message: toWire(m, 2) });
          },
          fail(reason) {
            if (!entry.active) return;
            entry.active = false;
            if (joined === entry) joined = undefined;
            send({ type: 'error', code: 'unavailable', room, message: `${reason}; join again` });
          },
        } satisfies Subscriber,
      };
      joined = entry;
      if (here && !watched.has(room)) enter(room, here);
      feeds.join(room, entry.sub, { since, have, changedSince });
      // Left after joining, so that joining the same room again (the article's client does on
      // every keystroke) keeps its feed open and answers from memory.
      if (previous) {
        previous.active = false;
        feeds.leave(previous.room, previous.sub);
        if (here && !watched.has(previous.room)) exit(previous.room, here);
      }
    }

    // A socket's messages are checked and stored one after another, in the order it sent
    // them, so a message waiting for the database (a cluster electing a primary) is never
    // overtaken by the one sent after it. The frame rate limit bounds the queue.
    let sending: Promise<void> = Promise.resolve();
    function createMessage(m: Extract<InboundFrame, { type: 'createMessage' }>['message']): void {
      sending = sending.then(
        () =>
          new Promise<void>((done) => {
            asked(m.room, 'post', (may) => {
              if (!may.ok) {
                send({ type: 'error', code: may.code, message: may.reason, clientId: m.id });
                return done();
              }
              void store_(m, isRoomId(m.room) ? may.room : undefined).finally(done);
            });
          }),
      );
    }

    async function store_(m: Extract<InboundFrame, { type: 'createMessage' }>['message'], room: Room | undefined): Promise<void> {
      if (m.thread !== undefined && !(identity.user && room)) {
        send({ type: 'error', code: 'forbidden', message: 'replies in threads are for signed-in members of a room', clientId: m.id });
        return;
      }
      try {
        const id = m.id ?? randomUUID();
        // A signed-in user posts under their own name, whatever the frame says; in a room of
        // the team (not an open one), through posting: replies, mentions, read position.
        const user = identity.user;
        const { message } = user && room
          ? await opts.posting.post(user, room, { id, body: m.body, thread: m.thread, alsoRoom: m.alsoRoom })
          : await store.insert({ id, room: m.room, body: m.body, author: user ? { id: user.id, name: user.displayName } : m.author });
        if (protocol === 2) {
          send({ type: 'ack', clientId: m.id, id: message.id, room: message.room, sent: message.sent.toISOString() });
        }
      } catch (e) {
        if (e instanceof IdConflictError) {
          send({ type: 'error', code: 'id_conflict', message: 'that message id is taken; choose another', clientId: m.id });
        } else if (e instanceof PostRefused) {
          send({ type: 'error', code: e.code, message: e.message, clientId: m.id });
        } else {
          log.warn({ err: String(e) }, 'could not store a message');
          const why = e instanceof WriteTimeoutError ? `the database did not take it for ${Math.round(opts.sendRetryMs / 1000)} s` : 'the database failed';
          send({ type: 'error', code: 'unavailable', message: `the message was not stored (${why}); send it again`, clientId: m.id });
        }
      }
    }

    /** Tells this socket who of these people is online, then each change. A guest asks
     *  only about people who share a room with them; others are left out, as unknown ids. */
    async function askPresence(ids: string[]): Promise<void> {
      const user = identity.user;
      if (!user) return send({ type: 'error', code: 'unauthenticated', message: 'log in to see who is online' });
      let visible = [...new Set(ids)];
      if (user.role === 'guest') {
        const shared = await Promise.all(visible.map((id) => (id === user.id ? true : opts.rooms.share(user.id, id))));
        visible = visible.filter((_, i) => shared[i]);
      }
      if (ended) return;
      unwatchPresence?.();
      unwatchPresence = opts.presence.watch(visible, (id, state) => send({ type: 'presence', users: { [id]: state } }));
      const users: Record<string, PresenceState> = {};
      for (const id of visible) users[id] = opts.presence.stateOf(id);
      send({ type: 'presence', users });
    }

    function typing(roomId: string): void {
      const user = identity.user;
      if (!user || !isRoomId(roomId)) return;
      const now = Date.now();
      if (now - (lastTyping.get(roomId) ?? 0) < TYPING_EVERY_MS) return;
      lastTyping.set(roomId, now);
      asked(roomId, 'post', (may) => {
        if (!may.ok || !may.isMember) return;
        signals.typing({ room: roomId, userId: user.id, name: user.displayName }).catch((e: unknown) => log.debug({ err: String(e) }, 'could not signal typing'));
      });
    }

    spark.on('data', (data: unknown) => {
      const rate = bucket.take();
      if (!rate.ok) {
        return send({ type: 'error', code: 'rate_limited', message: 'too many messages; slow down', clientId: clientIdOf(data), retryAfterMs: rate.retryAfterMs });
      }
      const parsed = parseFrame(data);
      if (!parsed.ok) return send({ type: 'error', code: parsed.code, message: parsed.message, clientId: parsed.clientId });
      const frame = parsed.frame;
      switch (frame.type) {
        case 'hello':
          protocol = 2;
          return send({ type: 'hello', protocol: 2, reorderWindowMs: opts.reorderWindowMs });
        case 'joinRoom':
          return join(frame.room, frame.since, frame.have, frame.changedSince);
        case 'leaveRoom':
          return leave();
        case 'createMessage':
          return createMessage(frame.message);
        case 'watch':
          return void startWatching(frame.rooms ?? {}).catch((e: unknown) => {
            log.warn({ err: String(e) }, 'could not start watching');
            send({ type: 'error', code: 'unavailable', message: 'your rooms could not be read; watch again' });
          });
        case 'read':
          return void markRead(frame.room, frame.id).catch(() => send({ type: 'error', code: 'unavailable', message: 'the read position was not stored', room: frame.room }));
        case 'presence':
          return void askPresence(frame.users).catch(() => send({ type: 'error', code: 'unavailable', message: 'who is online could not be read; ask again' }));
        case 'away':
          return presence?.away(frame.away);
        case 'typing':
          return typing(frame.room);
      }
    });

    // Primus reports frames it cannot decode (not JSON) here.
    spark.on('error', (err: unknown) => {
      log.debug({ err: String(err) }, 'socket error');
      send({ type: 'error', code: 'bad_frame', message: 'frame is not valid JSON' });
    });

    spark.on('end', () => {
      ended = true;
      presence?.detach();
      unwatchPresence?.();
      for (const timer of retries) clearTimeout(timer);
      leave();
      for (const id of [...watched.keys()]) unwatch(id, false);
      if (watcher) watch.delete(watcher);
      if (identity.sessionId) {
        const set = bySession.get(identity.sessionId);
        set?.delete(spark);
        if (set?.size === 0) bySession.delete(identity.sessionId);
      }
    });
  });

  function revoke(sessionId: string): void {
    const sparks = bySession.get(sessionId);
    if (!sparks) return;
    bySession.delete(sessionId);
    for (const spark of sparks) {
      spark.write({ type: 'error', code: 'unauthenticated', message: 'your session ended; log in again' } satisfies OutboundFrame);
      spark.end(undefined, { reconnect: false });
    }
    log.info({ sockets: sparks.size }, 'closed the sockets of an ended session');
  }

  return {
    primus,
    library: primus.library(),
    connections: () => primus.connected,
    transports() {
      const by: Record<string, number> = {};
      primus.forEach((spark) => {
        const name = spark.socket.transport?.name ?? 'unknown';
        by[name] = (by[name] ?? 0) + 1;
      });
      return by;
    },
    revoke,
    async recheckSessions() {
      for (const [sessionId, sparks] of [...bySession]) {
        const token = [...sparks][0]?.request.headers.cookie;
        const still = token ? await opts.accounts.resolve(parseCookies(token)[SESSION_COOKIE]).catch(() => 'unknown' as const) : undefined;
        if (still === undefined || (still !== 'unknown' && still.session.id !== sessionId)) revoke(sessionId);
      }
    },
    ready: Promise.all([watch.ready, signals.ready]).then(() => undefined),
    close: async () => {
      await new Promise<void>((resolve) => {
        primus.destroy({ close: true, reconnect: true, timeout: 0 }, () => resolve());
      });
      await Promise.all([watch.stop(), signals.stop()]);
    },
  };
}

/**
 * True when a request has no Origin (not a browser, or a same-origin request that need not say)
 * or an Origin whose host is the one the request was sent to. A cross-site page's socket
 * carries its own Origin, and would otherwise ride on the user's cookies.
 */
function sameOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

/**
 * Primus puts itself first on the server's 'request' and 'upgrade' events and parses every
 * URL with url.parse, which throws on some malformed targets (`GET //%@x`): uncaught, that
 * ends the process. Its handlers are wrapped so that such a request gets a 400 instead.
 */
function guardPrimusHandlers(server: Server, log: Logger): void {
  const refuse = (target: unknown, err: unknown) => {
    log.debug({ err: String(err) }, 'refused a request Primus could not parse');
    if (target instanceof ServerResponse) {
      if (!target.headersSent) target.writeHead(400, { 'content-type': 'text/plain', connection: 'close' });
      target.end('Bad request\n');
    } else if (target instanceof Duplex) {
      target.on('error', () => undefined);
      target.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    }
  };
  for (const event of ['request', 'upgrade'] as const) {
    for (const listener of server.listeners(event) as Array<(...args: unknown[]) => void>) {
      server.off(event, listener);
      server.on(event, (...args: unknown[]) => {
        try {
          listener.apply(server, args);
        } catch (err) {
          refuse(args[1], err);
        }
      });
    }
  }
}
