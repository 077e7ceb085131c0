// A worker of the `--team` phase of `npm run bench` (bench/lib/team.ts): a child process
// holding a share of the signed-in users' sockets, so that the load generator is several
// event loops and not one. Each user's socket is a real Primus client (engine.io, upgraded to
// WebSocket) with the user's session cookie; on open it sends hello and watch, as the team page
// does, and the time from open to the `rooms` snapshot is the user's sidebar-ready time. Then
// it posts its share of the messages, each from a random one of its users into a random room
// of theirs, with the send time (performance.timeOrigin + performance.now(), one clock for
// every process of the machine) in the body; every delivery of a message to a member's socket
// is a latency sample, and every (message, member) pair is counted, to find lost deliveries
// and duplicates. The parent drives it over IPC (`serialization: 'advanced'`), one command at
// a time; it exits when the parent goes.
import { randomUUID } from 'node:crypto';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import Primus from 'primus';
import type { OutboundFrame } from '../../src/chat/wire.js';
import { Samples } from './stats.js';

export interface TeamUser {
  id: string;
  name: string;
  /** the session token: the `sid` cookie */
  token: string;
  /** indices into the room list */
  rooms: number[];
}

export type ToWorker =
  | { type: 'init'; index: number; workers: number; url: string; roomIds: string[]; users: TeamUser[] }
  /** open every socket, `perSecond` at most, at most `maxInFlight` not yet ready */
  | { type: 'connect'; perSecond: number; maxInFlight: number; timeoutMs: number }
  /** post `rate` messages per second: `warmupS` unmeasured seconds, then `durationS` measured */
  | { type: 'traffic'; rate: number; warmupS: number; durationS: number }
  | { type: 'count' }
  /** the room of every message sent, by its global number (-1: none) */
  | { type: 'tally'; roomBySeq: Int16Array }
  | { type: 'close' };

export type FromWorker =
  | { type: 'ready' }
  | {
      type: 'connected';
      /** per ready socket: open to `rooms` (ms), connect call to open (ms), and when the
       *  sidebar came (ms, shared clock) */
      sidebarMs: Float64Array;
      openMs: Float64Array;
      readyAt: Float64Array;
      failed: number;
      /** sidebars that did not list exactly the user's rooms */
      wrongSidebar: number;
      /** ready sockets per room index */
      membersByRoom: Int32Array;
      /** the worker's event-loop delay, max per second of the ramp (ms) */
      lagBySecond: number[];
    }
  /** the room index of each message this worker sent, by its own number */
  | { type: 'sent'; rooms: Int16Array; measured: number }
  | { type: 'count'; deliveries: number }
  | {
      type: 'tally';
      /** first deliveries of measured messages: latency (ms) and arrival time (ms, shared clock) */
      latencies: Float64Array;
      arrivals: Float64Array;
      /** measured messages this worker sent: send to the sender's ack (ms) */
      acks: Float64Array;
      deliveries: number;
      lost: number;
      /** of those, to sockets that had closed by then */
      lostClosed: number;
      duplicates: number;
      /** deliveries of a room the socket's user is not in */
      unexpected: number;
      lostExamples: string[];
      closed: number;
      /** engine.io's reasons for the sockets that closed */
      closeReasons: Record<string, number>;
      errors: Record<string, number>;
      transports: Record<string, number>;
      /** the worker's event-loop delay, max per second of the measured traffic (ms) */
      lagBySecond: number[];
    };

const Socket = Primus.createSocket({ transformer: 'engine.io', parser: 'JSON', pathname: '/primus', pingInterval: false });
const clock = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Client {
  user: TeamUser;
  roomSet: Set<string>;
  sock?: Primus.Client;
  startAt: number;
  openAt: number;
  sidebarMs?: number;
  readyAt: number;
  failed: boolean;
  closed: boolean;
  /** deliveries of each message, by global number (capped at 255) */
  counts?: Uint8Array;
}

let init: Extract<ToWorker, { type: 'init' }> | undefined;
let clients: Client[] = [];
let deliveries = 0;
let unexpected = 0;
const errors: Record<string, number> = {};
const closeReasons: Record<string, number> = {};
let latencies = new Samples();
let arrivals = new Samples();
let acks = new Samples();
/** measured messages sent and not yet acknowledged: client id to send time */
const unacked = new Map<string, number>();
let wrongSidebar = 0;

function send(m: FromWorker): void {
  process.send?.(m);
}

