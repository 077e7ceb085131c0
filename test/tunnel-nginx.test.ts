// The deployment rehearsed: two dynos, each `tunnel-and-serve.sh` with its own SSH tunnel to
// the shared database, behind a real nginx (Debian's nginx-light). WebSocket clients work
// with round-robin; long-polling clients need session affinity, and break without it.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Socket as EngineSocket } from 'engine.io-client';
import t, { type Test } from 'tap';
import type Primus from 'primus';
import { Client, startDb, urlOf, type Frame, type WireMsg } from './fixtures/chat.js';
import { sleep, waitFor } from './fixtures/sshd/scenarios.js';
import { generateTestKeys, startTestSshServer } from './fixtures/sshd/ssh2-server.js';

const NGINX = '/usr/sbin/nginx';
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

async function httpStatus(url: string): Promise<number> {
  try {
    return (await fetch(url, { signal: AbortSignal.timeout(2000) })).status;
  } catch {
    return 0;
  }
}

/**
 * A client that opens its WebSocket directly (engine.io's `transports: ['websocket']`),
 * speaking Primus's framing: one JSON value per message, and answering Primus's pings.
 * Primus's own client cannot do this: it always begins with long-polling and upgrades.
 */
class WebSocketClient {
  readonly inbox: Frame[] = [];
  readonly received: WireMsg[] = [];
  private readonly sock: EngineSocket;
  private opened = false;

  constructor(url: string) {
    this.sock = new EngineSocket(url, { path: '/primus', transports: ['websocket'] });
    this.sock.on('open', () => (this.opened = true));
    this.sock.on('message', (data) => {
      const value: unknown = JSON.parse(String(data));
      if (typeof value === 'string') {
        if (value.startsWith('primus::ping::')) this.sock.send(JSON.stringify(`primus::pong::${value.slice(14)}`));
        return;
      }
      const frame = value as Frame;
      this.inbox.push(frame);
      if (frame.type === 'deliverMessage') this.received.push(frame.message as WireMsg);
    });
  }

  private async take(match: (f: Frame) => boolean, what: string): Promise<Frame> {
    let found: Frame | undefined;
    await waitFor(
      () => {
        const i = this.inbox.findIndex(match);
        if (i >= 0) found = this.inbox.splice(i, 1)[0];
        return found !== undefined;
      },
      10_000,
      what,
    );
    return found!;
  }

  async hello(): Promise<void> {
    await waitFor(() => this.opened, 10_000, 'the WebSocket to open');
    this.sock.send(JSON.stringify({ type: 'hello', protocol: 2 }));
    await this.take((f) => f.type === 'hello', 'hello');
  }

  async join(room: string): Promise<void> {
    this.sock.send(JSON.stringify({ type: 'joinRoom', room }));
    await this.take((f) => f.type === 'joined' && f.room === room, `joined ${room}`);
  }

  async send(room: string, body: string): Promise<void> {
    const id = crypto.randomUUID();
    this.sock.send(JSON.stringify({ type: 'createMessage', message: { id, room, body, author: { name: 'ws' } } }));
    await this.take((f) => f.type === 'ack' && f.clientId === id, `ack of ${body}`);
  }

  close(): void {
    this.sock.close();
  }
}

type AnyClient = WebSocketClient | Client;

/** Every client joins, every client sends one message, every client receives them all. */
async function everyoneHearsEveryone(t: Test, clients: AnyClient[], room: string): Promise<void> {
  for (const c of clients) await c.hello();
  for (const c of clients) await c.join(room);
  for (const [i, c] of clients.entries()) await c.send(room, `message ${i}`);
  const expected = clients.map((_, i) => `message ${i}`).sort();
  await waitFor(() => clients.every((c) => c.received.length >= clients.length), 15_000, 'every message at every client');
  for (const [i, c] of clients.entries()) {
    t.same(c.received.map((m) => m.body).sort(), expected, `client ${i} got every message once`);
  }
}

