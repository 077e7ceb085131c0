// The chaos run: while clients send uniquely numbered messages, one app process is killed
// with SIGKILL (its clients move to the other and resume) and later started again, and the
// database is killed with SIGKILL (on a cluster: the node holding the messages table's
// primary) and restarted on the same data directory. At the end every client must hold every
// message of its room exactly once, in the order the database keeps.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { r } from 'rethinkdb-ts';
import { compareWire, type WireMessage } from '../../src/chat/wire.js';
import { LoadClient } from './load-client.js';
import { spawnDyno, startDb, type Db, type DbChoice, type Dyno } from './procs.js';

export interface ChaosOptions {
  /** how long messages are sent, faults included (ms) */
  durationMs: number;
  rooms: number;
  clientsPerRoom: number;
  /** messages per second per room */
  ratePerRoom: number;
  /** the database; its data directory is made here. Default: the embedded server, unkind */
  db?: (dataDir: string) => DbChoice;
  /** the embedded server's unkindness (default: commits up to 300 ms late, clocks ±250 ms) */
  unkind?: { commitDelayMs: number; clockSkewMs: number };
  /** run the app from its TypeScript source (tests) rather than dist/ */
  fromSource?: boolean;
  /** 'kill' (default): kill -9 of an app process and of the database; 'rolling': each app
   *  process stopped with SIGTERM (as a platform restarts a dyno) and started again, in turn */
  plan?: 'kill' | 'rolling';
  log?: (msg: string) => void;
}

export interface ChaosReport {
  database: string;
  sent: number;
  /** acknowledged by the server (a resent message counts once) */
  acknowledged: number;
  /** deliveries expected: every message of a room, to every client of the room */
  expected: number;
  /** messages that arrived at clients (in deliverMessage and joined frames), duplicates included */
  received: number;
  /** messages of its room a client does not hold at the end */
  lost: number;
  /** messages that arrived at a client it already had */
  duplicated: number;
  /** clients whose messages are not in the database's order of the room */
  outOfOrder: number;
  /** messages the database holds that no client sent (must be 0) */
  unknown: number;
  /** arrivals after a message with a later timestamp (a write that committed late), which
   *  the client put in its place; not an error */
  lateArrivals: number;
  /** arrivals after a message with the same timestamp and a greater id (put in place too) */
  tiedArrivals: number;
  /** the longest time from a message's first send to its acknowledgement (ms) */
  longestSendMs: number;
  reconnects: number;
  faults: Array<{ atMs: number; fault: string }>;
  skipped: string[];
}

export const DEFAULT_UNKIND = { commitDelayMs: 300, clockSkewMs: 250 };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function chaosPassed(r: ChaosReport): boolean {
  return r.lost === 0 && r.duplicated === 0 && r.outOfOrder === 0 && r.unknown === 0 && r.acknowledged === r.sent && r.received === r.expected;
}

