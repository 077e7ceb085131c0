// The pool's heartbeat closes a connection from which nothing is heard, and only such a one: a
// connection whose ping waits behind other answers is alive, and so is one whose answers this
// process could not read while its own event loop was held up. Against a real server through
// a proxy that reads the wire protocol and holds back the answers to the pool's pings.
import { createServer, connect, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import { r } from 'rethinkdb-ts';
import t, { type Test } from 'tap';
import { openPool } from '../src/db/pool.js';
import { startDb } from './fixtures/chat.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Passes RethinkDB's protocol through, but holds each answer to a ping (`r.expr(1)`, the
 * query [1, 1, ...]) back for `holdMs`. The client's handshake is a 4-byte magic number and
 * two NUL-ended messages, the server's three; then both sides send frames of an 8-byte token,
 * a 4-byte length and that many bytes of JSON.
 */
async function pingHoldingProxy(target: { host: string; port: number }, holdMs: number) {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    sockets.add(client).add(upstream);
    const pings = new Set<string>();
    const frames = (handshake: number, skip: number, onFrame: (token: string, frame: Buffer) => void) => {
      let buf = Buffer.alloc(0);
      let nuls = 0;
      let head = skip;
      return (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        if (head > 0) {
          const n = Math.min(head, buf.length);
          onFrame('', buf.subarray(0, n));
          buf = buf.subarray(n);
          head -= n;
        }
        while (nuls < handshake) {
          const at = buf.indexOf(0);
          if (at < 0) return;
          onFrame('', buf.subarray(0, at + 1));
          buf = buf.subarray(at + 1);
          nuls++;
        }
        while (buf.length >= 12 && buf.length >= 12 + buf.readUInt32LE(8)) {
          const len = 12 + buf.readUInt32LE(8);
          onFrame(buf.subarray(0, 8).toString('hex'), buf.subarray(0, len));
          buf = buf.subarray(len);
        }
      };
    };
    client.on(
      'data',
      frames(2, 4, (token, frame) => {
        if (token) {
          const query: unknown = JSON.parse(frame.subarray(12).toString());
          if (Array.isArray(query) && query[0] === 1 && query[1] === 1) pings.add(token);
        }
        upstream.write(frame);
      }),
    );
    upstream.on(
      'data',
      frames(3, 0, (token, frame) => {
        if (!pings.delete(token)) return void client.write(frame);
        const copy = Buffer.from(frame);
        setTimeout(() => client.writable && client.write(copy), holdMs);
      }),
    );
    const drop = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (typeof address !== 'object' || !address) throw new Error('proxy did not listen');
  return {
    port: address.port,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A logger whose warnings the test reads. */
function capturedLog() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { log: pino({ level: 'warn' }, stream), closings: () => lines.filter((l) => l.includes('does not answer')).length };
}

const db = await startDb(t);
const direct = await r.connect({ ...db.address.servers[0], user: db.address.user, password: db.address.password, silent: true });
t.teardown(() => direct.close());
await r.dbCreate(db.dbName).run(direct).catch(() => undefined);
await r.db(db.dbName).tableCreate('beats').run(direct);
const beats = r.db(db.dbName).table('beats');

async function poolThroughProxy(t: Test, holdMs: number) {
  const proxy = await pingHoldingProxy(db.address.servers[0], holdMs);
  t.teardown(() => proxy.close());
  const { log, closings } = capturedLog();
  const pool = openPool({ ...db.address, servers: [{ host: '127.0.0.1', port: proxy.port }] }, { log, perServer: 1, heartbeat: { everyMs: 100, timeoutMs: 400 } });
  t.teardown(() => pool.close());
  await pool.waitHealthy(10_000);
  return { pool, closings };
}

t.test('a connection heard from is kept while its ping waits', async (t) => {
  const { pool, closings } = await poolThroughProxy(t, 1500);
  // A feed on the pool's one connection hears a change every 100 ms, for 3 s.
  const feed = await pool.run(beats.changes());
  const got: number[] = [];
  const reading = (async () => {
    for await (const c of feed as AsyncIterable<{ new_val: { n: number } | null }>) {
      if (c.new_val) got.push(c.new_val.n);
      if (got.length === 30) return;
    }
  })();
  for (let n = 0; n < 30; n++) {
    await beats.insert({ id: `busy-${n}`, n }).run(direct);
    await sleep(100);
  }
  await Promise.race([reading, sleep(5000)]);
  t.equal(got.length, 30, 'every change reached the feed');
  t.equal(closings(), 0, 'the connection was never taken for dead, though each ping waited 1.5 s');
  await feed.close().catch(() => undefined);
});

t.test('a connection from which nothing is heard is closed', async (t) => {
  const { closings } = await poolThroughProxy(t, 1500);
  await sleep(1500);
  t.ok(closings() >= 1, 'a quiet connection whose ping is not answered within 400 ms is closed');
});

t.test('a held-up event loop judges nothing', async (t) => {
  // Each ping is answered after 300 ms, within the 400 allowed: one is waiting most of the time.
  const { pool, closings } = await poolThroughProxy(t, 300);
  for (let i = 0; i < 3; i++) {
    await sleep(250);
    // A second of synchronous work, as a process takes a burst of sockets: the ping's answer
    // arrives meanwhile and waits unread.
    const until = Date.now() + 1000;
    while (Date.now() < until) Math.sqrt(Math.random());
  }
  await sleep(500);
  t.equal(closings(), 0, 'not closed for an answer this process had not read yet');
  t.equal(await pool.run(r.expr(2)), 2, 'and the connection answers');
});