if (!existsSync(NGINX)) {
  const reason = `SKIPPED: the load-balancer tests did not run: ${NGINX} is not installed (Debian package nginx-light; .ci/run installs it)`;
  console.error(reason);
  t.test('two dynos behind nginx', { skip: reason }, async () => undefined);
} else {
  const db = await startDb(t);
  const keys = generateTestKeys();
  const ssh = await startTestSshServer(keys);
  t.teardown(() => ssh.close());
  const dbHost = db.address.servers[0];

  /** One dyno: tunnel-and-serve.sh with its own tunnel, running the real server. */
  async function startDyno(n: number): Promise<{ port: number; output: () => string }> {
    const port = await freePort();
    const tunnelPort = await freePort();
    const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(TUNNEL_|COMPOSE_|DYNO$|RETHINKDB_URL$)/.test(k)));
    const child: ChildProcess = spawn(path.join(root, 'tunnel-and-serve.sh'), [], {
      env: {
        ...base,
        DYNO: `web.${n}`,
        ANONYMOUS_ROOMS: '1',
        PORT: String(port),
        HOST: '127.0.0.1',
        LOG_LEVEL: 'info',
        TUNNEL_SSH_HOST: '127.0.0.1',
        TUNNEL_SSH_PORT: String(ssh.port),
        TUNNEL_SSH_KEY: keys.clientPrivate,
        TUNNEL_SSH_HOST_FINGERPRINT: keys.hostFingerprint,
        TUNNEL_REMOTE_HOSTS: dbHost.host,
        TUNNEL_REMOTE_PORT: String(dbHost.port),
        TUNNEL_LOCAL_PORT: String(tunnelPort),
        RETHINKDB_URL: urlOf({ ...db.address, servers: [{ host: '127.0.0.1', port: tunnelPort }] }, db.dbName),
        TUNNEL_CMD: 'node --import tsx src/tunnel/main.ts',
        SERVER_CMD: 'node --import tsx src/server.ts',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    t.teardown(async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      if (!(await Promise.race([exited.then(() => true), sleep(15_000).then(() => false)]))) process.kill(-child.pid!, 'SIGKILL');
    });
    await waitFor(() => child.exitCode !== null || /"msg":"listening"/.test(out), 60_000, `dyno ${n} to listen`).catch((err: Error) => {
      throw new Error(`${err.message}:\n${out}`);
    });
    if (child.exitCode !== null) throw new Error(`dyno ${n} exited:\n${out}`);
    for (let i = 0; i < 100 && (await httpStatus(`http://127.0.0.1:${port}/readyz`)) !== 200; i++) await sleep(100);
    return { port, output: () => out };
  }

  const dynos = await Promise.all([startDyno(1), startDyno(2)]);

  // nginx: one port round-robin, one with affinity (ip_hash), as in docs/deploy.md.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'chat-nginx-'));
  chmodSync(dir, 0o755);
  const temp = path.join(dir, 'tmp');
  mkdirSync(temp, { mode: 0o777 });
  chmodSync(temp, 0o777); // workers may run as nobody
  const accessLog = path.join(dir, 'access.log');
  const [roundRobinPort, stickyPort] = [await freePort(), await freePort()];
  const backends = dynos.map((d) => `        server 127.0.0.1:${d.port};`).join('\n');
  const location = (upstream: string) => `
        location / {
            proxy_pass http://${upstream};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_read_timeout 75s;
        }`;
  writeFileSync(
    path.join(dir, 'nginx.conf'),
    `worker_processes 1;
pid ${dir}/nginx.pid;
events { worker_connections 512; }
http {
    client_body_temp_path ${temp}; proxy_temp_path ${temp}; fastcgi_temp_path ${temp};
    uwsgi_temp_path ${temp}; scgi_temp_path ${temp};
    log_format lb '$server_port $status $upstream_addr "$request"';
    access_log ${accessLog} lb;
    map $http_upgrade $connection_upgrade {
        default upgrade;
        ''      close;
    }
    upstream round_robin {
${backends}
    }
    upstream sticky {
        ip_hash;
${backends}
    }
    server {
        listen 127.0.0.1:${roundRobinPort};${location('round_robin')}
    }
    server {
        listen 127.0.0.1:${stickyPort};${location('sticky')}
    }
}
`,
  );
  const nginx = spawn(NGINX, ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', path.join(dir, 'error.log'), '-g', 'daemon off;'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let nginxErr = '';
  nginx.stderr?.on('data', (d: Buffer) => (nginxErr += d.toString()));
  t.teardown(async () => {
    if (nginx.exitCode === null && nginx.signalCode === null) {
      const exited = once(nginx, 'exit');
      nginx.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });
  await waitFor(() => nginx.exitCode !== null || existsSync(path.join(dir, 'nginx.pid')), 10_000, 'nginx to start');
  for (let i = 0; i < 50 && (await httpStatus(`http://127.0.0.1:${roundRobinPort}/healthz`)) !== 200; i++) await sleep(100);
  if (nginx.exitCode !== null) throw new Error(`nginx exited:\n${nginxErr}\n${readFileSync(path.join(dir, 'error.log'), 'utf8')}`);

  /** The access log's lines for one nginx port: status, upstream, request. */
  const logged = (port: number) =>
    readFileSync(accessLog, 'utf8')
      .split('\n')
      .filter((l) => l.startsWith(`${port} `))
      .map((l) => {
        const [, status, upstream, request] = /^\d+ (\d+) (\S+) "(.*)"$/.exec(l) ?? [];
        return { status: Number(status), upstream, request };
      });

  const primusClient = (url: string, opts: Primus.ClientOptions = {}) => {
    const c = new Client(url, { reconnect: { min: 100, max: 400, retries: 100 }, ...opts });
    t.teardown(() => c.close());
    return c;
  };

  t.test('WebSocket clients work with round-robin', async (t) => {
    const clients = Array.from({ length: 4 }, () => new WebSocketClient(`http://127.0.0.1:${roundRobinPort}`));
    t.teardown(() => clients.forEach((c) => c.close()));
    await everyoneHearsEveryone(t, clients, 'round-robin');
    for (const c of clients) c.close();
    // nginx logs a WebSocket when it closes.
    await waitFor(() => logged(roundRobinPort).filter((l) => l.status === 101).length >= 4, 5000, 'the WebSockets in the access log');
    const upstreams = new Set(logged(roundRobinPort).filter((l) => l.status === 101).map((l) => l.upstream));
    t.equal(upstreams.size, 2, 'the WebSockets were spread over both dynos');
  });

  t.test('clients forced onto long-polling work with session affinity', async (t) => {
    const sticky = `http://127.0.0.1:${stickyPort}`;
    const polling = [primusClient(sticky, { websockets: false }), primusClient(sticky, { websockets: false })];
    // WebSocket clients on both dynos too: messages cross between processes.
    const ws = [new WebSocketClient(`http://127.0.0.1:${roundRobinPort}`), new WebSocketClient(`http://127.0.0.1:${roundRobinPort}`)];
    t.teardown(() => ws.forEach((c) => c.close()));
    await everyoneHearsEveryone(t, [...polling, ...ws], 'affinity');
    const polls = logged(stickyPort).filter((l) => /transport=polling/.test(l.request));
    t.ok(polls.length > 4, `the polling clients made many requests (${polls.length})`);
    t.ok(polls.every((l) => l.status === 200), 'every one of them answered');
    t.equal(new Set(polls.map((l) => l.upstream)).size, 1, 'all to the same dyno');
    t.notOk(
      logged(stickyPort).some((l) => /transport=websocket/.test(l.request)),
      'and none upgraded to WebSocket',
    );
  });

  t.test("Primus's default client starts on long-polling: it works with affinity too", async (t) => {
    const clients = [primusClient(`http://127.0.0.1:${stickyPort}`), primusClient(`http://127.0.0.1:${stickyPort}`)];
    await everyoneHearsEveryone(t, clients, 'default-client');
  });

  t.test('without affinity, long-polling fails: the next request reaches a dyno that does not know the session', async (t) => {
    const before = logged(roundRobinPort).length;
    const lost = primusClient(`http://127.0.0.1:${roundRobinPort}`, { websockets: false });
    await sleep(3000);
    const polls = logged(roundRobinPort)
      .slice(before)
      .filter((l) => /transport=polling/.test(l.request));
    t.ok(
      polls.some((l) => l.status === 400 && /sid=/.test(l.request)),
      'a request with the session id got 400 (Session ID unknown) from the other dyno',
    );
    t.ok(lost.opens > 1, `the client keeps starting over (${lost.opens} handshakes in 3 s)`);
    lost.close();
  });
}
