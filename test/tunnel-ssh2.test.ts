// The tunnel against an SSH server in-process (ssh2), with the embedded ReQL server as the
// database node behind it.
import net from 'node:net';
import t from 'tap';
import { r } from 'rethinkdb-ts';
import { startReqlServer, type ReqlServer } from '../src/reql/index.js';
import { loadTunnelConfig, type TunnelConfig } from '../src/tunnel/config.js';
import { startTunnel, TunnelFatalError, type TunnelOptions } from '../src/tunnel/tunnel.js';
import { generateTestKeys, startTestSshServer, type TestKeys, type TestSshServer } from './fixtures/sshd/ssh2-server.js';
import { captureLogger, poolThrough, recordStates, roundTrip, sendMessages, storedIds, waitFor } from './fixtures/sshd/scenarios.js';

const FAST: TunnelOptions = { initialDelayMs: 20, maxDelayMs: 200, maxAttempts: 5, holdMs: 2000, readyTimeoutMs: 5000 };

let db: ReqlServer;
let keys: TestKeys;
let ssh: TestSshServer;

t.before(async () => {
  db = await startReqlServer({ port: 0, inMemory: true });
  keys = generateTestKeys();
  ssh = await startTestSshServer(keys);
});
t.teardown(async () => {
  await ssh.close();
  await db.close();
});

function config(env: Record<string, string | undefined> = {}): TunnelConfig {
  return loadTunnelConfig({
    TUNNEL_SSH_HOST: '127.0.0.1',
    TUNNEL_SSH_PORT: String(ssh.port),
    TUNNEL_SSH_KEY: keys.clientPrivate,
    TUNNEL_SSH_HOST_FINGERPRINT: keys.hostFingerprint,
    TUNNEL_REMOTE_HOSTS: '127.0.0.1',
    TUNNEL_REMOTE_PORT: String(db.port),
    TUNNEL_LOCAL_PORT: '0',
    ...env,
  });
}

function refusesConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(false);
    });
    s.on('error', () => resolve(true));
  });
}

t.test('data reaches the database through the tunnel', async (t) => {
  const before = ssh.forwards.length;
  const tunnel = await startTunnel(config(), captureLogger().logger, FAST);
  t.teardown(() => tunnel.close());
  t.equal(tunnel.state, 'up');
  const pool = await poolThrough(tunnel.port);
  t.teardown(() => pool.drain());

  t.same(await roundTrip('through_ssh2'), { id: 'hello', text: 'through the tunnel' });
  t.ok(
    ssh.forwards.slice(before).every((f) => f === `127.0.0.1:${db.port}`) && ssh.forwards.length > before,
    'the database connections were carried by the SSH server',
  );
});

t.test('a wrong host key is refused before anything is sent', async (t) => {
  const logins = ssh.logins;
  const impostor = generateTestKeys().hostFingerprint;
  const started = Date.now();
  const err = await startTunnel(config({ TUNNEL_SSH_HOST_FINGERPRINT: impostor }), captureLogger().logger, FAST).catch((e: unknown) => e);
  t.ok(err instanceof TunnelFatalError, 'a fatal error, not retried');
  t.match((err as Error).message, new RegExp(`host key ${keys.hostFingerprint.replace(/[+/]/g, '\\$&')} is not the configured TUNNEL_SSH_HOST_FINGERPRINT`));
  t.equal(ssh.logins, logins, 'never authenticated to the impostor');
  t.ok(Date.now() - started < 2000, 'no retries with backoff');
});

t.test('the configured fingerprint may be one of several', async (t) => {
  const other = generateTestKeys().hostFingerprint;
  const tunnel = await startTunnel(config({ TUNNEL_SSH_HOST_FINGERPRINT: `${other} ${keys.hostFingerprint}` }), captureLogger().logger, FAST);
  t.equal(tunnel.state, 'up');
  await tunnel.close();
  t.equal(tunnel.state, 'closed');
  t.ok(await refusesConnections(tunnel.port), 'the local port is closed after close()');
});

t.test('an unverified host only with the explicit opt-out, and with a warning', async (t) => {
  const { logger, lines } = captureLogger();
  const tunnel = await startTunnel(
    config({ TUNNEL_SSH_HOST_FINGERPRINT: undefined, TUNNEL_INSECURE_SKIP_HOST_KEY_CHECK: '1' }),
    logger,
    FAST,
  );
  t.teardown(() => tunnel.close());
  const warning = lines().find((l) => l.level === 40 && /NOT verified/.test(l.msg));
  t.ok(warning, 'a warning says the server is not verified');
  t.match(JSON.stringify(warning), keys.hostFingerprint, 'and shows the fingerprint to pin');
});

t.test('a key the server does not accept fails at once', async (t) => {
  const stranger = generateTestKeys().clientPrivate;
  const err = await startTunnel(config({ TUNNEL_SSH_KEY: stranger }), captureLogger().logger, FAST).catch((e: unknown) => e);
  t.ok(err instanceof TunnelFatalError);
  t.match((err as Error).message, /refused the key for user compose/);
});

t.test('a passphrase-protected key', async (t) => {
  const encrypted = generateTestKeys('s3cret');
  const server = await startTestSshServer({ ...encrypted });
  t.teardown(() => server.close());
  const tunnel = await startTunnel(
    config({
      TUNNEL_SSH_PORT: String(server.port),
      TUNNEL_SSH_KEY: encrypted.clientPrivate,
      TUNNEL_SSH_KEY_PASSPHRASE: 's3cret',
      TUNNEL_SSH_HOST_FINGERPRINT: encrypted.hostFingerprint,
    }),
    captureLogger().logger,
    FAST,
  );
  t.teardown(() => tunnel.close());
  t.equal(tunnel.state, 'up');
});

