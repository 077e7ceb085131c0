// `npm run bench`: the chat under load. Starts the database (the standalone embedded server
// on a fresh data directory, or RETHINKDB_URL with a database of its own), D app processes,
// and C Primus clients spread over R rooms, S of them sending; measures send-to-deliver
// latency of every delivery, deliveries/s, CPU and RSS of every process, memory per idle
// connection, the changefeeds open on the database, and the time to join a room with a large
// messages table. Prints a table, writes JSON and an SVG plot to --out.
//
//   npm run bench -- [--quick] [--dynos 2] [--clients 1000] [--rooms 50] [--senders 50]
//                    [--rate 100] [--duration 20] [--warmup 3] [--join-sizes 10000,100000,1000000]
//                    [--join-samples 20] [--no-join] [--no-load] [--out bench/results]
//                    [--rethinkdb | --cluster N] [--logins SECONDS] [--login-concurrency 8]
//                    [--team [--team-users 10000] [--team-rooms 200] [--team-per-user 20] [--team-rate 100]
//                     [--team-duration 20] [--team-warmup 3] [--team-workers 4] [--team-connect-rate 50]]
//                    [--conversations [--conversations-deep 1000000] [--conversations-sockets 1000]]
//                    [--files [--files-mib 100] [--files-photos 5]]
// --files: a phase of its own (bench/lib/files.ts): upload and download of a 100 MiB file (in
// the database, then in UPLOAD_DIR) with the app's peak memory; a 12-megapixel thumbnail.
//                    [--search [--search-messages 1000000] [--search-rooms 20] [--search-samples 30]]
// --search: a phase of its own (bench/lib/search.ts): search p50/p99 for a common word, a rare
// word, a prefix and a phrase at a tenth of the messages and at all; the write cost of the terms.
//                    [--webhooks [--webhooks-sockets 1000] [--webhooks-posts 2000]]
// --webhooks: a phase of its own (bench/lib/webhooks.ts): incoming-webhook posts per second on
// one process and POST-to-socket delay at 1,000 sockets; outgoing delivery delay; duplicates
// and losses after kill -9 of the process holding the claims (three processes).
// --conversations: a phase of its own (bench/lib/conversations.ts): history pages at depth,
// edits, deletions and reactions reaching 1,000 sockets, presence writes, catch-up.
// --logins: a phase of its own: log-ins per second on one process, and the chat latency
// there without and during them.
// --team: a phase of its own (bench/lib/team.ts): signed-in users, each in several rooms, on
// one process, watching all their rooms; sidebar-ready time, memory per connection, latency.
// The database: the standalone embedded server; --rethinkdb, a real RethinkDB node started
// from RETHINKDB_BIN; --cluster N, N real nodes (tables with N replicas); or RETHINKDB_URL.
// --clients takes a list (2000,5000,10000): clients are added step by step and each step is
// measured on its own, to find how many one process holds. Everything is bounded: every phase
// has a deadline, and only 127.0.0.1 is contacted (or RETHINKDB_URL's host for the database).
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { r, type Connection } from 'rethinkdb-ts';
import { LoadClient } from './lib/load-client.js';
import { chooseDb, cpuPercent, exitOnSignals, openFeedsOnDb, sampleProc, spawnDyno, startDb, withDeadline, type Db, type Dyno, type ProcSample } from './lib/procs.js';
import { loginPhase } from './lib/logins.js';
import { printTeam, teamPhase } from './lib/team.js';
import { conversationsPhase, printConversations } from './lib/conversations.js';
import { printWebhooks, webhooksPhase } from './lib/webhooks.js';
import { filesPhase, printFiles } from './lib/files.js';
import { printSearch, searchPhase } from './lib/search.js';
import { plotSvg, type PlotSeries } from './lib/plot.js';
import { roundSummary, Samples, summarize, table, Timeline, type Summary } from './lib/stats.js';

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    dynos: { type: 'string', default: '2' },
    clients: { type: 'string' },
    rooms: { type: 'string' },
    senders: { type: 'string' },
    rate: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    'connect-rate': { type: 'string', default: '400' },
    'join-sizes': { type: 'string' },
    'join-samples': { type: 'string', default: '20' },
    'no-join': { type: 'boolean', default: false },
    'no-load': { type: 'boolean', default: false },
    out: { type: 'string', default: 'bench/results' },
    profile: { type: 'string' },
    'node-args': { type: 'string' },
    rethinkdb: { type: 'boolean', default: false },
    logins: { type: 'string' },
    'login-concurrency': { type: 'string', default: '8' },
    cluster: { type: 'string' },
    team: { type: 'boolean', default: false },
    'team-users': { type: 'string' },
    'team-rooms': { type: 'string' },
    'team-per-user': { type: 'string' },
    'team-rate': { type: 'string' },
    'team-duration': { type: 'string' },
    'team-warmup': { type: 'string' },
    'team-workers': { type: 'string' },
    'team-connect-rate': { type: 'string', default: '50' },
    conversations: { type: 'boolean', default: false },
    'conversations-deep': { type: 'string' },
    'conversations-sockets': { type: 'string' },
    files: { type: 'boolean', default: false },
    'files-mib': { type: 'string' },
    'files-photos': { type: 'string' },
    search: { type: 'boolean', default: false },
    webhooks: { type: 'boolean', default: false },
    'webhooks-sockets': { type: 'string' },
    'webhooks-posts': { type: 'string' },
    'search-messages': { type: 'string' },
    'search-rooms': { type: 'string' },
    'search-samples': { type: 'string' },
  },
});

