// The `--webhooks` phase of `npm run bench` (issue 13, point 7), with signed-in users seeded
// straight into the database (bench/lib/team.ts):
// - incoming webhooks: the delay from a hook's POST to its deliverMessage at each of
//   `sockets` sockets watching the room, p99 (one clock: the bench process); then, with the
//   sockets gone, the posts per second one app process takes (`concurrency` in flight);
// - outgoing webhooks: the delay from a person's post (the API call) to the POST at a receiver
//   on 127.0.0.1, p99;
// - kill -9: three app processes share the outbox; `killBatch` trigger messages are queued at
//   once to a receiver that answers slowly, the process holding the most claims is killed -9,
//   a new one started; after `killRounds` rounds, the replies in the room are counted:
//   duplicates and losses (both must be 0).
// Every wait has a deadline; only 127.0.0.1 is contacted.
import { createServer, type Server } from 'node:http';
import Primus from 'primus';
import { r, type Connection } from 'rethinkdb-ts';
import type { OutboundFrame } from '../../src/chat/wire.js';
import { MESSAGES, OUTBOX } from '../../src/db/schema.js';
import { spawnDyno, withDeadline, type Db, type Dyno } from './procs.js';
import { roundSummary, Samples, summarize, table, type Summary } from './stats.js';
import { seed } from './team.js';
import type { TeamUser } from './team-worker.js';

const Socket = Primus.createSocket({ transformer: 'engine.io', parser: 'JSON', pathname: '/primus', pingInterval: false });

export interface WebhooksOptions {
  /** sockets watching the incoming hook's room (1,000) */
  sockets: number;
  /** posts for the throughput run, and how many in flight */
  posts: number;
  concurrency: number;
  /** posts timed to every socket, one each `gapMs` */
  timed: number;
  gapMs: number;
  /** outgoing deliveries timed */
  outgoing: number;
  /** kill rounds, and trigger messages queued in each */
  killRounds: number;
  killBatch: number;
}