function receive(c: Client, f: OutboundFrame): void {
  switch (f.type) {
    case 'rooms': {
      if (c.sidebarMs !== undefined || c.failed) return;
      c.readyAt = clock();
      c.sidebarMs = c.readyAt - c.openAt;
      if (f.rooms.length !== c.roomSet.size || !f.rooms.every((r) => c.roomSet.has(r.id))) wrongSidebar++;
      return;
    }
    case 'deliverMessage': {
      deliveries++;
      const m = f.message;
      if (!c.roomSet.has(m.room)) unexpected++;
      // body: "team <global number> <sent at, ms> <1 measured | 0 warm-up>"
      const parts = m.body.split(' ');
      if (parts[0] !== 'team' || !c.counts) return;
      const seq = Number(parts[1]);
      if (!(seq >= 0 && seq < c.counts.length)) return;
      const n = c.counts[seq];
      if (n < 255) c.counts[seq] = n + 1;
      if (n === 0 && parts[3] === '1') {
        const at = clock();
        latencies.push(at - Number(parts[2]));
        arrivals.push(at);
      }
      return;
    }
    case 'ack': {
      const t = f.clientId === undefined ? undefined : unacked.get(f.clientId);
      if (t !== undefined && f.clientId !== undefined) {
        acks.push(clock() - t);
        unacked.delete(f.clientId);
      }
      return;
    }
    case 'error':
      errors[f.code] = (errors[f.code] ?? 0) + 1;
      return;
    default:
      return;
  }
}

function open(c: Client, url: string, timeoutMs: number, settled: (c: Client) => void): void {
  c.startAt = clock();
  const sock = new Socket(url, { strategy: false, manual: true, timeout: timeoutMs, transport: { extraHeaders: { cookie: `sid=${c.user.token}` } } });
  c.sock = sock;
  let done = false;
  const settle = () => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    settled(c);
  };
  const timer = setTimeout(() => {
    c.failed = true;
    sock.end();
    settle();
  }, timeoutMs);
  c.sidebarMs = undefined;
  sock.on('open', () => {
    c.openAt = clock();
    // As the team page does: hello, then watch, on open (over long-polling until the upgrade).
    sock.write({ type: 'hello', protocol: 2 });
    sock.write({ type: 'watch' });
    // engine.io says why a connection closed (src/primus.d.ts does not declare its events).
    const eio = sock.socket as unknown as { on(event: 'close', fn: (reason: string) => void): void } | undefined;
    eio?.on('close', (reason) => {
      closeReasons[reason] = (closeReasons[reason] ?? 0) + 1;
    });
  });
  sock.on('data', (f: OutboundFrame) => {
    receive(c, f);
    if (c.sidebarMs !== undefined) settle();
  });
  const gone = () => {
    c.closed = true;
    if (c.sidebarMs === undefined) c.failed = true;
    settle();
  };
  sock.on('end', gone);
  sock.on('close', gone);
  sock.on('error', () => undefined);
  sock.open();
}

async function connectAll(cmd: Extract<ToWorker, { type: 'connect' }>): Promise<void> {
  if (!init) throw new Error('not initialised');
  const { url } = init;
  const lag = monitorEventLoopDelay({ resolution: 5 });
  lag.enable();
  const rampLag: number[] = [];
  const lagTimer = setInterval(() => {
    rampLag.push(lag.max / 1e6);
    lag.reset();
  }, 1000);
  let inFlight = 0;
  let settledCount = 0;
  const t0 = performance.now();
  const settled = () => {
    inFlight--;
    settledCount++;
  };
  // Bounded: every client settles (ready, closed or timed out) within timeoutMs of its start.
  for (let i = 0; i < clients.length; i++) {
    while (inFlight >= cmd.maxInFlight) await sleep(5);
    const due = t0 + (i / cmd.perSecond) * 1000;
    if (due > performance.now()) await sleep(due - performance.now());
    inFlight++;
    open(clients[i], url, cmd.timeoutMs, settled);
  }
  while (settledCount < clients.length) await sleep(20);
  clearInterval(lagTimer);
  rampLag.push(lag.max / 1e6);
  lag.disable();
  const ready = clients.filter((c) => !c.failed && c.sidebarMs !== undefined);
  const membersByRoom = new Int32Array(init.roomIds.length);
  for (const c of ready) for (const r of c.user.rooms) membersByRoom[r]++;
  send({
    type: 'connected',
    sidebarMs: Float64Array.from(ready, (c) => c.sidebarMs ?? NaN),
    openMs: Float64Array.from(ready, (c) => c.openAt - c.startAt),
    readyAt: Float64Array.from(ready, (c) => c.readyAt),
    failed: clients.length - ready.length,
    wrongSidebar,
    membersByRoom,
    lagBySecond: rampLag,
  });
}

const lagBySecond: number[] = [];