function num(name: string, v: string | undefined, fallback: number, min = 1): number {
  const n = v === undefined ? fallback : Number(v);
  if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number >= ${min}, got ${v}`);
  return n;
}
const list = (name: string, v: string | undefined, fallback: number[]) =>
  v === undefined ? fallback : v.split(',').map((x) => num(name, x, 0));

const quick = flags.quick;
const DYNOS = num('dynos', flags.dynos, 2);
const STEPS = list('clients', flags.clients, [quick ? 200 : 1000]).sort((a, b) => a - b);
const ROOMS = num('rooms', flags.rooms, quick ? 10 : 50);
const SENDERS = Math.min(num('senders', flags.senders, ROOMS), STEPS[0]);
const RATE = num('rate', flags.rate, quick ? 50 : 100);
const DURATION_S = num('duration', flags.duration, quick ? 5 : 20);
const WARMUP_S = num('warmup', flags.warmup, quick ? 1 : 3, 0);
const CONNECT_RATE = num('connect-rate', flags['connect-rate'], 400);
const JOIN_SIZES = list('join-sizes', flags['join-sizes'], quick ? [10_000, 50_000] : [10_000, 100_000, 1_000_000]).sort((a, b) => a - b);
const JOIN_SAMPLES = num('join-samples', flags['join-samples'], 20);
if (STEPS[0] < ROOMS) throw new Error('--clients must be at least --rooms (every room has a sender)');

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (msg: string) => process.stderr.write(`bench: ${msg}\n`);
const round2 = (v: number) => Math.round(v * 100) / 100;
const mib = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10;

interface StepResult {
  clients: number;
  sent: number;
  expectedDeliveries: number;
  deliveries: number;
  missing: number;
  latencyMs: Summary;
  deliveriesPerSecond: number;
  processes: Array<{ name: string; cpuPercent: number; rssMiB: number; peakRssMiB: number }>;
  bytesPerIdleConnection: number;
  dbChangefeeds: number;
  clientErrors: Record<string, number>;
  /** clients by engine.io transport at the end of the measurement */
  transports: Record<string, number>;
  /** per second of the measurement: deliveries, p50, p99, max (ms) */
  timeline: Array<{ second: number; deliveries: number; p50: number; p99: number; max: number; generatorLagMs: number }>;
  /** the load generator's own event-loop delay (ms): a delivery it is late to read looks late */
  generatorLagMs: { max: number; secondsOver50: number };
}

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'chat-bench-'));
  const startedAt = new Date();
  const db = await startDb({ choice: chooseDb(flags, dataDir), dbName: `bench_${randomUUID().slice(0, 8)}` });
  const dynos: Dyno[] = [];
  const clients: LoadClient[] = [];
  const result: Record<string, unknown> = {
    startedAt: startedAt.toISOString(),
    database: db.label,
    params: { dynos: DYNOS, clients: STEPS, rooms: ROOMS, senders: SENDERS, rate: RATE, durationS: DURATION_S, warmupS: WARMUP_S, quick },
  };
  const plots: PlotSeries[] = [];
  try {
    const env: Record<string, string> = { RATE_LIMIT_BURST: '10000', RATE_LIMIT_PER_SECOND: '10000', LOGIN_RATE_LIMIT_PER_ACCOUNT: '100000', LOGIN_RATE_LIMIT_PER_ADDRESS: '100000' };
    // --profile DIR: each app process writes a V8 CPU profile there when it stops.
    // --node-args "...": more node/V8 options for the app processes, for experiments.
    const nodeArgs = [...(flags['node-args'] ?? '').split(' ').filter(Boolean), ...(flags.profile ? ['--cpu-prof', `--cpu-prof-dir=${flags.profile}`] : [])];
    if (flags.team) {
      const team = await teamPhase(db, {
        users: num('team-users', flags['team-users'], quick ? 500 : 10_000),
        rooms: num('team-rooms', flags['team-rooms'], quick ? 50 : 200),
        perUser: num('team-per-user', flags['team-per-user'], 20),
        rate: num('team-rate', flags['team-rate'], quick ? 50 : 100),
        durationS: num('team-duration', flags['team-duration'], quick ? 5 : 20),
        warmupS: num('team-warmup', flags['team-warmup'], quick ? 1 : 3, 0),
        workers: num('team-workers', flags['team-workers'], quick ? 2 : 4),
        connectRate: num('team-connect-rate', flags['team-connect-rate'], 50),
        nodeArgs,
      });
      result.team = team;
      printTeam(team);
    }
    if (flags.conversations) {
      const c = await conversationsPhase(db, {
        deep: num('conversations-deep', flags['conversations-deep'], quick ? 50_000 : 1_000_000, 1000),
        sockets: num('conversations-sockets', flags['conversations-sockets'], quick ? 200 : 1000, 2),
        changes: quick ? 5 : 20,
        awayRooms: 20,
        awaySeconds: 300,
      });
      result.conversations = c;
      printConversations(c);
    }
    if (flags.files) {
      const f = await filesPhase(db, { mib: num('files-mib', flags['files-mib'], quick ? 20 : 100), photos: num('files-photos', flags['files-photos'], quick ? 2 : 5) });
      result.files = f;
      printFiles(f);
    }
    if (flags.webhooks) {
      const w = await webhooksPhase(db, {
        sockets: num('webhooks-sockets', flags['webhooks-sockets'], quick ? 200 : 1000, 2),
        posts: num('webhooks-posts', flags['webhooks-posts'], quick ? 500 : 2000),
        concurrency: 16,
        timed: quick ? 20 : 50,
        gapMs: 100,
        outgoing: quick ? 20 : 50,
        killRounds: quick ? 2 : 3,
        killBatch: 20,
      });
      result.webhooks = w;
      printWebhooks(w);
    }
    if (flags.search) {
      const s = await searchPhase(db, {
        messages: num('search-messages', flags['search-messages'], quick ? 100_000 : 1_000_000, 1000),
        rooms: num('search-rooms', flags['search-rooms'], 20),
        echo: process.env.BENCH_ECHO === '1',
        samples: num('search-samples', flags['search-samples'], 30),
        writes: Math.min(20_000, Math.max(2000, Math.floor(num('search-messages', flags['search-messages'], quick ? 100_000 : 1_000_000, 1000) / 5))),
      });
      result.search = s;
      printSearch(s);
    }
    // The other phases' app processes (none when only --team, --conversations or --search runs).
    const needDynos = !flags['no-load'] || !flags['no-join'] || flags.logins !== undefined;
    if (needDynos) log(`database ${result.database}; starting ${DYNOS} app process(es)`);
    for (let i = 0; needDynos && i < DYNOS; i++) dynos.push(await spawnDyno(`web.${i + 1}`, db.url, env, { nodeArgs, echoStderr: true }));
    if (db.nodes.length > 1) await db.replicate(db.nodes.length);
    if (!flags['no-load']) {
      result.load = await load(db, dynos, clients, plots);
      for (const c of clients.splice(0)) c.close();
    }
    if (flags.logins !== undefined) {
      const seconds = num('logins', flags.logins, 10);
      log(`log-in phase: ${seconds} s without log-ins, then ${seconds} s with ${flags['login-concurrency']} log-in loops, on ${dynos[0].name}`);
      const l = await loginPhase(dynos[0].url, { seconds, concurrency: num('login-concurrency', flags['login-concurrency'], 8), clients: 200, rooms: 10, rate: 50 });
      result.logins = l;
      console.log(`\n== log-ins on one process (${l.concurrency} at a time, argon2id m=19 MiB t=2 p=1) ==`);
      console.log(`log-ins per second: ${l.loginsPerSecond} (${l.loginErrors} errors)`);
      console.log(
        table([
          ['chat send to deliver (ms), 200 clients, 50 msg/s', 'p50', 'p90', 'p99', 'max'],
          ['without log-ins', l.chatLatencyWithoutLoginsMs.p50, l.chatLatencyWithoutLoginsMs.p90, l.chatLatencyWithoutLoginsMs.p99, l.chatLatencyWithoutLoginsMs.max],
          ['during log-ins', l.chatLatencyDuringLoginsMs.p50, l.chatLatencyDuringLoginsMs.p90, l.chatLatencyDuringLoginsMs.p99, l.chatLatencyDuringLoginsMs.max],
        ]),
      );
    }
    if (!flags['no-join']) result.join = await joinTimes(db, dynos[0]);
  } finally {
    for (const c of clients) c.close();
    await Promise.all(dynos.map((d) => d.stop().catch(() => d.kill())));
    await db.close().catch(() => undefined);
    rmSync(dataDir, { recursive: true, force: true });
  }
  mkdirSync(flags.out, { recursive: true });
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  const jsonFile = join(flags.out, `chat-${stamp}.json`);
  writeFileSync(jsonFile, JSON.stringify(result, null, 2));
  let svgFile = '';
  if (plots.length) {
    svgFile = join(flags.out, `chat-${stamp}.svg`);
    writeFileSync(svgFile, plotSvg(`chat latency: ${DYNOS} process(es), ${ROOMS} rooms, ${RATE} messages/s (${result.database})`, plots));
  }
  console.log(`\nresults: ${jsonFile}${svgFile ? `, plot: ${svgFile}` : ''}`);
}

// ---- the load phase ----------------------------------------------------------------------

async function load(db: Db, dynos: Dyno[], clients: LoadClient[], plots: PlotSeries[]): Promise<StepResult[]> {
  /** per message: when it was sent, its room, and whether it counts (sent in a measurement) */
  const sentAt = new Map<string, { at: number; room: number; measured: boolean }>();
  const roomSize = new Array<number>(ROOMS).fill(0);
  let measuring: { latencies: Samples; timeline: Timeline; deliveries: number } | undefined;

  const onMessage = (m: { id: string }, at: number, live: boolean) => {
    if (!live || !measuring) return;
    const s = sentAt.get(m.id);
    if (!s?.measured) return;
    const latency = at - s.at;
    measuring.latencies.push(latency);
    measuring.timeline.add(at, latency);
    measuring.deliveries++;
  };

  await sleep(1000);
  const base = dynos.map((d) => sampleProc(d.pid));
  const results: StepResult[] = [];
  for (const target of STEPS) {
    // Connect up to `target`, at CONNECT_RATE per second, at most 200 handshakes at a time.
    const before = clients.length;
    log(`connecting clients ${before + 1}..${target}`);
    const deadline = Date.now() + 60_000 + ((target - before) / CONNECT_RATE) * 3000;
    const t0 = performance.now();
    const inFlight = new Set<Promise<unknown>>();
    for (let i = before; i < target; i++) {
      if (Date.now() > deadline) throw new Error(`connecting ${target} clients took too long (${i} connected)`);
      const room = i % ROOMS;
      // Every room has clients on every process: client i of a room is on process i % D.
      const dyno = dynos[Math.floor(i / ROOMS) % dynos.length];
      const c = new LoadClient({ urls: [dyno.url], room: `bench-${room}`, onMessage });
      clients.push(c);
      roomSize[room]++;
      const p = c.start().finally(() => inFlight.delete(p));
      inFlight.add(p);
      if (inFlight.size >= 200) await Promise.race(inFlight);
      const due = t0 + ((i - before + 1) / CONNECT_RATE) * 1000;
      if (due > performance.now()) await sleep(due - performance.now());
    }
    await withDeadline(Promise.all(inFlight), 60_000, 'the last joins');
    log(`${target} clients joined in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    await sleep(2000);
    const idle = dynos.map((d) => sampleProc(d.pid));
    const bytesPerIdleConnection =
      idle.reduce((sum, s, k) => sum + s.rssBytes - base[k].rssBytes, 0) / clients.length;

    const senders = clients.slice(0, SENDERS);
    const sendPhase = async (seconds: number, measured: boolean) => {
      const start = performance.now();
      let sent = 0;
      const end = start + seconds * 1000;
      while (performance.now() < end) {
        const due = Math.floor(((performance.now() - start) / 1000) * RATE);
        for (; sent < due; sent++) {
          const c = senders[sent % senders.length];
          const id = randomUUID();
          const room = (sent % senders.length) % ROOMS;
          sentAt.set(id, { at: performance.now(), room, measured });
          c.send(id, `bench message ${sent}`);
        }
        await sleep(2);
      }
      return sent;
    };
    log(`warming up for ${WARMUP_S} s, then measuring for ${DURATION_S} s at ${RATE} messages/s`);
    await sendPhase(WARMUP_S, false);
    const tStart = performance.now();
    measuring = { latencies: new Samples(), timeline: new Timeline(tStart), deliveries: 0 };
    // The generator's event loop, second by second: when it is late, so is every delivery it reads.
    const loopDelay = monitorEventLoopDelay({ resolution: 5 });
    loopDelay.enable();
    const lagBySecond: number[] = [];
    const lagTimer = setInterval(() => {
      lagBySecond.push(loopDelay.max / 1e6);
      loopDelay.reset();
    }, 1000);
    const cpu0 = dynos.map((d) => sampleProc(d.pid));
    const dbCpu0 = db.nodes.map((n) => (n.pid ? sampleProc(n.pid) : undefined));
    const self0 = sampleProc(process.pid);
    const sent = await sendPhase(DURATION_S, true);
    const feedsOnDb = await openFeedsOnDb(db.address);
    const cpu1 = dynos.map((d) => sampleProc(d.pid));
    const dbCpu1 = db.nodes.map((n) => (n.pid ? sampleProc(n.pid) : undefined));
    const self1 = sampleProc(process.pid);
    // Let the last deliveries arrive (bounded).
    let expected = 0;
    for (const s of sentAt.values()) if (s.measured) expected += roomSize[s.room];
    const drainUntil = performance.now() + 5000;
    while (measuring.deliveries < expected && performance.now() < drainUntil) await sleep(50);
    clearInterval(lagTimer);
    loopDelay.disable();
    const m = measuring;
    measuring = undefined;
    for (const s of sentAt.values()) s.measured = false;
    const elapsed = (performance.now() - tStart) / 1000;

    const proc = (name: string, a: ProcSample, b: ProcSample) => ({
      name,
      cpuPercent: Math.round(cpuPercent(a, b)),
      rssMiB: mib(b.rssBytes),
      peakRssMiB: mib(b.peakRssBytes),
    });
    const processes = dynos.map((d, k) => proc(d.name, cpu0[k], cpu1[k]));
    db.nodes.forEach((n, k) => {
      const a = dbCpu0[k];
      const b = dbCpu1[k];
      if (a && b) processes.push(proc(db.nodes.length > 1 ? `database ${n.name}` : 'database', a, b));
    });
    processes.push(proc('load generator', self0, self1));
    const transports: Record<string, number> = {};
    for (const c of clients) transports[c.transport ?? 'closed'] = (transports[c.transport ?? 'closed'] ?? 0) + 1;
    const errors: Record<string, number> = {};
    for (const c of clients) for (const [code, n] of c.errors) errors[code] = (errors[code] ?? 0) + n;
    const step: StepResult = {
      clients: target,
      sent,
      expectedDeliveries: expected,
      deliveries: m.deliveries,
      missing: expected - m.deliveries,
      latencyMs: roundSummary(summarize(m.latencies.values())),
      deliveriesPerSecond: Math.round(m.deliveries / elapsed),
      processes,
      bytesPerIdleConnection: Math.round(bytesPerIdleConnection),
      dbChangefeeds: feedsOnDb,
      clientErrors: errors,
      transports,
      timeline: m.timeline
        .points()
        .map((p) => ({ ...p, p50: round2(p.p50), p99: round2(p.p99), max: round2(p.max), generatorLagMs: round2(lagBySecond[p.second] ?? NaN) })),
      generatorLagMs: { max: round2(Math.max(...lagBySecond)), secondsOver50: lagBySecond.filter((v) => v > 50).length },
    };
    results.push(step);
    plots.push({ label: `${target} clients`, latencies: m.latencies.values(), timeline: m.timeline.points() });
    printStep(step);
  }
  return results;
}

