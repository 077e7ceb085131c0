// The `--conversations` phase of `npm run bench`: what issue 11's features cost, on one app
// process, with signed-in users seeded straight into the database (bench/lib/team.ts):
// - a history page 500,000 messages deep in a room of 1,000,000 (GET ?before=), p50/p99,
//   beside the newest page;
// - the delay from an edit, a delete and a reaction (the API call) to its messageChanged at
//   each of 1,000 sockets watching the room, p99 (one clock: the bench process);
// - presence: the database writes it makes (counted on a changefeed of the presence table)
//   while 1,000 users connect, while each of their pages goes away and comes back once, and
//   while nothing changes;
// - catch-up: a user in 20 rooms away while 5 minutes of busy traffic (a message a second
//   in each room, a tenth of them edited) is written, then back: from the socket's open to
//   the last resumed history and the last change.
// Every step has a deadline; only 127.0.0.1 is contacted.
import { randomUUID } from 'node:crypto';
import Primus from 'primus';
import { r, type Connection } from 'rethinkdb-ts';
import type { OutboundFrame, WireMessage } from '../../src/chat/wire.js';
import { RoomHistory } from '../../src/client/session.js';
import { MESSAGES, PRESENCE } from '../../src/db/schema.js';
import { spawnDyno, withDeadline, type Db, type Dyno } from './procs.js';
import { roundSummary, Samples, summarize, table, type Summary } from './stats.js';
import { seed } from './team.js';
import type { TeamUser } from './team-worker.js';

const Socket = Primus.createSocket({ transformer: 'engine.io', parser: 'JSON', pathname: '/primus', pingInterval: false });

export interface ConversationsOptions {
  /** messages in the deep room (1,000,000) */
  deep: number;
  /** sockets watching the room that changes (1,000) */
  sockets: number;
  /** changes of each kind (edit, delete, reaction) */
  changes: number;
  /** rooms of the user who is away, and seconds of traffic missed */
  awayRooms: number;
  awaySeconds: number;
}

export interface ConversationsResult {
  deepRoom: { messages: number; fillSeconds: number; newestPageMs: Summary; pageAtHalfDepthMs: Summary };
  changeToSocketsMs: Record<'edit' | 'delete' | 'reaction', Summary>;
  presence: { users: number; writesWhileConnecting: number; awayAndBack: number; writesAwayAndBack: number; writesQuiet: number; quietSeconds: number; connectSeconds: number };
  catchUp: Array<{ rooms: number; missedMessages: number; missedChanges: number; toHistoryMs: number; toLastChangeMs: number }>;
}

/** sockets of the phase that ended, and transport errors they saw */
const ended = { n: 0, errors: 0, beforeOpen: 0, timeouts: 0 };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (msg: string) => process.stderr.write(`bench: ${msg}\n`);

