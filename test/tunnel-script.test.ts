// tunnel-and-serve.sh, the Procfile's entry point, run as the platform runs it: shellcheck,
// no tunnel → exec the server, tunnel → wait for it then start the server, signals
// forwarded, and a non-zero exit as soon as the tunnel or the server dies.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, statSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { startReqlServer, type ReqlServer } from '../src/reql/index.js';
import { generateTestKeys, startTestSshServer, type TestKeys, type TestSshServer } from './fixtures/sshd/ssh2-server.js';
import { sleep, waitFor } from './fixtures/sshd/scenarios.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const script = path.join(root, 'tunnel-and-serve.sh');
const fakeServer = `node ${path.join(root, 'test/fixtures/sshd/fake-web-server.mjs')}`;

interface Line {
  event: string;
  pid: number;
  [key: string]: unknown;
}

interface Run {
  child: ChildProcess;
  lines: Line[];
  stderr: () => string;
  /** everything on stdout: the server's lines and the tunnel's (pino) log */
  stdout: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  next(event: string, ms?: number): Promise<Line>;
  tunnelPid(): number;
}

function run(env: Record<string, string>, args: string[] = []): Run {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(TUNNEL_|COMPOSE_|DYNO$|RETHINKDB_URL$)/.test(k)));
  // detached: its own process group, like a dyno, so a test can signal "the whole dyno".
  const child = spawn(script, args, { env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const lines: Line[] = [];
  let err = '';
  let out = '';
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  createInterface({ input: child.stdout! }).on('line', (l) => {
    out += `${l}\n`;
    try {
      const line = JSON.parse(l) as Partial<Line>;
      if (typeof line.event === 'string') lines.push(line as Line); // the tunnel's log lines have none
    } catch {
      // not JSON: neither ours nor the tunnel's
    }
  });
  const exit = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }));
  return {
    child,
    lines,
    stderr: () => err,
    stdout: () => out,
    exit,
    async next(event, ms = 20_000) {
      await waitFor(() => lines.some((l) => l.event === event), ms, `"${event}" from the server; stderr:\n${err}`);
      return lines.find((l) => l.event === event)!;
    },
    tunnelPid() {
      const m = /tunnel started \(pid (\d+)\)/.exec(err);
      if (!m) throw new Error(`no tunnel pid in:\n${err}`);
      return Number(m[1]);
    },
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

const noShellcheck = spawnSync('shellcheck', ['--version']).error
  ? 'SKIPPED: shellcheck is not installed (Debian package shellcheck; .ci/run installs it)'
  : false;
if (noShellcheck) console.error(noShellcheck);
t.test('tunnel-and-serve.sh passes shellcheck', { skip: noShellcheck }, async (t) => {
  const res = spawnSync('shellcheck', [script], { encoding: 'utf8' });
  t.equal(res.status, 0, res.stdout + res.stderr);
});

t.test('the Procfile: the schema once per deploy, then the web dynos, both through the tunnel', async (t) => {
  const procfile = readFileSync(path.join(root, 'Procfile'), 'utf8');
  const entries = Object.fromEntries(procfile.trim().split('\n').map((l) => l.split(/:\s*(.*)/s).slice(0, 2)));
  t.same(entries, { release: './tunnel-and-serve.sh npm run schema', web: './tunnel-and-serve.sh' });
  t.ok((statSync(script).mode & 0o111) !== 0, 'the script is executable');
});

t.test('with no tunnel settings it simply execs the server', async (t) => {
  const r = run({ SERVER_CMD: fakeServer });
  const ready = await r.next('ready');
  t.equal(ready.pid, r.child.pid, 'the server replaced the script (same pid)');
  t.equal(ready.rethinkdbUrl, null, 'the database address is left to the app');
  r.child.kill('SIGTERM');
  t.same(await r.exit, { code: 0, signal: null });
});

t.test('with tunnel settings', async (t) => {
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

  const tunnelEnv = async (extra: Record<string, string> = {}): Promise<Record<string, string>> => ({
    COMPOSE_SSH_PUBLIC_HOSTNAME: '127.0.0.1',
    COMPOSE_SSH_PUBLIC_PORT: String(ssh.port),
    COMPOSE_SSH_KEY: keys.clientPrivate,
    COMPOSE_RETHINKDB_INTERNAL_IPS: '127.0.0.1',
    TUNNEL_SSH_HOST_FINGERPRINT: keys.hostFingerprint,
    TUNNEL_REMOTE_PORT: String(db.port),
    TUNNEL_LOCAL_PORT: String(await freePort()),
    TUNNEL_CMD: 'node --import tsx src/tunnel/main.ts', // the sources, not a possibly stale dist/
    SERVER_CMD: fakeServer,
    FAKE_QUERY_DB: '1',
    ...extra,
  });

  t.test('waits for the tunnel, starts the server, forwards SIGTERM, exits with its status', async (t) => {
    const env = await tunnelEnv({ FAKE_EXIT_CODE: '0' });
    const r = run(env);
    const ready = await r.next('ready');
    t.equal(ready.db, 'reached through the tunnel', 'the server reached the database as soon as it started');
    t.equal(ready.rethinkdbUrl, `rethinkdb://127.0.0.1:${env.TUNNEL_LOCAL_PORT}`);
    t.equal(ready.seesSshKey, false, 'the SSH key is kept out of the server\'s environment');
    const tunnel = r.tunnelPid();

    r.child.kill('SIGTERM');
    t.match(await r.next('signal'), { signal: 'SIGTERM' }, 'the server got SIGTERM');
    t.match(await r.next('exit'), { last: 'last query' }, 'its last query still went through the tunnel');
    t.same(await r.exit, { code: 0, signal: null }, 'the script exits with the server\'s status');
    await waitFor(() => !alive(tunnel), 6000, 'the tunnel to stop');
  });

  t.test('SIGINT is forwarded too, and a non-zero status comes back', async (t) => {
    const r = run(await tunnelEnv({ FAKE_EXIT_CODE: '3' }));
    await r.next('ready');
    r.child.kill('SIGINT');
    t.match(await r.next('signal'), { signal: 'SIGINT' });
    t.same(await r.exit, { code: 3, signal: null });
  });

  t.test('SIGTERM to the whole dyno: the tunnel outlives the server\'s last queries', async (t) => {
    const r = run(await tunnelEnv());
    await r.next('ready');
    const tunnel = r.tunnelPid();
    process.kill(-r.child.pid!, 'SIGTERM'); // as Heroku and Dokku stop a dyno: every process
    t.match(await r.next('exit'), { last: 'last query' }, 'the tunnel kept carrying until the server was done');
    t.same(await r.exit, { code: 0, signal: null });
    await waitFor(() => !alive(tunnel), 6000, 'the tunnel to stop');
  });

  t.test('exits non-zero as soon as the tunnel dies, stopping the server', async (t) => {
    const r = run(await tunnelEnv());
    await r.next('ready');
    process.kill(r.tunnelPid(), 'SIGKILL');
    const exit = await r.exit;
    t.equal(exit.code, 1);
    t.match(r.stderr(), /the tunnel exited/);
    t.match(await r.next('signal', 1000), { signal: 'SIGTERM' }, 'the server was told to stop');
  });

  t.test('exits non-zero as soon as the server dies, stopping the tunnel', async (t) => {
    const r = run(await tunnelEnv({ FAKE_EXIT_AFTER_MS: '200', FAKE_EXIT_CODE: '0' }));
    await r.next('ready');
    const tunnel = r.tunnelPid();
    const exit = await r.exit;
    t.equal(exit.code, 1, 'a web server that stops on its own is a crash, even with status 0');
    t.match(r.stderr(), /the server exited on its own/);
    await waitFor(() => !alive(tunnel), 6000, 'the tunnel to stop');
  });

  t.test('a one-off command (the release phase) runs through the tunnel and returns its status', async (t) => {
    const env = await tunnelEnv({ FAKE_EXIT_AFTER_MS: '100', FAKE_EXIT_CODE: '0' });
    const r = run(env, ['node', 'test/fixtures/sshd/fake-web-server.mjs']);
    t.match(await r.next('ready'), { db: 'reached through the tunnel' });
    t.same(await r.exit, { code: 0, signal: null });
  });

  t.test('a tunnel that cannot come up: non-zero, and the server is never started', async (t) => {
    const r = run(await tunnelEnv({ TUNNEL_SSH_HOST_FINGERPRINT: generateTestKeys().hostFingerprint }));
    const exit = await r.exit;
    t.equal(exit.code, 1);
    t.match(r.stderr(), /the tunnel did not come up/);
    t.match(r.stdout(), /is not the configured TUNNEL_SSH_HOST_FINGERPRINT/, 'the tunnel says why');
    await sleep(100);
    t.equal(r.lines.length, 0, 'no server output');
  });

  t.test('bad settings are named and stop the script', async (t) => {
    const r = run(await tunnelEnv({ COMPOSE_SSH_PUBLIC_PORT: 'ssh' }));
    t.equal((await r.exit).code, 1);
    t.match(r.stderr(), /the tunnel did not come up/);
    t.match(r.stdout(), /COMPOSE_SSH_PUBLIC_PORT must be a port number/);
  });
});