function printStep(s: StepResult): void {
  const l = s.latencyMs;
  console.log(`\n== ${s.clients} clients, ${ROOMS} rooms, ${DYNOS} process(es), ${RATE} messages/s ==`);
  console.log(
    table([
      ['latency (ms)', 'p50', 'p90', 'p99', 'max', 'mean', 'deliveries', 'deliveries/s', 'missing'],
      ['send to deliver', l.p50, l.p90, l.p99, l.max, l.mean, s.deliveries, s.deliveriesPerSecond, s.missing],
    ]),
  );
  console.log(table([['process', 'CPU %', 'RSS MiB', 'peak RSS MiB'], ...s.processes.map((p) => [p.name, p.cpuPercent, p.rssMiB, p.peakRssMiB])]));
  console.log(
    `memory per idle connection: ${(s.bytesPerIdleConnection / 1024).toFixed(1)} KiB (app RSS growth / clients); ` +
      `changefeeds open on the database: ${s.dbChangefeeds}; errors seen by clients: ${JSON.stringify(s.clientErrors)}; ` +
      `transports: ${JSON.stringify(s.transports)}`,
  );
  console.log(
    `load generator event-loop delay: max ${s.generatorLagMs.max} ms, over 50 ms in ${s.generatorLagMs.secondsOver50} of ` +
      `${s.timeline.length} seconds (deliveries it reads late are counted late)`,
  );
}

