// The `--team` phase of `npm run bench`: a workspace of signed-in users on one app process.
// U users, R rooms (channels and private groups), each user a member of P of them, spread
// evenly (so a room has about U * P / R members), are seeded straight into the database in
// batches, in the shapes of the project's schemas, each user with a session whose token the
// bench keeps (only its SHA-256 is stored, as the app does). Then W worker processes
// (bench/lib/team-worker.ts) open every user's socket at a bounded rate, with the user's
// `sid` cookie, and send hello and watch as the team page does. It measures:
// - sidebar ready: from a socket's open to its `rooms` snapshot (p50/p99/max), and the ramp;
// - the app process's RSS and V8 heap (after a full GC) before the sockets and with all of
//   them watching, and the difference per connection;
// - then M messages per second for D seconds, each posted by a random member into one of
//   their rooms: send-to-deliver latency of every delivery to every member's socket (one
//   clock for every process), deliveries per second, lost deliveries and duplicates;
// - CPU of the app, the database and the workers during the traffic, the changefeeds open on
//   the database (one per active room per process is the design, plus a few global ones), and
//   the workers' event-loop delay (a late worker reads deliveries late).
// Every step has a deadline; only 127.0.0.1 is contacted.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { cpus, setPriority } from 'node:os';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { r, type Connection } from 'rethinkdb-ts';
import { hashToken } from '../../src/accounts/service.js';
import { hashPassword } from '../../src/accounts/passwords.js';
import { sessionRow, userRow, type Session, type User } from '../../src/accounts/schema.js';
import { memberId, memberRow, normalRoomName, roomRow, type Member, type Room } from '../../src/rooms/schema.js';
import { CLAIMS, MEMBERS, ROOMS, SESSIONS, USERS, WORKSPACE, ensureSchema } from '../../src/db/schema.js';
import { cpuPercent, openFeedsOnDb, sampleProc, spawnDyno, type Db, type Dyno } from './procs.js';
import { percentile, table, Timeline, type SecondPoint } from './stats.js';
import type { FromWorker, TeamUser, ToWorker } from './team-worker.js';

export interface TeamOptions {
  users: number;
  rooms: number;
  perUser: number;
  /** messages per second, in all */
  rate: number;
  durationS: number;
  warmupS: number;
  workers: number;
  /** sockets opened per second, in all */
  connectRate: number;
  /** more node options for the app process (--node-args, --profile) */
  nodeArgs: string[];
}

export interface Summary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

export interface AppMemory {
  rssMiB: number;
  heapUsedMiB: number;
  heapTotalMiB: number;
  externalMiB: number;
}

export interface TeamResult {
  params: Omit<TeamOptions, 'nodeArgs'>;
  seed: { seconds: number; users: number; sessions: number; channels: number; groups: number; memberships: number; membersPerRoom: { min: number; max: number } };
  connect: {
    connected: number;
    failed: number;
    /** sidebars that did not list exactly the user's rooms */
    wrongSidebar: number;
    rampSeconds: number;
    /** socket open to `rooms` snapshot */
    sidebarReadyMs: Summary;
    /** connect call to socket open (the engine.io handshake) */
    openMs: Summary;
    /** sidebar ready by tenth of the ramp (by when it came): does it slow as sockets add up? */
    sidebarByTenth: Array<{ sockets: number; p50: number; p99: number; max: number }>;
    /** CPU of each process during the ramp, and of the whole machine */
    processes: Array<{ name: string; cpuPercent: number }>;
    machineCpuPercent: number;
    workerLag: Array<{ maxMs: number; secondsOver50: number }>;
  };
  memory: { before: AppMemory; after: AppMemory; connections: number; rssPerConnectionKiB: number; heapPerConnectionKiB: number };
  traffic: {
    sent: number;
    measuredSent: number;
    expectedDeliveries: number;
    deliveries: number;
    lost: number;
    /** of the lost, those to sockets that had closed */
    lostClosed: number;
    duplicates: number;
    unexpected: number;
    lostExamples: string[];
    latencyMs: Summary;
    /** send to the sender's ack: the access check, the insert and the read position */
    ackMs: Summary;
    deliveriesPerSecond: number;
    /** after the last send, until the last delivery came (or 60 s) */
    drainSeconds: number;
    processes: Array<{ name: string; cpuPercent: number; rssMiB: number }>;
    /** the whole machine's CPU (100 = one core), and what is not this phase's processes (other work on the machine, and kernel time) */
    machineCpuPercent: number;
    otherCpuPercent: number;
    dbChangefeeds: number;
    clientErrors: Record<string, number>;
    transports: Record<string, number>;
    /** engine.io's reasons for sockets that closed ('transport close': the server ended it) */
    closeReasons: Record<string, number>;
    workerLag: Array<{ maxMs: number; secondsOver50: number }>;
    timeline: SecondPoint[];
  };
  /** what the app process logged at warn level or above, by message */
  appWarnings: Array<{ msg: string; count: number; example: string }>;
  /** GET /metrics with every socket watching: idle, and during the traffic */
  metricsScrape: { idle: ScrapeTimes; traffic: ScrapeTimes };
}