t.test('the dyno number picks the node; a node that refuses is skipped for the next', async (t) => {
  // ::1 is loopback too, but the database listens on 127.0.0.1 only: that node refuses.
  const hosts = '::1 127.0.0.1';

  const before = ssh.forwards.length;
  const second = await startTunnel(config({ TUNNEL_REMOTE_HOSTS: hosts, DYNO: 'web.3' }), captureLogger().logger, FAST);
  t.teardown(() => second.close());
  t.equal(second.node, '127.0.0.1', 'web.3 of 2 nodes → node 1');
  const pool = await poolThrough(second.port);
  await r.expr(1).run();
  await pool.drain();
  t.same(new Set(ssh.forwards.slice(before)), new Set([`127.0.0.1:${db.port}`]), 'straight to its node');

  const mark = ssh.forwards.length;
  const { logger, lines } = captureLogger();
  const first = await startTunnel(config({ TUNNEL_REMOTE_HOSTS: hosts, DYNO: 'web.4' }), logger, FAST);
  t.teardown(() => first.close());
  t.equal(first.node, '::1', 'web.4 of 2 nodes → node 0');
  const moved = new Promise<string>((resolve) => first.once('node', resolve));
  const pool2 = await poolThrough(first.port);
  t.equal(await r.expr('still served').run(), 'still served');
  await pool2.drain();
  t.equal(await moved, '127.0.0.1');
  t.equal(first.node, '127.0.0.1', 'later connections go to the node that answered');
  t.same(ssh.forwards.slice(mark, mark + 2), [`::1:${db.port}`, `127.0.0.1:${db.port}`], 'tried its own node, then the next');
  t.ok(lines().some((l) => /database node refused/.test(l.msg)), 'the refusal is logged');
});

t.test('a killed SSH session is re-established and no message sent meanwhile is lost', async (t) => {
  const tunnel = await startTunnel(config(), captureLogger().logger, FAST);
  t.teardown(() => tunnel.close());
  const states = recordStates(tunnel);
  const pool = await poolThrough(tunnel.port);
  t.teardown(() => pool.drain());
  await r.db('test').tableCreate('survives_ssh2').run();

  const ids = Array.from({ length: 90 }, (_, i) => `msg-${String(i).padStart(3, '0')}`);
  let sent = 0;
  const sending = sendMessages('survives_ssh2', ids, (n) => (sent = n));
  const logins = ssh.logins;
  for (const at of [30, 60]) {
    await waitFor(() => sent >= at, 15_000, `${at} messages sent`);
    ssh.dropAll(); // the portal ends every SSH connection, mid-stream
    await waitFor(() => states.at(-1) === 'up' && states.includes('down'), 10_000, 'the tunnel to come back');
    states.length = 0;
  }
  const { retries } = await sending;
  t.equal(ssh.logins, logins + 2, 'one new SSH login per drop');
  t.ok(retries > 0, `writes in flight failed and were retried (${retries} retries)`);
  t.same(await storedIds('survives_ssh2'), ids, 'every message stored exactly once');
});

t.test('while SSH is down, new database connections wait for it briefly, then are refused', async (t) => {
  const server = await startTestSshServer(keys);
  t.teardown(() => server.close());
  const tunnel = await startTunnel(config({ TUNNEL_SSH_PORT: String(server.port) }), captureLogger().logger, {
    ...FAST,
    initialDelayMs: 100,
    maxDelayMs: 500,
    maxAttempts: 30,
    holdMs: 1500,
  });
  t.teardown(() => tunnel.close());

  // A short outage: a connection made during it waits, and works once SSH is back.
  const short = server.outage(500);
  await waitFor(() => tunnel.state === 'down', 2000, 'the drop to be noticed');
  const started = Date.now();
  const conn = await r.connect({ host: '127.0.0.1', port: tunnel.port, silent: true });
  t.equal(await r.expr('after the blip').run(conn), 'after the blip');
  t.ok(Date.now() - started >= 200, 'the connection waited for the SSH connection');
  await conn.close();
  await short;

  // A long outage: it is refused after holdMs, so the driver's own retry takes over.
  const long = server.outage(4000);
  await waitFor(() => tunnel.state === 'down', 2000, 'the drop to be noticed');
  const refusedAt = Date.now();
  const err = await r.connect({ host: '127.0.0.1', port: tunnel.port, silent: true, timeout: 10 }).catch((e: unknown) => e);
  t.ok(err instanceof Error, 'refused');
  const waited = Date.now() - refusedAt;
  t.ok(waited >= 1200 && waited < 3500, `after waiting about holdMs (${waited} ms)`);
  await long;
  await waitFor(() => tunnel.state === 'up', 5000, 'the tunnel to come back');
});

t.test('the tunnel gives up after a bounded number of attempts', async (t) => {
  const server = await startTestSshServer(keys);
  const tunnel = await startTunnel(config({ TUNNEL_SSH_PORT: String(server.port) }), captureLogger().logger, {
    ...FAST,
    maxAttempts: 3,
  });
  const failed = new Promise<Error>((resolve) => tunnel.once('failed', resolve));
  await server.close(); // the portal is gone for good
  const err = await failed;
  t.match(err.message, /SSH connection failed 3 times/);
  t.equal(tunnel.state, 'failed');
  t.ok(await refusesConnections(tunnel.port), 'the local port is closed, so nothing waits on a dead tunnel');
});