// ---- the join phase ----------------------------------------------------------------------

/**
 * Fills the messages table to each size and times joins: from joinRoom to the room's history
 * in the client, through the app, for rooms no socket of the process is in (so the process
 * opens the room's feed: the cold path). "Busy" rooms hold the newest messages; "quiet" rooms
 * hold a few old ones, which the article's query had to skip the whole table to find.
 */
async function joinTimes(db: Db, dyno: Dyno): Promise<unknown> {
  const conn: Connection = await r.connect({ ...db.address.servers[0], user: db.address.user, password: db.address.password, silent: true });
  const tableQ = r.db(db.dbName).table('messages');
  const QUIET_ROOMS = JOIN_SAMPLES * JOIN_SIZES.length;
  // Few enough busy rooms that each holds more than a full history (100) at the smallest size.
  const BUSY_ROOMS = 50;
  const out: Array<{ messages: number; busy: Summary; quiet: Summary; warm: Summary }> = [];
  let stored = Number(await tableQ.count().run(conn));
  let clock = Date.UTC(2020, 0, 1);
  try {
    // A few old messages in each quiet room, written first.
    const quiet = [];
    for (let q = 0; q < QUIET_ROOMS; q++) for (let k = 0; k < 3; k++) quiet.push(row(`quiet-${q}`, clock++, 'an old message'));
    await tableQ.insert(quiet, { durability: 'soft' }).run(conn);
    stored += quiet.length;
    let quietNext = 0;
    let busyNext = 0;
    for (const size of JOIN_SIZES) {
      const t0 = performance.now();
      while (stored < size) {
        const batch = [];
        for (let k = 0; k < 5000 && stored + batch.length < size; k++) batch.push(row(`busy-${(stored + k) % BUSY_ROOMS}`, clock++, 'message text of an ordinary length, like most chat lines are'));
        await tableQ.insert(batch, { durability: 'soft' }).run(conn);
        stored += batch.length;
      }
      log(`messages table at ${stored} rows (filled in ${((performance.now() - t0) / 1000).toFixed(1)} s); timing joins`);
      const busy = new Samples();
      const quietT = new Samples();
      const warm = new Samples();
      for (let i = 0; i < JOIN_SAMPLES; i++) {
        busy.push(await timeJoin(dyno, `busy-${busyNext++ % BUSY_ROOMS}`));
        quietT.push(await timeJoin(dyno, `quiet-${quietNext++}`));
      }
      // A room the process already has open answers from its window.
      const holder = new LoadClient({ urls: [dyno.url], room: `busy-${BUSY_ROOMS - 1}` });
      await withDeadline(holder.start(), 30_000, 'a join');
      for (let i = 0; i < JOIN_SAMPLES; i++) warm.push(await timeJoin(dyno, `busy-${BUSY_ROOMS - 1}`));
      holder.close();
      out.push({ messages: stored, busy: roundSummary(summarize(busy.values())), quiet: roundSummary(summarize(quietT.values())), warm: roundSummary(summarize(warm.values())) });
    }
  } finally {
    await conn.close();
  }
  console.log(`\n== time to join a room (joinRoom to history delivered), ${JOIN_SAMPLES} joins each, ms ==`);
  console.log(
    table([
      ['messages in table', 'busy p50', 'busy p99', 'quiet p50', 'quiet p99', 'open room p50', 'open room p99'],
      ...out.map((o) => [o.messages, o.busy.p50, o.busy.p99, o.quiet.p50, o.quiet.p99, o.warm.p50, o.warm.p99]),
    ]),
  );
  return out;
}

function row(room: string, t: number, body: string) {
  return { id: randomUUID(), room, body, author: { name: 'filler' }, sent: new Date(t) };
}

async function timeJoin(dyno: Dyno, room: string): Promise<number> {
  const c = new LoadClient({ urls: [dyno.url], room });
  try {
    return await withDeadline(c.start(), 30_000, `joining ${room}`);
  } finally {
    c.close();
  }
}

exitOnSignals();
main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
