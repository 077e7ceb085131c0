// The chaos run: while clients send uniquely numbered messages, one app process is killed
// with SIGKILL (its clients move to the other and resume) and later started again, and the
// database is killed with SIGKILL and restarted on the same data directory. At the end every
// client must hold every message of its room exactly once, in the order the database keeps.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { r } from 'rethinkdb-ts';
import { compareWire, type WireMessage } from '../../src/chat/protocol.js';
import { LoadClient } from './load-client.js';
import { spawnDyno, startDb, type Db, type Dyno } from './procs.js';

export interface ChaosOptions {
  /** how long messages are sent, faults included (ms) */
  durationMs: number;
  rooms: number;
  clientsPerRoom: number;
  /** messages per second per room */
  ratePerRoom: number;
  /** run the app from its TypeScript source (tests) rather than dist/ */
  fromSource?: boolean;
  log?: (msg: string) => void;
}

export interface ChaosReport {
  sent: number;
  /** acknowledged by the server (a resent message counts once) */
  acknowledged: number;
  /** deliveries expected: every message of a room, to every client of the room */
  expected: number;
  received: number;
  lost: number;
  duplicated: number;
  /** clients whose messages are not in the database's order of the room */
  outOfOrder: number;
  /** messages the database holds that no client sent (must be 0) */
  unknown: number;
  /** deliveries that arrived after a message later in room order (timestamps that tie
   *  arrive in write order; clients place them by (sent, id)) */
  arrivedOutOfOrder: number;
  /** of those, ones whose timestamps differ (must be 0: that would be a real reordering) */
  arrivedOutOfOrderNotTied: number;
  reconnects: number;
  faults: Array<{ atMs: number; fault: string }>;
  skipped: string[];
}

function dedupe(ms: WireMessage[]): WireMessage[] {
  const seen = new Map<string, WireMessage>();
  for (const m of ms) if (!seen.has(m.id)) seen.set(m.id, m);
  return [...seen.values()];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function runChaos(opts: ChaosOptions): Promise<ChaosReport> {
  const log = opts.log ?? (() => undefined);
  const dataDir = mkdtempSync(join(tmpdir(), 'chat-chaos-'));
  const realUrl = process.env.RETHINKDB_URL;
  const db: Db = await startDb({ dataDir, dbName: `chaos_${randomUUID().slice(0, 8)}`, realUrl });
  const env = { RATE_LIMIT_BURST: '10000', RATE_LIMIT_PER_SECOND: '10000' };
  const dynos: Dyno[] = [];
  const clients: Array<{ client: LoadClient; room: string; got: WireMessage[] }> = [];
  const sentByRoom = new Map<string, Set<string>>();
  const faults: ChaosReport['faults'] = [];
  const skipped: string[] = [];
  try {
    for (let i = 0; i < 2; i++) dynos.push(await spawnDyno(`web.${i + 1}`, db.url, env, { fromSource: opts.fromSource, echoStderr: !opts.fromSource }));
    const urls = () => dynos.map((d) => d.url);
    for (let room = 0; room < opts.rooms; room++) {
      const name = `chaos-${room}`;
      sentByRoom.set(name, new Set());
      for (let k = 0; k < opts.clientsPerRoom; k++) {
        // Half the clients start on each process; each fails over to the other.
        const first = (room + k) % 2;
        const order = [urls()[first], urls()[1 - first]];
        const got: WireMessage[] = [];
        const client = new LoadClient({ urls: order, room: name, failover: true, onMessage: (m) => got.push(m) });
        clients.push({ client, room: name, got });
      }
    }
    await Promise.all(clients.map((c) => c.client.start()));
    log(`${clients.length} clients in ${opts.rooms} rooms on 2 processes; sending for ${opts.durationMs} ms`);

    const t0 = performance.now();
    const at = () => Math.round(performance.now() - t0);
    const senders = [...sentByRoom.keys()].map((room) => clients.find((c) => c.room === room)!);
    let n = 0;
    const sending = (async () => {
      const interval = 1000 / opts.ratePerRoom;
      for (let tick = 0; performance.now() - t0 < opts.durationMs; tick++) {
        for (const s of senders) {
          const id = randomUUID();
          sentByRoom.get(s.room)!.add(id);
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
    const faultsDone = (async () => {
      const victim = dynos[1];
      await fault(0.15, `kill -9 app process ${victim.name}`, () => victim.kill());
      await fault(0.35, `start ${victim.name} again on its port`, async () => {
        dynos[1] = await spawnDyno(victim.name, db.url, { ...env, PORT: String(victim.port) }, { fromSource: opts.fromSource, echoStderr: !opts.fromSource });
      });
      if (realUrl) skipped.push('kill -9 of the database: RETHINKDB_URL is a server this run did not start');
      else {
        await fault(0.55, 'kill -9 the database', () => db.kill());
        await sleep(Math.min(1500, opts.durationMs * 0.1));
        await fault(0.6, 'start the database again on the same data directory', () => db.restart());
      }
      skipped.push('cutting the SSH tunnel: no tunnel in this run (test/tunnel-ssh2 and test/tunnel-openssh cut one with clients sending)');
    })();
    await Promise.all([sending, faultsDone]);

    // Everything sent gets acknowledged (clients resend what was not), then delivered.
    const settle = async (done: () => boolean, ms: number) => {
      const until = performance.now() + ms;
      while (!done() && performance.now() < until) await sleep(100);
    };
    await settle(() => clients.every((c) => c.client.pending.size === 0), 30_000);
    const sizeOf = (room: string) => sentByRoom.get(room)!.size;
    await settle(() => clients.every((c) => new Set(c.got.map((m) => m.id)).size >= sizeOf(c.room)), 30_000);

    // The database's order of each room.
    const conn = await r.connect({ ...db.address.servers[0], user: db.address.user, password: db.address.password, silent: true });
    const stored = new Map<string, string[]>();
    try {
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
    let arrivedOutOfOrder = 0;
    let arrivedOutOfOrderNotTied = 0;
    for (const [room, ids] of sentByRoom) unknown += stored.get(room)!.filter((id) => !ids.has(id)).length;
    for (const c of clients) {
      const sent = sentByRoom.get(c.room)!;
      const unique = dedupe(c.got).map((m) => m.id);
      expected += sent.size;
      received += c.got.length;
      duplicated += c.got.length - unique.length;
      lost += [...sent].filter((id) => !unique.includes(id)).length;
      // A client holds its messages in room order, (sent, id), as the page does; messages
      // whose timestamps tie may arrive in write order, and are put in place by that order.
      const held = dedupe(c.got).sort(compareWire);
      const dbOrder = stored.get(c.room)!;
      if (held.map((m) => m.id).join() !== dbOrder.join()) outOfOrder++;
      for (let i = 1; i < c.got.length; i++) {
        if (compareWire(c.got[i - 1], c.got[i]) > 0) {
          arrivedOutOfOrder++;
          if (Date.parse(c.got[i - 1].sent) !== Date.parse(c.got[i].sent)) arrivedOutOfOrderNotTied++;
        }
      }
    }
    const unacknowledged = clients.reduce((s, c) => s + c.client.pending.size, 0);
    return {
      sent: n,
      acknowledged: n - unacknowledged,
      expected,
      received,
      lost,
      duplicated,
      outOfOrder,
      unknown,
      arrivedOutOfOrder,
      arrivedOutOfOrderNotTied,
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
