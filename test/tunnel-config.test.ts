// Tunnel settings: our names, the article's COMPOSE_* aliases, and errors that name the setting.
import t from 'tap';
import { loadTunnelConfig, tunnelRequested, TunnelConfigError, type Env } from '../src/tunnel/config.js';
import { generateTestKeys } from './fixtures/sshd/ssh2-server.js';

const keys = generateTestKeys();
const FP = keys.hostFingerprint;

function problems(env: Env): string[] {
  try {
    loadTunnelConfig(env);
  } catch (err) {
    if (err instanceof TunnelConfigError) return err.problems;
    throw err;
  }
  return [];
}

t.test('the article\'s COMPOSE_* variables configure the tunnel unchanged', async (t) => {
  const env = {
    COMPOSE_SSH_PUBLIC_HOSTNAME: 'portal.1.dblayer.com',
    COMPOSE_SSH_PUBLIC_PORT: '10000',
    COMPOSE_RETHINKDB_INTERNAL_IPS: '10.0.0.98 10.0.0.99',
    COMPOSE_SSH_KEY: keys.clientPrivate,
    TUNNEL_SSH_HOST_FINGERPRINT: FP,
    DYNO: 'web.3',
  };
  t.ok(tunnelRequested(env));
  const cfg = loadTunnelConfig(env);
  t.equal(cfg.sshHost, 'portal.1.dblayer.com');
  t.equal(cfg.sshPort, 10000);
  t.equal(cfg.sshUser, 'compose', 'the article\'s user is the default');
  t.same(cfg.remoteHosts, ['10.0.0.98', '10.0.0.99']);
  t.equal(cfg.remotePort, 28015);
  t.equal(cfg.localPort, 28015);
  t.equal(cfg.dyno, 3);
  t.same(cfg.hostFingerprints, [FP]);
  t.equal(cfg.insecureSkipHostKeyCheck, false);
});

t.test('our TUNNEL_* names, which win over the aliases', async (t) => {
  const cfg = loadTunnelConfig({
    TUNNEL_SSH_HOST: 'ssh.example.net',
    COMPOSE_SSH_PUBLIC_HOSTNAME: 'portal.1.dblayer.com',
    TUNNEL_SSH_USER: 'tunnel',
    TUNNEL_SSH_KEY: keys.clientPrivate,
    TUNNEL_SSH_HOST_FINGERPRINT: `${FP}, ${keys.hostFingerprint}=`,
    TUNNEL_REMOTE_HOSTS: '10.1.0.1,10.1.0.2, 10.1.0.3',
    TUNNEL_REMOTE_PORT: '29015',
    TUNNEL_LOCAL_PORT: '0',
  });
  t.equal(cfg.sshHost, 'ssh.example.net');
  t.equal(cfg.sshPort, 22);
  t.equal(cfg.sshUser, 'tunnel');
  t.same(cfg.remoteHosts, ['10.1.0.1', '10.1.0.2', '10.1.0.3']);
  t.equal(cfg.remotePort, 29015);
  t.equal(cfg.localPort, 0);
  t.equal(cfg.dyno, undefined, 'no DYNO: the tunnel picks a node at random');
  t.same(cfg.hostFingerprints, [FP, FP], 'a padded fingerprint is accepted');
});

t.test('no host settings: no tunnel requested', async (t) => {
  t.notOk(tunnelRequested({}));
  t.notOk(tunnelRequested({ TUNNEL_SSH_HOST: '  ' }));
});

const base = {
  TUNNEL_SSH_HOST: 'ssh.example.net',
  TUNNEL_SSH_KEY: keys.clientPrivate,
  TUNNEL_SSH_HOST_FINGERPRINT: FP,
  TUNNEL_REMOTE_HOSTS: '10.0.0.1',
};