export interface WebhooksResult {
  incoming: { postsPerSecond: number; posts: number; concurrency: number; postToSocketsMs: Summary; sockets: number };
  outgoing: { postToReceiverMs: Summary };
  kill: { rounds: number; messages: number; killed: number; duplicates: number; lost: number; deliveriesSeen: number };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (msg: string) => process.stderr.write(`bench: ${msg}\n`);
const HOOK_ENV = { ANONYMOUS_ROOMS: '0', RATE_LIMIT_BURST: '10000', RATE_LIMIT_PER_SECOND: '10000', INCOMING_HOOK_PER_MINUTE: '1000000', OUTGOING_HOOK_TIMEOUT_SECONDS: '2', OUTGOING_HOOK_BACKOFF_SECONDS: '0.2', OUTGOING_HOOK_MAX_ATTEMPTS: '10', OUTGOING_HOOK_POLL_SECONDS: '0.2' };

/** The owner's API calls: by an API token (no CSRF). */
async function call<T>(base: string, token: string, method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(base + path, { method, headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 200)}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

/** A token for the seeded owner, made through the session (the one POST with CSRF). */
async function ownerToken(base: string, owner: TeamUser): Promise<string> {
  const c = await fetch(`${base}/api/auth/csrf`, { headers: { cookie: `sid=${owner.token}` } });
  const cookie = c.headers.getSetCookie().map((x) => x.split(';')[0]).join('; ');
  const { csrf } = (await c.json()) as { csrf: string };
  const res = await fetch(`${base}/api/tokens`, { method: 'POST', headers: { cookie: `sid=${owner.token}; ${cookie}`, 'x-csrf-token': csrf, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'bench', scopes: ['read', 'post', 'manage'] }) });
  if (!res.ok) throw new Error(`making a token: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { token: string }).token;
}

export async function webhooksPhase(db: Db, o: WebhooksOptions): Promise<WebhooksResult> {
  log(`webhooks: seeding ${o.sockets} users in one room`);
  const seeded = await seed(db, { users: o.sockets, rooms: 1, perUser: 1 });
  const dynos: Dyno[] = [await spawnDyno('web.webhooks.1', db.url, HOOK_ENV, { echoStderr: false })];
  const conn: Connection = await r.connect({ ...db.address.servers[0], user: db.address.user, password: db.address.password, silent: true });
  const sockets: Array<{ end(): void }> = [];
  let receiver: Server | undefined;
  try {
    const base = dynos[0].url;
    const owner = seeded.users[0];
    const token = await ownerToken(base, owner);
    const room = seeded.roomIds[0];
    const { url: hookUrl } = await call<{ url: string }>(base, token, 'POST', '/api/hooks', { kind: 'incoming', roomId: room, name: 'bench' });
    const send = async (text: string) => {
      const res = await fetch(hookUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text }) });
      if (res.status !== 200) throw new Error(`the hook answered ${res.status} ${await res.text()}`);
    };

    // ---- incoming: from the POST to every socket -----------------------------------------
    const sent = new Map<string, number>();
    const lat = new Samples();
    let arrivals = 0;
    const ready: Array<Promise<void>> = [];
    // Why a socket has no snapshot yet: ended before it, transport errors, error frames by code.
    const readySet = new Set<unknown>();
    const whyNot = { ended: 0, errors: 0, frames: new Map<string, number>() };
    const whyNotText = () => `ended before their snapshot ${whyNot.ended}, transport errors ${whyNot.errors}, error frames ${JSON.stringify(Object.fromEntries(whyNot.frames))}`;
    for (const u of seeded.users) {
      if (sockets.length % 10 === 9) await sleep(100); // 100 a second, as log-ins come
      const sock = new Socket(dynos[0].url, { reconnect: { retries: 0, min: 100, max: 100 }, transport: { extraHeaders: { cookie: `sid=${u.token}` } } });
      ready.push(new Promise<void>((resolve) => {
        sock.on('open', () => {
          sock.write({ type: 'hello', protocol: 2 });
          sock.write({ type: 'watch' });
        });
        sock.on('end', () => void (whyNot.ended += readySet.has(sock) ? 0 : 1));
        sock.on('error', () => void whyNot.errors++);
        sock.on('data', (f: OutboundFrame) => {
          if (f.type === 'rooms') {
            readySet.add(sock);
            resolve();
          }
          if (f.type === 'error' && !readySet.has(sock)) whyNot.frames.set(f.code, (whyNot.frames.get(f.code) ?? 0) + 1);
          if (f.type !== 'deliverMessage') return;
          const at = sent.get(f.message.body);
          if (at === undefined) return;
          lat.push(performance.now() - at);
          arrivals++;
        });
      }));
      sockets.push(sock);
    }
    let readyCount = 0;
    for (const p of ready) void p.then(() => readyCount++);
    const progress = setInterval(() => log(`incoming: ${readyCount} of ${o.sockets} sockets have their first snapshot; ${whyNotText()}`), 30_000);
    await withDeadline(Promise.all(ready), 300_000, `${o.sockets} sockets watching`).finally(() => clearInterval(progress));
    log(`incoming: ${o.sockets} sockets watching; timing ${o.timed} posts to every one`);
    for (let i = 0; i < o.timed; i++) {
      const text = `timed ${i}`;
      sent.set(text, performance.now());
      await send(text);
      await sleep(o.gapMs);
    }
    await withDeadline((async () => { while (arrivals < o.timed * o.sockets) await sleep(20); })(), 120_000, 'every timed post at every socket');
    for (const s of sockets.splice(0)) s.end();

    // ---- incoming: posts per second, nobody watching ------------------------------------
    log(`incoming: ${o.posts} posts, ${o.concurrency} in flight`);
    let next = 0;
    const t0 = performance.now();
    await withDeadline(Promise.all(Array.from({ length: o.concurrency }, async () => {
      while (next < o.posts) await send(`throughput ${next++}`);
    })), 600_000, 'the throughput run');
    const postsPerSecond = Math.round(o.posts / ((performance.now() - t0) / 1000));

    // ---- outgoing: from a person's post to the receiver ----------------------------------
    await call(base, token, 'PATCH', '/api/workspace', { allowPrivateHookTargets: true });
    const heard = new Map<string, number>();
    const deliveries = new Map<string, number>();
    let holdMs = 0;
    receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const text = new URLSearchParams(body).get('text') ?? '';
        if (!heard.has(text)) heard.set(text, performance.now());
        deliveries.set(text, (deliveries.get(text) ?? 0) + 1);
        const answer = () => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ text: `reply to ${text}` }));
        if (holdMs > 0) setTimeout(answer, holdMs);
        else answer();
      });
    });
    await new Promise<void>((resolve) => receiver!.listen(0, '127.0.0.1', resolve));
    const target = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/bench`;
    const outRoom = (await call<{ room: { id: string } }>(base, token, 'POST', '/api/rooms', { kind: 'channel', name: `bench-out-${Date.now()}` })).room.id;
    await call(base, token, 'POST', '/api/hooks', { kind: 'outgoing', roomId: outRoom, url: target, triggerWords: ['bench'] });
    log(`outgoing: timing ${o.outgoing} deliveries`);
    const out = new Samples();
    for (let i = 0; i < o.outgoing; i++) {
      const text = `bench out ${i}`;
      const at = performance.now();
      await call(base, token, 'POST', `/api/rooms/${outRoom}/messages`, { body: text });
      await withDeadline((async () => { while (!heard.has(text)) await sleep(2); })(), 30_000, `delivery of ${text}`);
      out.push(heard.get(text)! - at);
      await sleep(o.gapMs);
    }

    // ---- kill -9 of the process holding the claims ----------------------------------------
    dynos.push(...(await Promise.all([spawnDyno('web.webhooks.2', db.url, HOOK_ENV), spawnDyno('web.webhooks.3', db.url, HOOK_ENV)])));
    holdMs = 500;
    let killed = 0;
    const killTexts: string[] = [];
    for (let round = 0; round < o.killRounds; round++) {
      const via = dynos[0].url;
      log(`kill round ${round + 1}: ${o.killBatch} deliveries queued at once`);
      for (let i = 0; i < o.killBatch; i++) {
        const text = `bench kill ${round} ${i}`;
        killTexts.push(text);
        await call(via, token, 'POST', `/api/rooms/${outRoom}/messages`, { body: text });
      }
      await sleep(200);
      // The process holding the most claims now, mid-delivery.
      const claims = (await r.db(db.dbName).table(OUTBOX).filter({ state: 'pending' }).pluck('claimedBy').run(conn)) as Array<{ claimedBy?: string | null }>;
      const count = new Map<number, number>();
      for (const c of claims) if (c.claimedBy) count.set(Number(c.claimedBy.split('/')[1]), (count.get(Number(c.claimedBy.split('/')[1])) ?? 0) + 1);
      const victim = [...count.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
      const i = dynos.findIndex((d) => d.pid === victim);
      if (i >= 0) {
        await dynos[i].kill();
        killed++;
        dynos.splice(i, 1);
        dynos.push(await spawnDyno(`web.webhooks.r${round}`, db.url, HOOK_ENV));
      }
      await withDeadline((async () => {
        for (;;) {
          const pending = await r.db(db.dbName).table(OUTBOX).filter({ state: 'pending' }).count().run(conn);
          if (pending === 0) return;
          await sleep(200);
        }
      })(), 180_000, `the deliveries of kill round ${round + 1}`);
    }
    const replies = (await r.db(db.dbName).table(MESSAGES).between([outRoom, r.minval], [outRoom, r.maxval], { index: 'room_sent' }).filter({ bot: true }).pluck('body').run(conn)) as Array<{ body: string }>;
    const perText = new Map<string, number>();
    for (const m of replies) perText.set(m.body, (perText.get(m.body) ?? 0) + 1);
    let duplicates = 0;
    let lost = 0;
    for (const text of killTexts) {
      const n = perText.get(`reply to ${text}`) ?? 0;
      if (n === 0) lost++;
      duplicates += Math.max(0, n - 1);
    }
    const deliveriesSeen = killTexts.reduce((s, t) => s + (deliveries.get(t) ?? 0), 0);
    return {
      incoming: { postsPerSecond, posts: o.posts, concurrency: o.concurrency, postToSocketsMs: roundSummary(summarize(lat.values())), sockets: o.sockets },
      outgoing: { postToReceiverMs: roundSummary(summarize(out.values())) },
      kill: { rounds: o.killRounds, messages: killTexts.length, killed, duplicates, lost, deliveriesSeen },
    };
  } finally {
    for (const s of sockets) s.end();
    receiver?.closeAllConnections();
    receiver?.close();
    await Promise.all(dynos.map((d) => d.stop().catch(() => d.kill())));
    await conn.close().catch(() => undefined);
  }
}

export function printWebhooks(w: WebhooksResult): void {
  console.log(`\n== webhooks: incoming posts/s and delivery to ${w.incoming.sockets} sockets, outgoing delivery, kill -9 mid-delivery ==`);
  console.log(`incoming: ${w.incoming.postsPerSecond} posts/s on one process (${w.incoming.posts} posts, ${w.incoming.concurrency} in flight, nobody watching)`);
  const i = w.incoming.postToSocketsMs;
  const g = w.outgoing.postToReceiverMs;
  console.log(
    table([
      ['what (ms)', 'p50', 'p90', 'p99', 'max', 'samples'],
      [`incoming POST to each of ${w.incoming.sockets} sockets`, i.p50, i.p90, i.p99, i.max, i.count],
      ['outgoing: post to the receiver', g.p50, g.p90, g.p99, g.max, g.count],
    ]),
  );
  const k = w.kill;
  console.log(`kill -9: ${k.killed} of ${k.rounds} rounds killed the process holding the most claims; ${k.messages} deliveries (${k.deliveriesSeen} POSTs seen by the receiver): ${k.duplicates} duplicate replies, ${k.lost} lost`);
}