/** The HTTP API as a signed-in user calls it: the session cookie, and a CSRF token. */
class Api {
  private csrf?: { token: string; cookie: string };
  constructor(
    private readonly base: string,
    private readonly sid: string,
  ) {}
  private async token(): Promise<{ token: string; cookie: string }> {
    if (this.csrf) return this.csrf;
    const res = await fetch(`${this.base}/api/auth/csrf`, { headers: { cookie: `sid=${this.sid}` } });
    const cookie = res.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
    this.csrf = { token: ((await res.json()) as { csrf: string }).csrf, cookie };
    return this.csrf;
  }
  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const c = method === 'GET' ? undefined : await this.token();
    const res = await fetch(this.base + path, {
      method,
      headers: { cookie: [`sid=${this.sid}`, c?.cookie].filter(Boolean).join('; '), ...(c ? { 'x-csrf-token': c.token } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 200)}`);
    return (text ? JSON.parse(text) : undefined) as T;
  }
}

/** A signed-in socket that watches every room of its user and reports what arrives. */
function watcher(url: string, user: TeamUser, onFrame: (f: OutboundFrame, at: number) => void, resume?: Record<string, { since?: string; have?: string[]; changedSince?: string }>): { opened: Promise<number>; rooms: Promise<void>; write(f: unknown): void; close(): void } {
  const sock = new Socket(url, { reconnect: { retries: 0, min: 100, max: 100 }, transport: { extraHeaders: { cookie: `sid=${user.token}` } } });
  let opened: (at: number) => void = () => undefined;
  let snapshot: () => void = () => undefined;
  const o = new Promise<number>((resolve) => (opened = resolve));
  const s = new Promise<void>((resolve) => (snapshot = resolve));
  let wasOpen = false;
  sock.on('open', () => {
    wasOpen = true;
    opened(performance.now());
    sock.write({ type: 'hello', protocol: 2 });
    sock.write(resume ? { type: 'watch', rooms: resume } : { type: 'watch' });
  });
  sock.on('timeout', () => ended.timeouts++);
  sock.on('end', () => {
    ended.n++;
    if (!wasOpen) ended.beforeOpen++;
  });
  sock.on('error', () => ended.errors++);
  sock.on('data', (f: OutboundFrame) => {
    const at = performance.now();
    if (f.type === 'rooms') snapshot();
    else if (f.type === 'error') log(`a socket was told ${JSON.stringify(f).slice(0, 200)}`);
    onFrame(f, at);
  });
  return { opened: o, rooms: s, write: (f) => sock.write(f), close: () => sock.end() };
}

export async function conversationsPhase(db: Db, o: ConversationsOptions): Promise<ConversationsResult> {
  log(`conversations: seeding ${o.sockets} users in ${o.awayRooms} rooms`);
  const seeded = await seed(db, { users: o.sockets, rooms: o.awayRooms, perUser: o.awayRooms });
  const dyno: Dyno = await spawnDyno('web.conversations', db.url, { ANONYMOUS_ROOMS: '0', RATE_LIMIT_BURST: '10000', RATE_LIMIT_PER_SECOND: '10000' }, { echoStderr: false });
  const conn: Connection = await r.connect({ ...db.address.servers[0], user: db.address.user, password: db.address.password, silent: true });
  const messages = r.db(db.dbName).table(MESSAGES);
  const owner = seeded.users[0];
  const api = new Api(dyno.url, owner.token);
  const sockets: Array<{ close(): void }> = [];
  try {
    // ---- a deep room: pages by index cursor at any depth --------------------------------
    const deepRoom = seeded.roomIds[0];
    const t0 = performance.now();
    const base = Date.UTC(2023, 0, 1);
    const idAt = (i: number) => `deep-${String(i).padStart(8, '0')}`;
    for (let i = 0; i < o.deep; ) {
      const batch = [];
      for (let k = 0; k < 10_000 && i < o.deep; k++, i++) batch.push({ id: idAt(i), room: deepRoom, body: 'message text of an ordinary length, like most chat lines are', author: { id: owner.id, name: owner.name }, sent: new Date(base + i * 1000) });
      await messages.insert(batch, { durability: 'soft' }).run(conn);
    }
    const fillSeconds = Math.round((performance.now() - t0) / 100) / 10;
    log(`deep room filled with ${o.deep} messages in ${fillSeconds} s; timing pages`);
    const newest = new Samples();
    const half = new Samples();
    for (let s = 0; s < 30; s++) {
      let at = performance.now();
      await api.call('GET', `/api/rooms/${deepRoom}/messages?limit=50`);
      newest.push(performance.now() - at);
      const anchor = idAt(Math.floor(o.deep / 2) + Math.floor(Math.random() * 1000));
      at = performance.now();
      const page = await api.call<{ messages: WireMessage[] }>('GET', `/api/rooms/${deepRoom}/messages?limit=50&before=${anchor}`);
      half.push(performance.now() - at);
      if (page.messages.length !== 50) throw new Error(`a page at half depth held ${page.messages.length} messages`);
    }

    // ---- changes reaching 1,000 sockets -------------------------------------------------
    const room = seeded.roomIds[1];
    const waiting = new Map<string, { kind: 'edit' | 'delete' | 'reaction'; at: number; left: number }>();
    const lat: Record<'edit' | 'delete' | 'reaction', Samples> = { edit: new Samples(), delete: new Samples(), reaction: new Samples() };
    const presenceWrites = { n: 0 };
    const presenceFeed = await r.db(db.dbName).table(PRESENCE).changes().run(conn);
    void (async () => {
      for await (const _ of presenceFeed as AsyncIterable<unknown>) presenceWrites.n++;
    })().catch(() => undefined);
    const connectStart = performance.now();
    const before = presenceWrites.n;
    // Opened 100 a second, as a morning's log-ins come (not all in one tick).
    const watching: Array<ReturnType<typeof watcher>> = [];
    for (const u of seeded.users) {
      if (watching.length % 10 === 9) await sleep(100);
      watching.push(watcher(dyno.url, u, (f, at) => {
        if (f.type !== 'messageChanged') return;
        const w = waiting.get(`${f.message.id}:${f.message.updated}`) ?? waiting.get(f.message.id);
        if (!w) return;
        lat[w.kind].push(at - w.at);
        w.left--;
      }));
    }
    for (const w of watching) sockets.push(w);
    let ready = 0;
    for (const w of watching) void w.rooms.then(() => ready++);
    const progress = setInterval(() => log(`${ready} of ${watching.length} sidebars so far (${ended.n} sockets ended, ${ended.beforeOpen} of them before opening, ${ended.timeouts} open timeouts, ${ended.errors} transport errors)`), 10_000);
    await withDeadline(Promise.all(watching.map((w) => w.rooms)), 120_000, `${o.sockets} sockets' sidebars`).finally(() => clearInterval(progress));
    const connectSeconds = Math.round((performance.now() - connectStart) / 100) / 10;
    await sleep(2000);
    const writesWhileConnecting = presenceWrites.n - before;
    log(`${o.sockets} sockets watching (${connectSeconds} s); timing ${o.changes} edits, deletions and reactions`);
    for (const kind of ['edit', 'reaction', 'delete'] as const) {
      for (let i = 0; i < o.changes; i++) {
        const m = (await api.call<{ message: WireMessage }>('POST', `/api/rooms/${room}/messages`, { body: `to be changed ${kind} ${i}` })).message;
        await sleep(50);
        const key = m.id;
        const entry = { kind, at: performance.now(), left: o.sockets };
        waiting.set(key, entry);
        if (kind === 'edit') await api.call('PATCH', `/api/rooms/${room}/messages/${m.id}`, { body: 'edited' });
        else if (kind === 'reaction') await api.call('POST', `/api/rooms/${room}/messages/${m.id}/reactions`, { emoji: '👍' });
        else await api.call('DELETE', `/api/rooms/${room}/messages/${m.id}`);
        await withDeadline((async () => { while (entry.left > 0) await sleep(5); })(), 30_000, `a ${kind} reaching every socket`);
        waiting.delete(key);
      }
    }

    // ---- presence: away and back, then quiet --------------------------------------------
    // Half of the pages go away (idle, or hidden for a minute) and then come back.
    const awayBefore = presenceWrites.n;
    const half2 = watching.slice(0, Math.floor(o.sockets / 2));
    for (const w of half2) w.write({ type: 'away', away: true });
    await sleep(1500);
    for (const w of half2) w.write({ type: 'away', away: false });
    await sleep(1500);
    const writesAwayAndBack = presenceWrites.n - awayBefore;
    log(`presence: ${writesWhileConnecting} writes for ${o.sockets} users connecting, ${writesAwayAndBack} for ${half2.length} going away and back`);
    const quietFrom = presenceWrites.n;
    const quietSeconds = 5;
    await sleep(quietSeconds * 1000);
    const writesQuiet = presenceWrites.n - quietFrom;
    await presenceFeed.close();
    // The catch-up writes thousands of messages: nobody else is watching meanwhile.
    for (const w of watching) w.close();

    // ---- catch-up after being away --------------------------------------------------------
    const catchUp: ConversationsResult['catchUp'] = [];
    const away = seeded.users[1];
    const awayRooms = away.rooms.map((k) => seeded.roomIds[k]);
    // Every room has a little history before the first time away.
    for (const id of awayRooms) await messages.insert(Array.from({ length: 5 }, (_, i) => ({ id: randomUUID(), room: id, body: `before ${i}`, author: { id: owner.id, name: owner.name }, sent: r.now() }))).run(conn);
    for (let round = 0; round < 3; round++) {
      const held = new Map<string, RoomHistory>(awayRooms.map((id) => [id, new RoomHistory()]));
      const first = watcher(dyno.url, away, (f) => {
        if (f.type === 'deliverMessage') held.get(f.message.room)?.add(f.message);
      });
      await withDeadline(first.rooms, 30_000, 'the away user\'s sidebar');
      // What the page holds when the lid closes: each room's history.
      for (const id of awayRooms) {
        const page = await new Api(dyno.url, away.token).call<{ messages: WireMessage[] }>('GET', `/api/rooms/${id}/messages?limit=100`);
        for (const m of page.messages) held.get(id)?.add(m);
      }
      first.close();
      await sleep(300);
      // Five minutes of a busy workspace, written as the app writes it (sent: the database's clock).
      const perRoom = o.awaySeconds;
      const written: Array<{ id: string; room: string }> = [];
      for (const id of awayRooms) {
        const rows = Array.from({ length: perRoom }, (_, i) => ({ id: randomUUID(), room: id, body: `while away ${i}`, author: { id: owner.id, name: owner.name }, sent: r.now() }));
        await messages.insert(rows, { durability: 'soft' }).run(conn);
        for (const row of rows) written.push({ id: row.id, room: id });
      }
      const edited = written.filter((_, i) => i % 10 === 0).map((w) => w.id);
      const editedSet = new Set(edited);
      await messages.getAll(...edited).update({ body: 'edited while away', edited: r.now(), updated: r.now() }, { durability: 'soft' }).run(conn);
      await sleep(200);
      let lastHistory = 0;
      let lastChange = 0;
      let resumed = 0;
      let changes = 0;
      // A frame holds at most 64 KiB: each room lists 40 of the ids it holds in the window
      // (what it does not list comes again, and is dropped by id).
      const resume = Object.fromEntries([...held].map(([id, h]) => {
        const x = h.resume(5000);
        return [id, { ...x, have: x.have?.slice(0, 40) }];
      }));
      const back = watcher(dyno.url, away, (f, at) => {
        if (f.type === 'joined' && f.resumed) {
          resumed++;
          lastHistory = at;
        } else if (f.type === 'messageChanged' && editedSet.has(f.message.id)) {
          changes++;
          lastChange = at;
        }
      }, resume);
      sockets.push(back);
      const openedAt = await withDeadline(back.opened, 30_000, 'the away user\'s socket');
      await withDeadline((async () => { while (resumed < awayRooms.length || changes < edited.length) await sleep(5); })(), 60_000, 'the catch-up').catch((e: unknown) => {
        throw new Error(`${(e as Error).message}: ${resumed} of ${awayRooms.length} rooms resumed, ${changes} of ${edited.length} changes`);
      });
      back.close();
      catchUp.push({ rooms: awayRooms.length, missedMessages: written.length, missedChanges: edited.length, toHistoryMs: Math.round(lastHistory - openedAt), toLastChangeMs: Math.round(lastChange - openedAt) });
    }
    return {
      deepRoom: { messages: o.deep, fillSeconds, newestPageMs: roundSummary(summarize(newest.values())), pageAtHalfDepthMs: roundSummary(summarize(half.values())) },
      changeToSocketsMs: { edit: roundSummary(summarize(lat.edit.values())), delete: roundSummary(summarize(lat.delete.values())), reaction: roundSummary(summarize(lat.reaction.values())) },
      presence: { users: o.sockets, writesWhileConnecting, awayAndBack: Math.floor(o.sockets / 2), writesAwayAndBack, writesQuiet, quietSeconds, connectSeconds },
      catchUp,
    };
  } finally {
    for (const s of sockets) s.close();
    await conn.close().catch(() => undefined);
    await dyno.stop().catch(() => dyno.kill());
  }
}

export function printConversations(c: ConversationsResult): void {
  console.log(`\n== conversations: history at depth, changes to ${c.presence.users} sockets, presence, catch-up ==`);
  console.log(
    table([
      ['what (ms)', 'p50', 'p90', 'p99', 'max'],
      ['newest page of 50', c.deepRoom.newestPageMs.p50, c.deepRoom.newestPageMs.p90, c.deepRoom.newestPageMs.p99, c.deepRoom.newestPageMs.max],
      [`page of 50 at ${c.deepRoom.messages / 2} deep (of ${c.deepRoom.messages})`, c.deepRoom.pageAtHalfDepthMs.p50, c.deepRoom.pageAtHalfDepthMs.p90, c.deepRoom.pageAtHalfDepthMs.p99, c.deepRoom.pageAtHalfDepthMs.max],
      ...(['edit', 'delete', 'reaction'] as const).map((k) => [`${k} to every socket`, c.changeToSocketsMs[k].p50, c.changeToSocketsMs[k].p90, c.changeToSocketsMs[k].p99, c.changeToSocketsMs[k].max]),
    ]),
  );
  const p = c.presence;
  console.log(`presence writes: ${p.writesWhileConnecting} while ${p.users} users connected (${p.connectSeconds} s), ${p.writesAwayAndBack} while ${p.awayAndBack} of them went away and came back, ${p.writesQuiet} in ${p.quietSeconds} s with no change`);
  console.log(table([['catch-up', 'rooms', 'missed messages', 'missed edits', 'to resumed history (ms)', 'to last change (ms)'], ...c.catchUp.map((x, i) => [`#${i + 1}`, x.rooms, x.missedMessages, x.missedChanges, x.toHistoryMs, x.toLastChangeMs])]));
}