async function traffic(cmd: Extract<ToWorker, { type: 'traffic' }>): Promise<void> {
  if (!init) throw new Error('not initialised');
  const { index, workers, roomIds } = init;
  const senders = clients.filter((c) => c.sidebarMs !== undefined && !c.failed);
  if (senders.length === 0) throw new Error('no socket is ready to send');
  const max = Math.ceil(cmd.rate * (cmd.warmupS + cmd.durationS)) + 1;
  for (const c of clients) c.counts = new Uint8Array(max * workers);
  const rooms = new Int16Array(max).fill(-1);
  const lag = monitorEventLoopDelay({ resolution: 5 });
  const start = performance.now();
  const measureFrom = start + cmd.warmupS * 1000;
  const end = measureFrom + cmd.durationS * 1000;
  let measuring = false;
  let lagTimer: NodeJS.Timeout | undefined;
  let k = 0;
  let measured = 0;
  // Every message due by `end` is sent, even when the loop wakes late (a last pass at the end).
  for (let last = false; !last; ) {
    const now = Math.min(performance.now(), end);
    last = now >= end;
    if (!measuring && now >= measureFrom) {
      measuring = true;
      lag.enable();
      lagTimer = setInterval(() => {
        lagBySecond.push(lag.max / 1e6);
        lag.reset();
      }, 1000);
    }
    const due = Math.min(max, Math.round(((now - start) / 1000) * cmd.rate));
    for (; k < due; k++) {
      // A random sender whose socket is still open (a few tries; else this message is skipped).
      let c = senders[Math.floor(Math.random() * senders.length)];
      for (let tries = 0; c.closed && tries < 20; tries++) c = senders[Math.floor(Math.random() * senders.length)];
      if (c.closed) continue;
      const room = c.user.rooms[Math.floor(Math.random() * c.user.rooms.length)];
      rooms[k] = room;
      if (measuring) measured++;
      const id = randomUUID();
      const at = clock();
      if (measuring) unacked.set(id, at);
      const body = `team ${k * workers + index} ${at.toFixed(3)} ${measuring ? 1 : 0}`;
      c.sock?.write({ type: 'createMessage', message: { id, room: roomIds[room], body, author: { name: c.user.name } } });
    }
    if (!last) await sleep(2);
  }
  clearInterval(lagTimer);
  lag.disable();
  send({ type: 'sent', rooms: rooms.slice(0, k), measured });
}

function tally(roomBySeq: Int16Array): void {
  if (!init) throw new Error('not initialised');
  const byRoom: Client[][] = init.roomIds.map(() => []);
  for (const c of clients) if (c.sidebarMs !== undefined && !c.failed) for (const r of c.user.rooms) byRoom[r].push(c);
  let lost = 0;
  let lostClosed = 0;
  let duplicates = 0;
  const lostExamples: string[] = [];
  for (let seq = 0; seq < roomBySeq.length; seq++) {
    const room = roomBySeq[seq];
    if (room < 0) continue;
    for (const c of byRoom[room]) {
      const n = c.counts && seq < c.counts.length ? c.counts[seq] : 0;
      if (n === 0) {
        lost++;
        if (c.closed) lostClosed++;
        if (lostExamples.length < 5) lostExamples.push(`message ${seq} in room ${init.roomIds[room]} to user ${c.user.id}${c.closed ? ' (socket closed)' : ''}`);
      } else if (n > 1) duplicates += n - 1;
    }
  }
  const transports: Record<string, number> = {};
  for (const c of clients) {
    const t = c.closed || !c.sock ? 'closed' : (c.sock.socket?.transport?.name ?? 'none');
    transports[t] = (transports[t] ?? 0) + 1;
  }
  send({
    type: 'tally',
    latencies: latencies.values().slice(),
    arrivals: arrivals.values().slice(),
    acks: acks.values().slice(),
    deliveries,
    lost,
    lostClosed,
    duplicates,
    unexpected,
    lostExamples,
    closed: clients.filter((c) => c.closed).length,
    closeReasons,
    errors,
    transports,
    lagBySecond,
  });
  latencies = new Samples();
  arrivals = new Samples();
  acks = new Samples();
}

function fail(e: unknown): void {
  process.stderr.write(`team worker ${init?.index ?? '?'}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
}

process.on('message', (m: ToWorker) => {
  switch (m.type) {
    case 'init':
      init = m;
      clients = m.users.map((user) => ({ user, roomSet: new Set(user.rooms.map((r) => m.roomIds[r])), startAt: 0, openAt: 0, readyAt: 0, failed: false, closed: false }));
      return send({ type: 'ready' });
    case 'connect':
      return void connectAll(m).catch(fail);
    case 'traffic':
      return void traffic(m).catch(fail);
    case 'count':
      return send({ type: 'count', deliveries });
    case 'tally':
      return tally(m.roomBySeq);
    case 'close':
      for (const c of clients) c.sock?.end();
      setTimeout(() => process.exit(0), 200).unref();
      return;
  }
});
// The parent went: so do we.
process.on('disconnect', () => process.exit(0));
