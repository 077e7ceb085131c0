// Bad input to the embedded server gets an error or a closed connection, and the server keeps
// serving everyone else: raw sockets for what a driver would never send, rethinkdb-ts for the rest.
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import net from 'node:net';
import t, { type Test } from 'tap';
import { r } from 'rethinkdb-ts';
import { startReqlServer, type ReqlServer } from '../src/reql/index.js';

const MAGIC_V1_0 = 0x34c2bdc3;
let server: ReqlServer;

t.before(async () => {
  server = await startReqlServer({ port: 0, inMemory: true, password: 'sesame' });
});
t.teardown(() => server.close());

/** A raw socket that collects everything the server sends until it closes. */
function rawClient() {
  const sock = net.connect(server.port, server.host);
  let buf = Buffer.alloc(0);
  const waiters: Array<() => void> = [];
  let closed = false;
  sock.on('data', (b: Buffer) => {
    buf = Buffer.concat([buf, b]);
    waiters.splice(0).forEach((w) => w());
  });
  sock.on('close', () => {
    closed = true;
    waiters.splice(0).forEach((w) => w());
  });
  sock.on('error', () => undefined);
  const wait = () => new Promise<void>((res) => waiters.push(res));
  return {
    sock,
    get closed() {
      return closed;
    },
    async nullTerminated(): Promise<string> {
      for (;;) {
        const i = buf.indexOf(0);
        if (i >= 0) {
          const s = buf.subarray(0, i).toString();
          buf = buf.subarray(i + 1);
          return s;
        }
        if (closed) return buf.toString();
        await wait();
      }
    },
    async response(): Promise<{ token: bigint; body: { t: number; r: unknown[]; e?: number } }> {
      for (;;) {
        if (buf.length >= 12) {
          const len = buf.readUInt32LE(8);
          if (buf.length >= 12 + len) {
            const token = buf.readBigUInt64LE(0);
            const body = JSON.parse(buf.subarray(12, 12 + len).toString());
            buf = buf.subarray(12 + len);
            return { token, body };
          }
        }
        if (closed) throw new Error('closed before a response');
        await wait();
      }
    },
    async untilClosed(): Promise<void> {
      while (!closed) await wait();
    },
  };
}

function frame(token: number, payload: string | Buffer, declaredLength?: number): Buffer {
  const body = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const head = Buffer.alloc(12);
  head.writeBigUInt64LE(BigInt(token), 0);
  head.writeUInt32LE(declaredLength ?? body.length, 8);
  return Buffer.concat([head, body]);
}