export interface ScrapeTimes {
  count: number;
  p50Ms: number;
  maxMs: number;
  bytes: number;
  /** the sockets the scrape reported (chat_sockets, every transport): all of them, or it measured less */
  sockets: number;
  /** scrapes that got no answer within 10 s (the app's loop too busy), counted apart */
  timedOut: number;
}

/** Scrapes the app's /metrics `times` times, `gapMs` apart, timing each (request to last byte). */
async function scrapeMetrics(url: string, times: number, gapMs: number): Promise<ScrapeTimes> {
  const ms: number[] = [];
  let body = '';
  let timedOut = 0;
  for (let i = 0; i < times; i++) {
    const t0 = performance.now();
    try {
      const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(10_000) });
      body = await res.text();
      if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}`);
      ms.push(performance.now() - t0);
    } catch (e) {
      if (!(e instanceof Error && e.name === 'TimeoutError')) throw e;
      timedOut++;
    }
    await sleep(gapMs);
  }
  const sockets = [...body.matchAll(/^chat_sockets\{[^}]*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
  const s = summary(Float64Array.from(ms));
  return { count: s.count, p50Ms: s.p50, maxMs: s.max, bytes: body.length, sockets, timedOut };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (msg: string) => process.stderr.write(`bench: ${msg}\n`);
const clock = () => performance.timeOrigin + performance.now();
const mib = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10;
const round = (v: number, digits = 2) => (Number.isFinite(v) ? Number(v.toFixed(digits)) : v);

function summary(values: Float64Array): Summary {
  const s = Float64Array.from(values).sort();
  let sum = 0;
  for (const v of s) sum += v;
  return {
    count: s.length,
    p50: round(percentile(s, 50)),
    p90: round(percentile(s, 90)),
    p99: round(percentile(s, 99)),
    p999: round(percentile(s, 99.9)),
    max: round(s.length ? s[s.length - 1] : NaN),
    mean: round(s.length ? sum / s.length : NaN),
  };
}

function concat(parts: Float64Array[]): Float64Array {
  const out = new Float64Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** mulberry32: the same seed, the same workspace */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---- seeding ----------------------------------------------------------------------------

export interface Seeded {
  users: TeamUser[];
  roomIds: string[];
  seconds: number;
  summary: TeamResult['seed'];
}

const BATCH = 5000;

async function insertAll(conn: Connection, db: string, tableName: string, rows: object[]): Promise<void> {
  for (let i = 0; i < rows.length; i += BATCH) {
    const res = await r.db(db).table(tableName).insert(rows.slice(i, i + BATCH), { conflict: 'error', durability: 'soft' }).run(conn);
    if (res.errors > 0) throw new Error(`seeding ${tableName}: ${res.errors} errors, first: ${res.first_error}`);
  }
}

/**
 * The workspace, written in batches: users (and their username and e-mail claims, the first
 * one the owner), one session each, rooms (a quarter of them private groups; channel names
 * claimed), memberships. Rows are parsed by the app's own schemas before they are written.
 * One argon2 hash is shared by every user (nobody logs in: the sessions exist already).
 */
export async function seed(db: Db, o: Pick<TeamOptions, 'users' | 'rooms' | 'perUser'>): Promise<Seeded> {
  const t0 = performance.now();
  const address = db.address;
  const connect = () => r.connect({ host: address.servers[0].host, port: address.servers[0].port, user: address.user, password: address.password, silent: true });
  const schemaConn = await connect(); // ensureSchema wants a connection of its own
  try {
    await ensureSchema(schemaConn, db.dbName, { log: pino({ level: 'silent' }), staleMs: 60_000 });
  } finally {
    await schemaConn.close();
  }
  if (db.nodes.length > 1) await db.replicate(db.nodes.length);

  const rand = prng(20261201);
  const now = new Date();
  const expiresAt = new Date(now.getTime() + 30 * 24 * 3600 * 1000);
  const passwordHash = await hashPassword('the team benchmark password, shared by every user');
  const users: User[] = [];
  const sessions: Session[] = [];
  const tokens: string[] = [];
  const claims: Array<{ id: string; userId?: string; roomId?: string }> = [];
  for (let i = 0; i < o.users; i++) {
    const user = userRow.parse({
      id: randomUUID(), username: `team${i}`, displayName: `Team User ${i}`, email: `team${i}@example.test`,
      role: i === 0 ? 'owner' : 'member', passwordHash, disabled: false, createdAt: now,
    });
    users.push(user);
    claims.push({ id: `username:team${i}`, userId: user.id }, { id: `email:team${i}@example.test`, userId: user.id });
    const token = randomBytes(32).toString('base64url');
    tokens.push(token);
    sessions.push(sessionRow.parse({ id: hashToken(token), userId: user.id, createdAt: now, lastUsedAt: now, expiresAt }));
  }

  // Each user joins the P rooms with the fewest members so far (ties broken at random): every
  // room ends with U * P / R members, give or take one, and no two users share a fixed set.
  const counts = new Array<number>(o.rooms).fill(0);
  const mine: number[][] = [];
  const roomMembers: number[][] = Array.from({ length: o.rooms }, () => []);
  const keys = new Float64Array(o.rooms);
  const order = Array.from({ length: o.rooms }, (_, k) => k);
  for (let u = 0; u < o.users; u++) {
    for (let k = 0; k < o.rooms; k++) keys[k] = counts[k] + rand();
    order.sort((a, b) => keys[a] - keys[b]);
    const picked = order.slice(0, o.perUser).sort((a, b) => a - b);
    for (const k of picked) {
      counts[k]++;
      roomMembers[k].push(u);
    }
    mine.push(picked);
  }

  const rooms: Room[] = [];
  for (let k = 0; k < o.rooms; k++) {
    const group = k % 4 === 3;
    const name = group ? `team group ${k}` : `team-channel-${k}`;
    rooms.push(roomRow.parse({
      id: randomUUID(), kind: group ? 'group' : 'channel', name, topic: `benchmark room ${k}`,
      ownerId: users[roomMembers[k][0] ?? 0].id, createdAt: now, archived: false, announcement: false, isDefault: false,
    }));
    if (!group) claims.push({ id: `channel:${normalRoomName(name)}`, roomId: rooms[k].id });
  }
  const members: Member[] = [];
  for (let u = 0; u < o.users; u++) {
    for (const k of mine[u]) members.push(memberRow.parse({ id: memberId(rooms[k].id, users[u].id), roomId: rooms[k].id, userId: users[u].id, joinedAt: now }));
  }

  const conn = await connect();
  try {
    await insertAll(conn, db.dbName, USERS, users);
    await insertAll(conn, db.dbName, CLAIMS, claims);
    await insertAll(conn, db.dbName, WORKSPACE, [{ id: 'owner', userId: users[0].id, at: now }]);
    await insertAll(conn, db.dbName, SESSIONS, sessions);
    await insertAll(conn, db.dbName, ROOMS, rooms);
    await insertAll(conn, db.dbName, MEMBERS, members);
  } finally {
    await conn.close();
  }
  const seconds = round((performance.now() - t0) / 1000, 1);
  return {
    users: users.map((u, i) => ({ id: u.id, name: u.displayName, token: tokens[i], rooms: mine[i] })),
    roomIds: rooms.map((x) => x.id),
    seconds,
    summary: {
      seconds,
      users: users.length,
      sessions: sessions.length,
      channels: rooms.filter((x) => x.kind === 'channel').length,
      groups: rooms.filter((x) => x.kind === 'group').length,
      memberships: members.length,
      membersPerRoom: { min: Math.min(...counts), max: Math.max(...counts) },
    },
  };
}

// ---- the app's memory ---------------------------------------------------------------------

// Loaded into the app process (node --import): on SIGUSR2, a full GC and process.memoryUsage()
// on stdout, numbered. The app has no memory endpoint, and src/ is not the bench's to change.
const MEMORY_HOOK =
  'data:text/javascript,' +
  encodeURIComponent(
    'let n = 0; process.on("SIGUSR2", () => { globalThis.gc?.(); process.stdout.write(`team-bench-memory ${++n} ${JSON.stringify(process.memoryUsage())}\\n`); });',
  );

let memoryReads = 0;
async function appMemory(dyno: Dyno): Promise<AppMemory> {
  const n = ++memoryReads;
  process.kill(dyno.pid, 'SIGUSR2');
  const pattern = new RegExp(`team-bench-memory ${n} (\\{[^\\n]*\\})`);
  const deadline = Date.now() + 10_000;
  for (;;) {
    const m = pattern.exec(dyno.output());
    if (m) {
      const u = JSON.parse(m[1]) as { heapUsed: number; heapTotal: number; external: number };
      return { rssMiB: mib(sampleProc(dyno.pid).rssBytes), heapUsedMiB: mib(u.heapUsed), heapTotalMiB: mib(u.heapTotal), externalMiB: mib(u.external) };
    }
    if (Date.now() > deadline) throw new Error('the app process did not report its memory within 10 s');
    await sleep(50);
  }
}

/** The machine's busy CPU time so far (s, all cores), from /proc/stat. */
function machineBusy(): { at: number; busy: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  return { at: performance.now(), busy: (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / 100 };
}

/** The app's pino lines at warn (40) or above, counted by message. */
function warnings(output: string): TeamResult['appWarnings'] {
  const byMsg = new Map<string, { msg: string; count: number; example: string }>();
  for (const line of output.split('\n')) {
    if (!line.startsWith('{') || !/"level":(4|5|6)\d/.test(line)) continue;
    let msg = 'unparsed';
    try {
      const parsed: unknown = JSON.parse(line);
      if (typeof parsed === 'object' && parsed !== null && 'msg' in parsed && typeof parsed.msg === 'string') msg = parsed.msg;
    } catch {
      // a line cut by the output buffer
    }
    const w = byMsg.get(msg) ?? { msg, count: 0, example: line.slice(0, 300) };
    w.count++;
    byMsg.set(msg, w);
  }
  return [...byMsg.values()].sort((a, b) => b.count - a.count);
}

// ---- workers ----------------------------------------------------------------------------

const WORKER_NICE = 10;
const WORKER = fileURLToPath(new URL('./team-worker.ts', import.meta.url));
const workers = new Set<ChildProcess>();
process.once('exit', () => {
  for (const w of workers) w.kill('SIGKILL');
});

function startWorker(): ChildProcess {
  const w = spawn(process.execPath, ['--max-semi-space-size=64', '--import', 'tsx', WORKER], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
  workers.add(w);
  w.once('exit', () => workers.delete(w));
  // On a machine shared with the app, the workers yield to it: what they read late shows in
  // their event-loop delay, instead of the app's share of the CPU going to them.
  if (w.pid) setPriority(w.pid, WORKER_NICE);
  return w;
}

/** Sends a command and waits for the worker's answer of `type` (registered before the send). */
function ask<T extends FromWorker['type']>(w: ChildProcess, cmd: ToWorker, type: T, timeoutMs: number): Promise<Extract<FromWorker, { type: T }>> {
  const is = (m: unknown): m is Extract<FromWorker, { type: T }> => typeof m === 'object' && m !== null && 'type' in m && m.type === type;
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      clearTimeout(timer);
      w.off('message', onMessage);
      w.off('exit', onExit);
    };
    const onMessage = (m: unknown) => {
      if (!is(m)) return;
      cleanup();
      resolve(m);
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`a team worker exited (${code}) while we waited for '${type}'`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`a team worker did not answer '${cmd.type}' within ${timeoutMs} ms`));
    }, timeoutMs);
    w.on('message', onMessage);
    w.once('exit', onExit);
    w.send(cmd);
  });
}

// ---- the phase ----------------------------------------------------------------------------

export async function teamPhase(db: Db, o: TeamOptions): Promise<TeamResult> {
  if (o.perUser > o.rooms) throw new Error('--team-per-user must be at most --team-rooms');
  if (o.rooms > 32_000) throw new Error('--team-rooms must be at most 32000');
  log(`team: seeding ${o.users} users, ${o.rooms} rooms, ${o.perUser} rooms each`);
  const seeded = await seed(db, o);
  log(`team: seeded ${seeded.summary.memberships} memberships in ${seeded.seconds} s`);
  const W = Math.min(o.workers, o.users);
  const pool: ChildProcess[] = [];
  let dyno: Dyno | undefined;
  try {
    dyno = await spawnDyno('team.web', db.url, { ANONYMOUS_ROOMS: '0' }, { nodeArgs: [...o.nodeArgs, '--expose-gc', '--import', MEMORY_HOOK], echoStderr: true });
    const app = dyno;
    await sleep(2000);
    const before = await appMemory(app);

    for (let w = 0; w < W; w++) pool.push(startWorker());
    await Promise.all(
      pool.map((w, index) => ask(w, { type: 'init', index, workers: W, url: app.url, roomIds: seeded.roomIds, users: seeded.users.filter((_, i) => i % W === index) }, 'ready', 30_000)),
    );

    const procs = () => [
      { name: 'app (team.web)', s: sampleProc(app.pid) },
      ...db.nodes.flatMap((n) => (n.pid ? [{ name: db.nodes.length > 1 ? `database ${n.name}` : 'database', s: sampleProc(n.pid) }] : [])),
      ...pool.map((w, k) => ({ name: `worker ${k + 1}`, s: sampleProc(w.pid ?? 0) })),
    ];
    const cpu = (a: ReturnType<typeof procs>, b: ReturnType<typeof procs>) =>
      a.map((x, k) => ({ name: x.name, cpuPercent: Math.round(cpuPercent(x.s, b[k].s)), rssMiB: mib(b[k].s.rssBytes) }));

    log(`team: connecting ${o.users} sockets at ${o.connectRate}/s through ${W} worker(s)`);
    const rampDeadline = 60_000 + (o.users / o.connectRate) * 3000;
    const c0 = procs();
    const r0 = machineBusy();
    const t0 = performance.now();
    const connected = await Promise.all(
      pool.map((w) => ask(w, { type: 'connect', perSecond: o.connectRate / W, maxInFlight: 50, timeoutMs: 30_000 }, 'connected', rampDeadline)),
    );
    const rampSeconds = round((performance.now() - t0) / 1000, 1);
    const c1 = procs();
    const r1 = machineBusy();
    const ready = connected.reduce((n, c) => n + c.sidebarMs.length, 0);
    const failed = connected.reduce((n, c) => n + c.failed, 0);
    log(`team: ${ready} sockets watching (${failed} failed) in ${rampSeconds} s`);
    if (ready === 0) throw new Error('no socket got its sidebar');
    const sidebars = concat(connected.map((c) => c.sidebarMs));
    const readyAt = concat(connected.map((c) => c.readyAt));
    const byArrival = Array.from(readyAt.keys()).sort((a, b) => readyAt[a] - readyAt[b]);
    const sidebarByTenth = Array.from({ length: 10 }, (_, k) => {
      const part = byArrival.slice(Math.floor((k * byArrival.length) / 10), Math.floor(((k + 1) * byArrival.length) / 10));
      const sum = summary(Float64Array.from(part, (i) => sidebars[i]));
      return { sockets: Math.floor(((k + 1) * byArrival.length) / 10), p50: sum.p50, p99: sum.p99, max: sum.max };
    });
    const lagOf = (seconds: number[]) => ({ maxMs: round(Math.max(0, ...seconds), 1), secondsOver50: seconds.filter((v) => v > 50).length });
    const membersByRoom = new Int32Array(seeded.roomIds.length);
    for (const c of connected) for (let k = 0; k < membersByRoom.length; k++) membersByRoom[k] += c.membersByRoom[k];
    await sleep(2000);
    const after = await appMemory(app);
    const scrapeIdle = await scrapeMetrics(app.url, 10, 200);

    log(`team: warming up for ${o.warmupS} s, then measuring for ${o.durationS} s at ${o.rate} messages/s`);
    const sending = Promise.all(pool.map((w) => ask(w, { type: 'traffic', rate: o.rate / W, warmupS: o.warmupS, durationS: o.durationS }, 'sent', (o.warmupS + o.durationS) * 1000 + 30_000)));
    await sleep(o.warmupS * 1000);
    const measureFrom = clock();
    const p0 = procs();
    const m0 = machineBusy();
    const self0 = sampleProc(process.pid);
    await sleep((o.durationS * 1000) / 2);
    const dbChangefeeds = await openFeedsOnDb(db.address);
    const scrapeTraffic = await scrapeMetrics(app.url, 5, 500);
    await sleep(Math.max(0, measureFrom + o.durationS * 1000 - clock()));
    const p1 = procs();
    const m1 = machineBusy();
    const self1 = sampleProc(process.pid);
    const sent = await sending;

    // Every message by its global number (k-th of worker w: k * W + w), and what should arrive.
    const longest = Math.max(...sent.map((s) => s.rooms.length));
    const roomBySeq = new Int16Array(longest * W).fill(-1);
    let expected = 0;
    sent.forEach((s, w) => {
      for (let k = 0; k < s.rooms.length; k++) {
        if (s.rooms[k] < 0) continue;
        roomBySeq[k * W + w] = s.rooms[k];
        expected += membersByRoom[s.rooms[k]];
      }
    });
    // The last deliveries: while they keep coming (a backlog drains), for at most 60 s. What has
    // not come when they stop for 3 s is lost.
    const drainStart = Date.now();
    let seen = -1;
    let progressAt = Date.now();
    for (;;) {
      const counts = await Promise.all(pool.map((w) => ask(w, { type: 'count' }, 'count', 10_000)));
      const total = counts.reduce((n, c) => n + c.deliveries, 0);
      if (total > seen) progressAt = Date.now();
      seen = total;
      if (total >= expected || Date.now() - progressAt > 3000 || Date.now() - drainStart > 60_000) break;
      await sleep(250);
    }
    const drainSeconds = round((Date.now() - drainStart) / 1000, 1);
    const tallies = await Promise.all(pool.map((w) => ask(w, { type: 'tally', roomBySeq }, 'tally', 60_000)));

    const latencies = concat(tallies.map((t) => t.latencies));
    let lastArrival = measureFrom;
    for (const t of tallies) for (const a of t.arrivals) if (a > lastArrival) lastArrival = a;
    const timeline = new Timeline(measureFrom);
    for (const t of tallies) for (let i = 0; i < t.latencies.length; i++) timeline.add(t.arrivals[i], t.latencies[i]);
    const add = (into: Record<string, number>, from: Record<string, number>) => {
      for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
      return into;
    };
    const conns = ready;
    return {
      params: { users: o.users, rooms: o.rooms, perUser: o.perUser, rate: o.rate, durationS: o.durationS, warmupS: o.warmupS, workers: W, connectRate: o.connectRate },
      seed: seeded.summary,
      connect: {
        connected: ready,
        failed,
        wrongSidebar: connected.reduce((n, c) => n + c.wrongSidebar, 0),
        rampSeconds,
        sidebarReadyMs: summary(sidebars),
        openMs: summary(concat(connected.map((c) => c.openMs))),
        processes: cpu(c0, c1).map(({ name, cpuPercent }) => ({ name, cpuPercent })),
        machineCpuPercent: Math.round((100 * (r1.busy - r0.busy)) / ((r1.at - r0.at) / 1000)),
        sidebarByTenth,
        workerLag: connected.map((c) => lagOf(c.lagBySecond)),
      },
      memory: {
        before,
        after,
        connections: conns,
        rssPerConnectionKiB: round(((after.rssMiB - before.rssMiB) * 1024) / conns, 1),
        heapPerConnectionKiB: round(((after.heapUsedMiB - before.heapUsedMiB) * 1024) / conns, 1),
      },
      traffic: {
        sent: sent.reduce((n, s) => n + s.rooms.filter((room) => room >= 0).length, 0),
        measuredSent: sent.reduce((n, s) => n + s.measured, 0),
        expectedDeliveries: expected,
        deliveries: tallies.reduce((n, t) => n + t.deliveries, 0),
        lost: tallies.reduce((n, t) => n + t.lost, 0),
        lostClosed: tallies.reduce((n, t) => n + t.lostClosed, 0),
        duplicates: tallies.reduce((n, t) => n + t.duplicates, 0),
        unexpected: tallies.reduce((n, t) => n + t.unexpected, 0),
        lostExamples: tallies.flatMap((t) => t.lostExamples).slice(0, 5),
        latencyMs: summary(latencies),
        ackMs: summary(concat(tallies.map((t) => t.acks))),
        // over the span they arrived in: the measured seconds, or longer when a backlog drained
        deliveriesPerSecond: Math.round(latencies.length / Math.max(o.durationS, (lastArrival - measureFrom) / 1000)),
        drainSeconds,
        processes: cpu(p0, p1),
        machineCpuPercent: Math.round((100 * (m1.busy - m0.busy)) / ((m1.at - m0.at) / 1000)),
        otherCpuPercent: Math.round(
          (100 * (m1.busy - m0.busy)) / ((m1.at - m0.at) / 1000) - cpu(p0, p1).reduce((n, q) => n + q.cpuPercent, 0) - cpuPercent(self0, self1),
        ),
        dbChangefeeds,
        clientErrors: tallies.reduce((acc, t) => add(acc, t.errors), {}),
        transports: tallies.reduce((acc, t) => add(acc, t.transports), {}),
        closeReasons: tallies.reduce((acc, t) => add(acc, t.closeReasons), {}),
        workerLag: tallies.map((t) => lagOf(t.lagBySecond)),
        timeline: timeline.points().filter(Boolean).map((p) => ({ second: p.second, deliveries: p.deliveries, p50: round(p.p50), p99: round(p.p99), max: round(p.max) })),
      },
      appWarnings: warnings(app.output()),
      metricsScrape: { idle: scrapeIdle, traffic: scrapeTraffic },
    };
  } finally {
    await Promise.all(
      pool.map(async (w) => {
        if (w.exitCode !== null || w.signalCode !== null) return;
        const exited = new Promise((resolve) => w.once('exit', resolve));
        if (w.connected) w.send({ type: 'close' } satisfies ToWorker);
        const timer = setTimeout(() => w.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(timer);
      }),
    );
    await dyno?.stop().catch(() => dyno?.kill());
  }
}

export function printTeam(t: TeamResult): void {
  const p = t.params;
  const s = t.seed;
  console.log(`\n== team: ${p.users} signed-in users, ${p.rooms} rooms (${s.channels} channels, ${s.groups} private groups), ${p.perUser} rooms each, one process, ${p.rate} messages/s, ${p.workers} load workers ==`);
  console.log(`seeded ${s.users} users, ${s.sessions} sessions, ${s.memberships} memberships (${s.membersPerRoom.min} to ${s.membersPerRoom.max} per room) in ${s.seconds} s`);
  const c = t.connect;
  console.log(
    table([
      ['connect (ms)', 'p50', 'p90', 'p99', 'max', 'sockets', 'failed', 'wrong sidebar', 'ramp s'],
      ['open to sidebar (rooms)', c.sidebarReadyMs.p50, c.sidebarReadyMs.p90, c.sidebarReadyMs.p99, c.sidebarReadyMs.max, c.connected, c.failed, c.wrongSidebar, c.rampSeconds],
      ['connect to open', c.openMs.p50, c.openMs.p90, c.openMs.p99, c.openMs.max, '', '', '', ''],
    ]),
  );
  console.log(`sidebar ready by tenth of the ramp (p50/p99 ms): ${c.sidebarByTenth.map((b) => `${b.p50}/${b.p99}`).join(', ')}`);
  console.log(`CPU during the ramp: ${c.processes.map((q) => `${q.name} ${q.cpuPercent}%`).join(', ')}; the machine ${c.machineCpuPercent}% (of ${100 * cpus().length}%)`);
  const m = t.memory;
  console.log(
    table([
      ['app memory (MiB, after a full GC)', 'RSS', 'heap used', 'heap total', 'external'],
      ['before the sockets', m.before.rssMiB, m.before.heapUsedMiB, m.before.heapTotalMiB, m.before.externalMiB],
      [`${m.connections} sockets watching`, m.after.rssMiB, m.after.heapUsedMiB, m.after.heapTotalMiB, m.after.externalMiB],
    ]),
  );
  console.log(`memory per connection: ${m.rssPerConnectionKiB} KiB of RSS, ${m.heapPerConnectionKiB} KiB of heap`);
  const x = t.traffic;
  const l = x.latencyMs;
  console.log(
    table([
      ['latency (ms)', 'p50', 'p90', 'p99', 'p99.9', 'max', 'mean', 'deliveries', 'deliveries/s', 'lost', 'duplicates'],
      ['send to deliver', l.p50, l.p90, l.p99, l.p999, l.max, l.mean, l.count, x.deliveriesPerSecond, x.lost, x.duplicates],
      ['send to ack (sender)', x.ackMs.p50, x.ackMs.p90, x.ackMs.p99, x.ackMs.p999, x.ackMs.max, x.ackMs.mean, x.ackMs.count, '', '', ''],
    ]),
  );
  console.log(table([['process (during traffic)', 'CPU %', 'RSS MiB'], ...x.processes.map((q) => [q.name, q.cpuPercent, q.rssMiB])]));
  console.log(`the machine: ${x.machineCpuPercent}% CPU in all (of ${100 * cpus().length}%), ${x.otherCpuPercent}% of it not this benchmark's processes (other work, kernel)`);
  console.log(
    `messages sent: ${x.sent} (${x.measuredSent} measured); deliveries expected ${x.expectedDeliveries}, seen ${x.deliveries} ` +
      `(the last ${x.drainSeconds} s after the last send)` +
      `${x.unexpected ? `, ${x.unexpected} to a socket not in the room` : ''}; changefeeds open on the database: ${x.dbChangefeeds} ` +
      `(rooms: ${p.rooms}); errors seen by clients: ${JSON.stringify(x.clientErrors)}; transports at the end: ${JSON.stringify(x.transports)}`,
  );
  if (x.lost) console.log(`lost: ${x.lost}, of which ${x.lostClosed} to sockets that closed (why they closed: ${JSON.stringify(x.closeReasons)})`);
  if (x.lostExamples.length) console.log(`lost, for example: ${x.lostExamples.join('; ')}`);
  const lag = (ws: Array<{ maxMs: number; secondsOver50: number }>) => ws.map((w, k) => `${k + 1}: max ${w.maxMs} ms, ${w.secondsOver50} s over 50 ms`).join('; ');
  console.log(`worker event-loop delay during traffic: ${lag(x.workerLag)}`);
  console.log(`worker event-loop delay during the ramp: ${lag(c.workerLag)}`);
  const sc = (x: ScrapeTimes) => `p50 ${x.p50Ms} ms, max ${x.maxMs} ms (${x.count} scrapes answered, ${x.timedOut} not within 10 s; ${Math.round(x.bytes / 1024)} KiB, ${x.sockets} sockets reported)`;
  console.log(`GET /metrics with the sockets watching: idle ${sc(t.metricsScrape.idle)}; during traffic ${sc(t.metricsScrape.traffic)}`);
  for (const w of t.appWarnings) console.log(`app logged ${w.count} x "${w.msg}", for example ${w.example}`);
  console.log(`target p99 < 100 ms: ${l.p99 < 100 ? 'met' : 'NOT met'} (p99 ${l.p99} ms); sidebar ready p99 ${c.sidebarReadyMs.p99} ms`);
}