t.test('errors name the setting as the user spelled it, never the key', async (t) => {
  t.match(problems({ ...base, TUNNEL_SSH_PORT: 'twenty-two' }), [/^TUNNEL_SSH_PORT must be a port number/]);
  t.match(problems({ ...base, TUNNEL_SSH_PORT: undefined, COMPOSE_SSH_PUBLIC_PORT: '70000' }), [/^COMPOSE_SSH_PUBLIC_PORT must be between 1 and 65535/]);
  t.match(problems({ ...base, TUNNEL_REMOTE_HOSTS: undefined }), [/^TUNNEL_REMOTE_HOSTS or COMPOSE_RETHINKDB_INTERNAL_IPS is required/]);
  t.match(problems({ ...base, TUNNEL_REMOTE_HOSTS: ' , ' }), [/^TUNNEL_REMOTE_HOSTS must list at least one address/]);
  t.match(problems({ ...base, TUNNEL_SSH_HOST_FINGERPRINT: 'aa:bb:cc' }), [/^TUNNEL_SSH_HOST_FINGERPRINT must be SHA256:/]);
  t.match(problems({ ...base, TUNNEL_INSECURE_SKIP_HOST_KEY_CHECK: 'maybe' }), [/^TUNNEL_INSECURE_SKIP_HOST_KEY_CHECK must be 1\/true\/yes/]);

  const garbage = 'not-a-key-SECRET-MATERIAL';
  const p = problems({ ...base, TUNNEL_SSH_KEY: garbage });
  t.match(p, [/^TUNNEL_SSH_KEY is not a private key/]);
  t.notMatch(p.join('\n'), /SECRET-MATERIAL/, 'the key content is not echoed');
  t.match(problems({ ...base, TUNNEL_SSH_KEY: keys.clientPublic }), [/^TUNNEL_SSH_KEY is not a private key|^TUNNEL_SSH_KEY is a public key/]);

  const all = problems({});
  t.match(all.join('\n'), /TUNNEL_SSH_HOST or COMPOSE_SSH_PUBLIC_HOSTNAME is required/);
  t.match(all.join('\n'), /TUNNEL_SSH_KEY or COMPOSE_SSH_KEY is required/);
});

t.test('the host key must be pinned unless checking is explicitly turned off', async (t) => {
  const p = problems({ ...base, TUNNEL_SSH_HOST_FINGERPRINT: undefined });
  t.match(p, [/^TUNNEL_SSH_HOST_FINGERPRINT is required.*TUNNEL_INSECURE_SKIP_HOST_KEY_CHECK=1/]);
  const cfg = loadTunnelConfig({ ...base, TUNNEL_SSH_HOST_FINGERPRINT: undefined, TUNNEL_INSECURE_SKIP_HOST_KEY_CHECK: '1' });
  t.equal(cfg.insecureSkipHostKeyCheck, true);
  t.same(cfg.hostFingerprints, []);
});

t.test('an encrypted key needs its passphrase, and the right one', async (t) => {
  const encrypted = generateTestKeys('correct horse').clientPrivate;
  t.match(problems({ ...base, TUNNEL_SSH_KEY: encrypted }), [/^TUNNEL_SSH_KEY is encrypted: set TUNNEL_SSH_KEY_PASSPHRASE/]);
  t.match(problems({ ...base, TUNNEL_SSH_KEY: encrypted, TUNNEL_SSH_KEY_PASSPHRASE: 'wrong' }), [/^TUNNEL_SSH_KEY_PASSPHRASE does not decrypt/]);
  t.same(problems({ ...base, TUNNEL_SSH_KEY: encrypted, TUNNEL_SSH_KEY_PASSPHRASE: 'correct horse' }), []);
});

t.test('a key pasted as one line with literal \\n still works', async (t) => {
  const oneLine = keys.clientPrivate.trim().split('\n').join('\\n');
  const cfg = loadTunnelConfig({ ...base, TUNNEL_SSH_KEY: oneLine });
  t.equal(cfg.sshKey.trim(), keys.clientPrivate.trim());
  const crlf = keys.clientPrivate.replace(/\n/g, '\r\n');
  t.same(problems({ ...base, TUNNEL_SSH_KEY: crlf }), []);
});

t.test('DYNO names give the dyno number', async (t) => {
  t.equal(loadTunnelConfig({ ...base, DYNO: 'web.1' }).dyno, 1);
  t.equal(loadTunnelConfig({ ...base, DYNO: 'release.1234' }).dyno, 1234);
  t.equal(loadTunnelConfig({ ...base, DYNO: 'scheduler' }).dyno, undefined);
});