/** Completes the V1_0 handshake with SCRAM-SHA-256 the way a driver does. */
async function handshake(c: ReturnType<typeof rawClient>, password: string) {
  const magic = Buffer.alloc(4);
  magic.writeUInt32LE(MAGIC_V1_0, 0);
  c.sock.write(magic);
  const hello = JSON.parse(await c.nullTerminated());
  const nonce = randomBytes(18).toString('base64');
  const first = `n=admin,r=${nonce}`;
  c.sock.write(JSON.stringify({ protocol_version: 0, authentication_method: 'SCRAM-SHA-256', authentication: `n,,${first}` }) + '\0');
  const serverFirst = JSON.parse(await c.nullTerminated()).authentication as string;
  const parts = Object.fromEntries(serverFirst.split(',').map((kv) => [kv[0], kv.slice(2)]));
  const salted = pbkdf2Sync(password, Buffer.from(parts.s, 'base64'), Number(parts.i), 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const stored = createHash('sha256').update(clientKey).digest();
  const finalBare = `c=biws,r=${parts.r}`;
  const sig = createHmac('sha256', stored).update(`${first},${serverFirst},${finalBare}`).digest();
  const proof = Buffer.from(clientKey.map((b, i) => b ^ sig[i]));
  c.sock.write(JSON.stringify({ authentication: `${finalBare},p=${proof.toString('base64')}` }) + '\0');
  return { hello, final: JSON.parse(await c.nullTerminated()) };
}

const stillServes = async (t: Test) => {
  const conn = await r.connect({ host: server.host, port: server.port, password: 'sesame' });
  t.equal(await r.expr(41).add(1).run(conn), 42, 'a well-behaved client is still served');
  await conn.close();
};

t.test('passwords: the right one connects, a wrong one is refused with an auth error', async (t) => {
  const conn = await r.connect({ host: server.host, port: server.port, password: 'sesame' });
  t.equal(await r.expr('ok').run(conn), 'ok');
  await conn.close();
  await t.rejects(r.connect({ host: server.host, port: server.port, password: 'wrong' }), /Wrong password/);
});

t.test('wrong magic number: an error message, then the connection closes', async (t) => {
  const c = rawClient();
  const bad = Buffer.alloc(4);
  bad.writeUInt32LE(0x3f61ba36, 0); // V0_3
  c.sock.write(bad);
  t.match(await c.nullTerminated(), /unsupported protocol version/);
  await c.untilClosed();
  await stillServes(t);
});

t.test('HTTP on the driver port is refused', async (t) => {
  const c = rawClient();
  c.sock.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  await c.untilClosed();
  t.ok(c.closed);
  await stillServes(t);
});

t.test('garbage in the handshake is refused', async (t) => {
  const c = rawClient();
  const magic = Buffer.alloc(4);
  magic.writeUInt32LE(MAGIC_V1_0, 0);
  c.sock.write(magic);
  await c.nullTerminated();
  c.sock.write('{"protocol_version": 0, "authentication_method": "SCRAM-SHA-256", "authentication": 17}\0');
  t.match(JSON.parse(await c.nullTerminated()), { success: false });
  await c.untilClosed();
  await stillServes(t);
});

t.test('after the handshake: bad frames get errors and the connection stays usable', async (t) => {
  const c = rawClient();
  const { final } = await handshake(c, 'sesame');
  t.match(final, { success: true });
  c.sock.write(frame(1, '{not json'));
  t.match((await c.response()).body, { t: 16 }, 'invalid JSON: CLIENT_ERROR');
  c.sock.write(frame(2, JSON.stringify([1, [9999, []], {}])));
  t.match((await c.response()).body, { t: 17, r: [/Unrecognized TermType/] }, 'unknown term id: COMPILE_ERROR');
  const depth = 100_000; // far past what JSON.stringify itself can produce
  c.sock.write(frame(3, `[1,${'[2,['.repeat(depth)}1${']]'.repeat(depth)},{}]`));
  t.match((await c.response()).body, { t: 17, r: [/nested too deeply/] }, 'deeply nested term: COMPILE_ERROR');
  c.sock.write(frame(4, JSON.stringify([2])));
  t.match((await c.response()).body, { t: 16 }, 'CONTINUE on an unknown token: CLIENT_ERROR');
  c.sock.write(frame(5, JSON.stringify([99])));
  t.match((await c.response()).body, { t: 16 }, 'unknown query type: CLIENT_ERROR');
  c.sock.write(frame(6, JSON.stringify([1, [24, [1, 2]], {}])));
  t.same((await c.response()).body, { t: 1, r: [3] }, 'a valid query on the same connection still works');
  c.sock.end();
});

t.test('an oversized frame is refused and the connection closed', async (t) => {
  const c = rawClient();
  await handshake(c, 'sesame');
  c.sock.write(frame(7, 'x', 512 * 1024 * 1024));
  t.match((await c.response()).body, { t: 16, r: [/greater than maximum/] });
  await c.untilClosed();
  await stillServes(t);
});

t.test('a client that vanishes mid-feed frees its feed', async (t) => {
  const conn = await r.connect({ host: server.host, port: server.port, password: 'sesame' });
  await r.tableCreate('vanish').run(conn);
  const before = server.stats().openFeeds;
  const c = rawClient();
  await handshake(c, 'sesame');
  c.sock.write(frame(1, JSON.stringify([1, [152, [[15, [[14, ['test']], 'vanish']]]], {}])));
  t.match((await c.response()).body, { t: 3 }, 'the feed started');
  t.equal(server.stats().openFeeds, before + 1);
  c.sock.destroy();
  for (let i = 0; i < 50 && server.stats().openFeeds > before; i++) await new Promise((res) => setTimeout(res, 20));
  t.equal(server.stats().openFeeds, before, 'its feed was closed');
  await r.table('vanish').insert({ id: 1 }).run(conn);
  t.equal(await r.table('vanish').count().run(conn), 1, 'writes to the table still work');
  await conn.close();
});
