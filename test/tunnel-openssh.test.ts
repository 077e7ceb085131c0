// The tunnel against a real OpenSSH server (Debian's openssh-server), started here on a
// loopback port with throwaway keys, with the embedded ReQL server as the node behind it.
import t from 'tap';
import { r } from 'rethinkdb-ts';
import { startReqlServer, type ReqlServer } from '../src/reql/index.js';
import { loadTunnelConfig, type TunnelConfig } from '../src/tunnel/config.js';
import { startTunnel, TunnelFatalError, type TunnelOptions } from '../src/tunnel/tunnel.js';
import { generateTestKeys } from './fixtures/sshd/ssh2-server.js';
import { sshdMissing, startOpenSsh, type OpenSshServer } from './fixtures/sshd/openssh.js';
import { captureLogger, poolThrough, recordStates, roundTrip, sendMessages, storedIds, waitFor } from './fixtures/sshd/scenarios.js';

const missing = sshdMissing();
if (missing) {
  const reason = `SKIPPED: the real OpenSSH tests did not run: ${missing}`;
  console.error(reason);
  t.test('tunnel through a real OpenSSH server', { skip: reason }, async () => undefined);
} else {
  const FAST: TunnelOptions = { initialDelayMs: 50, maxDelayMs: 500, maxAttempts: 8, holdMs: 3000, readyTimeoutMs: 5000 };
  let db: ReqlServer;
  let sshd: OpenSshServer;

  t.before(async () => {
    db = await startReqlServer({ port: 0, inMemory: true });
    sshd = await startOpenSsh();
  });
  t.teardown(async () => {
    await sshd.close();
    await db.close();
  });

  const config = (env: Record<string, string | undefined> = {}): TunnelConfig =>
    loadTunnelConfig({
      // the article's names, as an existing deployment has them
      COMPOSE_SSH_PUBLIC_HOSTNAME: '127.0.0.1',
      COMPOSE_SSH_PUBLIC_PORT: String(sshd.port),
      COMPOSE_SSH_KEY: sshd.clientPrivate,
      COMPOSE_RETHINKDB_INTERNAL_IPS: '127.0.0.1',
      TUNNEL_SSH_USER: sshd.user,
      TUNNEL_SSH_HOST_FINGERPRINT: sshd.hostFingerprint,
      TUNNEL_REMOTE_PORT: String(db.port),
      TUNNEL_LOCAL_PORT: '0',
      ...env,
    });

  t.test('data reaches the database through OpenSSH', async (t) => {
    const tunnel = await startTunnel(config(), captureLogger().logger, FAST);
    t.teardown(() => tunnel.close());
    const pool = await poolThrough(tunnel.port);
    t.teardown(() => pool.drain());
    t.same(await roundTrip('through_openssh'), { id: 'hello', text: 'through the tunnel' });
  });

  t.test('OpenSSH with a host key other than the pinned one is refused', async (t) => {
    const err = await startTunnel(config({ TUNNEL_SSH_HOST_FINGERPRINT: generateTestKeys().hostFingerprint }), captureLogger().logger, FAST).catch(
      (e: unknown) => e,
    );
    t.ok(err instanceof TunnelFatalError);
    t.match((err as Error).message, `host key ${sshd.hostFingerprint} is not the configured TUNNEL_SSH_HOST_FINGERPRINT`);
  });

  t.test('a node OpenSSH cannot reach is skipped for the next', async (t) => {
    const tunnel = await startTunnel(config({ COMPOSE_RETHINKDB_INTERNAL_IPS: '::1 127.0.0.1', DYNO: 'web.2' }), captureLogger().logger, FAST);
    t.teardown(() => tunnel.close());
    t.equal(tunnel.node, '::1');
    const pool = await poolThrough(tunnel.port);
    t.teardown(() => pool.drain());
    t.same(await roundTrip('failover_openssh'), { id: 'hello', text: 'through the tunnel' });
    t.equal(tunnel.node, '127.0.0.1');
  });

  t.test('a killed sshd session is re-established and no message sent meanwhile is lost', async (t) => {
    const tunnel = await startTunnel(config(), captureLogger().logger, FAST);
    t.teardown(() => tunnel.close());
    const states = recordStates(tunnel);
    const pool = await poolThrough(tunnel.port);
    t.teardown(() => pool.drain());
    await r.db('test').tableCreate('survives_openssh').run();

    const ids = Array.from({ length: 60 }, (_, i) => `msg-${String(i).padStart(3, '0')}`);
    let sent = 0;
    const sending = sendMessages('survives_openssh', ids, (n) => (sent = n));
    await waitFor(() => sent >= 25, 15_000, '25 messages sent');
    t.ok(sshd.killSessions() >= 1, 'SIGKILLed the per-connection sshd');
    await waitFor(() => states.includes('down') && states.at(-1) === 'up', 15_000, 'the tunnel to come back');
    const { retries } = await sending;
    t.ok(retries > 0, `writes in flight failed and were retried (${retries} retries)`);
    t.same(await storedIds('survives_openssh'), ids, 'every message stored exactly once');
  });
}