export async function runChaos(opts: ChaosOptions): Promise<ChaosReport> {
  const log = opts.log ?? (() => undefined);
  const dataDir = mkdtempSync(join(tmpdir(), 'chat-chaos-'));
  const choice = opts.db ? opts.db(dataDir) : { kind: 'embedded' as const, dataDir, unkind: opts.unkind ?? DEFAULT_UNKIND };
  const db: Db = await startDb({ choice, dbName: `chaos_${randomUUID().slice(0, 8)}` });
  const env = { RATE_LIMIT_BURST: '10000', RATE_LIMIT_PER_SECOND: '10000' };
  const dynos: Dyno[] = [];
  const clients: Array<{ client: LoadClient; room: string; arrived: WireMessage[] }> = [];
  const sentByRoom = new Map<string, Set<string>>();
  const faults: ChaosReport['faults'] = [];
  const skipped: string[] = [];
  const firstSent = new Map<string, number>();
  let longestSendMs = 0;
  try {
    for (let i = 0; i < 2; i++) dynos.push(await spawnDyno(`web.${i + 1}`, db.url, env, { fromSource: opts.fromSource, echoStderr: !opts.fromSource }));
    if (db.nodes.length > 1) {
      log(`giving every table ${db.nodes.length} replicas`);
      await db.replicate(db.nodes.length);
    }
    const urls = () => dynos.map((d) => d.url);
    for (let room = 0; room < opts.rooms; room++) {
      const name = `chaos-${room}`;
      sentByRoom.set(name, new Set());
      for (let k = 0; k < opts.clientsPerRoom; k++) {
        // Half the clients start on each process; each fails over to the other.
        const first = (room + k) % 2;
        const order = [urls()[first], urls()[1 - first]];
        const arrived: WireMessage[] = [];
        const onAck = (clientId: string) => {
          const t = firstSent.get(clientId);
          if (t !== undefined) longestSendMs = Math.max(longestSendMs, performance.now() - t);
        };
        const client = new LoadClient({ urls: order, room: name, failover: true, onArrival: (m) => arrived.push(m), onAck });
        clients.push({ client, room: name, arrived });
      }
    }
    await Promise.all(clients.map((c) => c.client.start()));
    log(`${clients.length} clients in ${opts.rooms} rooms on 2 processes, database ${db.label}; sending for ${opts.durationMs} ms`);

    const t0 = performance.now();
    const at = () => Math.round(performance.now() - t0);
    // Two senders per room, one starting on each process, take turns: writes to one room
    // come through both processes, so they can commit in another order than their timestamps.
    const senders = [...sentByRoom.keys()].map((room) => clients.filter((c) => c.room === room).slice(0, 2));
    let n = 0;
    const sending = (async () => {
      const interval = 1000 / opts.ratePerRoom;
      for (let tick = 0; performance.now() - t0 < opts.durationMs; tick++) {
        for (const pair of senders) {
          const s = pair[tick % pair.length];
          const id = randomUUID();
          sentByRoom.get(s.room)!.add(id);
          firstSent.set(id, performance.now());
          s.client.send(id, `chaos message ${n++}`);
        }
        const next = t0 + (tick + 1) * interval;
        await sleep(Math.max(0, next - performance.now()));
      }
    })();

    const fault = async (atFraction: number, name: string, act: () => Promise<void>) => {
      const wait = t0 + atFraction * opts.durationMs - performance.now();
      if (wait > 0) await sleep(wait);
      faults.push({ atMs: at(), fault: name });
      log(`${at()} ms: ${name}`);
      await act();
    };
    const restart = (i: number) => async () => {
      const victim = dynos[i];
      dynos[i] = await spawnDyno(victim.name, db.url, { ...env, PORT: String(victim.port) }, { fromSource: opts.fromSource, echoStderr: !opts.fromSource });
    };
    const rolling = async () => {
      // A platform's rolling restart: each process is told to stop (its sockets are told to
      // reconnect, and go to the other), and is started again before the next one stops.
      for (const [i, from] of [[0, 0.15], [1, 0.55]] as const) {
        await fault(from, `SIGTERM app process ${dynos[i].name}`, () => dynos[i].stop());
        await fault(from + 0.15, `start ${dynos[i].name} again on its port`, restart(i));
      }
    };
    const kills = async () => {
      const victim = dynos[1];
      await fault(0.15, `kill -9 app process ${victim.name}`, () => victim.kill());
      await fault(0.35, `start ${victim.name} again on its port`, restart(1));
      if (db.nodes.length === 0) skipped.push('kill -9 of the database: RETHINKDB_URL is a server this run did not start');
      else {
        const node = await db.primaryOf('messages');
        const what = db.nodes.length > 1 ? `the node holding the messages table's primary (${node.name})` : 'the database';
        await fault(0.5, `kill -9 ${what}`, () => node.kill());
        // A single node is the whole database: bring it back soon. A cluster carries on
        // without the node for a while, then gets it back.
        const back = db.nodes.length > 1 ? 0.75 : 0.5 + Math.min(1500, opts.durationMs * 0.1) / opts.durationMs;
        await fault(back, `start ${node.name} again on the same data directory`, () => node.restart());
      }
      skipped.push('cutting the SSH tunnel: no tunnel in this run (test/tunnel-ssh2 and test/tunnel-openssh cut one with clients sending)');
    };
    const faultsDone = opts.plan === 'rolling' ? rolling() : kills();
    await Promise.all([sending, faultsDone]);

    // Everything sent gets acknowledged (clients resend what was not), then delivered.
    const settle = async (done: () => boolean, ms: number) => {
      const until = performance.now() + ms;
      while (!done() && performance.now() < until) await sleep(100);
    };
    await settle(() => clients.every((c) => c.client.pending.size === 0), 30_000);
    const sizeOf = (room: string) => sentByRoom.get(room)!.size;
    await settle(() => clients.every((c) => c.client.session.history.messages.length >= sizeOf(c.room)), 30_000);
    // Duplicates would come late too: give them a moment.
    await sleep(500);

    // The database's order of each room (through a node that is up).
    const alive = db.nodes.find((x) => x.alive);
    const server = alive ? { host: '127.0.0.1', port: alive.port } : db.address.servers[0];
    const conn = await r.connect({ ...server, user: db.address.user, password: db.address.password, silent: true });
    const stored = new Map<string, string[]>();
    try {
      // A node restarted late (on a loaded machine) may still be making the table ready.
      await r.db(db.dbName).table('messages').wait({ waitFor: 'ready_for_reads', timeout: 60 }).run(conn);
      for (const room of sentByRoom.keys()) {
        const rows: unknown = await r
          .db(db.dbName)
          .table('messages')
          .between([room, r.minval], [room, r.maxval], { index: 'room_sent' })
          .orderBy({ index: 'room_sent' })
          .pluck('id')
          .run(conn);
        stored.set(room, (rows as Array<{ id: string }>).map((x) => x.id));
      }
    } finally {
      await conn.close();
    }

    let expected = 0;
    let received = 0;
    let lost = 0;
    let duplicated = 0;
    let outOfOrder = 0;
    let unknown = 0;
    let lateArrivals = 0;
    let tiedArrivals = 0;
    for (const [room, ids] of sentByRoom) unknown += stored.get(room)!.filter((id) => !ids.has(id)).length;
    for (const c of clients) {
      const sent = sentByRoom.get(c.room)!;
      const held = c.client.session.history.messages;
      const heldIds = new Set(held.map((m) => m.id));
      expected += sent.size;
      received += c.arrived.length;
      duplicated += c.arrived.length - new Set(c.arrived.map((m) => m.id)).size;
      lost += [...sent].filter((id) => !heldIds.has(id)).length;
      if (held.map((m) => m.id).join() !== stored.get(c.room)!.join()) outOfOrder++;
      // Arrival order against room order: a late commit arrives after a later timestamp.
      let newest: WireMessage | undefined;
      for (const m of c.arrived) {
        if (newest && compareWire(m, newest) < 0) {
          if (Date.parse(m.sent) === Date.parse(newest.sent)) tiedArrivals++;
          else lateArrivals++;
        }
        if (!newest || compareWire(m, newest) > 0) newest = m;
      }
    }
    const unacknowledged = clients.reduce((s, c) => s + c.client.pending.size, 0);
    return {
      database: db.label,
      sent: n,
      acknowledged: n - unacknowledged,
      expected,
      received,
      lost,
      duplicated,
      outOfOrder,
      unknown,
      lateArrivals,
      tiedArrivals,
      longestSendMs: Math.round(longestSendMs),
      reconnects: clients.reduce((s, c) => s + c.client.connects - 1, 0),
      faults,
      skipped,
    };
  } finally {
    for (const c of clients) c.client.close();
    await Promise.all(dynos.map((d) => d.stop().catch(() => d.kill())));
    await db.close().catch(() => undefined);
    rmSync(dataDir, { recursive: true, force: true });
  }
}
