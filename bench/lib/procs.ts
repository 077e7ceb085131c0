// Processes the benchmark and the chaos run start: the standalone embedded database (or the
// RethinkDB of RETHINKDB_URL), app processes ("dynos"), and readings of their CPU and memory
// from /proc. Everything listens on loopback.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { r, type Connection } from 'rethinkdb-ts';
import { formatRethinkdbUrl, parseRethinkdbUrl, type DbAddress } from '../../src/config.js';

export interface DbNode {
  readonly name: string;
  /** the driver port */
  readonly port: number;
  readonly pid: number | undefined;
  readonly alive: boolean;
  /** kill -9 */
  kill(): Promise<void>;
  /** start again on the same ports and data directory */
  restart(): Promise<void>;
}

export interface Db {
  /** 'embedded', 'rethinkdb' (real nodes we started) or 'url' (RETHINKDB_URL: not ours) */
  readonly kind: 'embedded' | 'rethinkdb' | 'url';
  /** a line for reports: which database this is */
  readonly label: string;
  address: DbAddress;
  dbName: string;
  /** RETHINKDB_URL for an app on this database */
  url: string;
  /** the database processes we started (none for 'url') */
  nodes: DbNode[];
  /** the node that holds the primary replica of a table of the app's database */
  primaryOf(table: string): Promise<DbNode>;
  /** gives every table of the app's database this many replicas, and waits until they are ready */
  replicate(replicas: number): Promise<void>;
  /** stop it (ours) or drop the benchmark's database (RETHINKDB_URL) */
  close(): Promise<void>;
}

export type DbChoice =
  /** the standalone embedded server; `unkind`: late commits and clock skew, as a cluster has */
  | { kind: 'embedded'; dataDir: string; unkind?: { commitDelayMs: number; clockSkewMs: number } }
  /** real RethinkDB nodes started here from `bin` (RETHINKDB_BIN), one or a cluster */
  | { kind: 'rethinkdb'; bin: string; dataDir: string; nodes: number }
  | { kind: 'url'; url: string };

/**
 * Which database a command-line run uses: `--cluster N` or `--rethinkdb` start real nodes
 * from RETHINKDB_BIN; otherwise RETHINKDB_URL when it is set, or the embedded server.
 */
export function chooseDb(flags: { rethinkdb?: boolean; cluster?: string }, dataDir: string, unkind?: { commitDelayMs: number; clockSkewMs: number }): DbChoice {
  const nodes = flags.cluster === undefined ? (flags.rethinkdb ? 1 : 0) : Number(flags.cluster);
  if (!Number.isInteger(nodes) || nodes < 0 || nodes > 7) throw new Error(`--cluster must be a number of nodes from 1 to 7, got ${flags.cluster}`);
  if (nodes > 0) {
    const bin = process.env.RETHINKDB_BIN;
    if (!bin) throw new Error('--rethinkdb and --cluster start real RethinkDB nodes: set RETHINKDB_BIN to the server binary (for example RETHINKDB_BIN=../shared/rethinkdb/rethinkdb)');
    if (!existsSync(bin)) throw new Error(`RETHINKDB_BIN is ${bin}, which does not exist`);
    return { kind: 'rethinkdb', bin, dataDir, nodes };
  }
  if (process.env.RETHINKDB_URL) return { kind: 'url', url: process.env.RETHINKDB_URL };
  return { kind: 'embedded', dataDir, unkind };
}

// Children die with us, whatever way we go (an error, or process.exit after a signal: the
// command-line tools turn SIGINT/SIGTERM into an exit).
const children = new Set<ChildProcess>();
function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}
process.once('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

/** For command-line tools: Ctrl-C or a SIGTERM becomes an exit, so the children are killed. */
/** `p`, or an error naming `what` once `ms` have passed: every step of a run is bounded. */
export async function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} took more than ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

export function exitOnSignals(): void {
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130));
}

async function waitForLine(child: ChildProcess, pattern: RegExp, what: string, timeoutMs = 30_000): Promise<RegExpExecArray> {
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not start:\n${out.slice(-2000)}`)), timeoutMs);
    const onData = (b: Buffer) => {
      out += b.toString();
      const m = pattern.exec(out);
      if (m) {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        child.off('exit', onExit);
        resolve(m);
      }
    };
    const onExit = (code: number | null) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code}) before it was ready:\n${out.slice(-2000)}`));
    };
    child.stdout?.on('data', onData);
    child.once('exit', onExit);
  });
}

async function killHard(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

async function connectTo(address: DbAddress, server = address.servers[0]): Promise<Connection> {
  return r.connect({ host: server.host, port: server.port, user: address.user, password: address.password, silent: true });
}

/** A free TCP port on loopback (for a server that must keep its port across restarts). */
async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as AddressInfo).port;
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

/** The standalone embedded server (`src/reql/cli.ts`) in its own process on `dataDir`. */
async function startEmbeddedNode(dataDir: string, unkind?: { commitDelayMs: number; clockSkewMs: number }): Promise<StoppableNode> {
  let port = 0;
  let child: ChildProcess;
  const extra = unkind ? ['--unkind-commit-delay', String(unkind.commitDelayMs), '--unkind-clock-skew', String(unkind.clockSkewMs)] : [];
  const start = async () => {
    child = track(
      spawn(process.execPath, ['--import', 'tsx', 'src/reql/cli.ts', '--port', String(port), '--data', dataDir, ...extra], {
        stdio: ['ignore', 'pipe', 'inherit'],
      }),
    );
    const m = await waitForLine(child, /serving RethinkDB protocol on [^:\s]+:(\d+)/, 'the embedded database');
    port = Number(m[1]);
    child.stdout?.resume();
  };
  await start();
  return serverNode('embedded', () => port, () => child, start);
}

/** A database process that can be killed, stopped (SIGTERM) and started again by `start`. */
function serverNode(name: string, port: () => number, child: () => ChildProcess, start: () => Promise<void>): StoppableNode {
  const running = () => child().exitCode === null && child().signalCode === null;
  return {
    name,
    get port() {
      return port();
    },
    get pid() {
      return child().pid;
    },
    get alive() {
      return running();
    },
    kill: () => killHard(child()),
    async restart() {
      await killHard(child());
      await start();
    },
    async stop() {
      if (!running()) return;
      const exited = once(child(), 'exit');
      child().kill('SIGTERM');
      await exited;
    },
  };
}

type StoppableNode = DbNode & { stop(): Promise<void> };

/** One real RethinkDB node, on loopback, with fixed ports so that it can restart in place. */
async function startRethinkdbNode(bin: string, dir: string, name: string, ports: { driver: number; cluster: number }, join: number[]): Promise<StoppableNode> {
  let child: ChildProcess;
  const args = [
    '--bind', '127.0.0.1', '--driver-port', String(ports.driver), '--cluster-port', String(ports.cluster), '--no-http-admin',
    '--directory', dir, '--server-name', name, '--no-update-check', '--cache-size', '256',
    ...join.flatMap((p) => ['--join', `127.0.0.1:${p}`]),
  ];
  const start = async () => {
    child = track(spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
    child.stderr?.resume();
    await waitForLine(child, /Server ready/, `RethinkDB node ${name}`, 60_000);
    child.stdout?.resume();
  };
  await start();
  return serverNode(name, () => ports.driver, () => child, start);
}

/**
 * The database of a run: the standalone embedded server, real RethinkDB nodes (one, or a
 * cluster whose nodes all know each other), or RETHINKDB_URL's server with a fresh database
 * of our own (dropped at close).
 */
export async function startDb(opts: { choice: DbChoice; dbName: string }): Promise<Db> {
  const { choice, dbName } = opts;
  const helpers = (address: DbAddress, nodes: DbNode[]) => ({
    async primaryOf(table: string): Promise<DbNode> {
      const alive = nodes.find((n) => n.alive);
      const conn = await connectTo(address, alive ? { host: '127.0.0.1', port: alive.port } : address.servers[0]);
      try {
        const config = (await r.db(dbName).table(table).config().run(conn)) as unknown as { shards: Array<{ primary_replica: string }> };
        const name = config.shards[0].primary_replica;
        const node = nodes.find((n) => n.name === name) ?? (nodes.length === 1 ? nodes[0] : undefined);
        if (!node) throw new Error(`the primary of ${table} is on ${name}, which this run did not start`);
        return node;
      } finally {
        await conn.close();
      }
    },
    async replicate(replicas: number): Promise<void> {
      const conn = await connectTo(address);
      try {
        for (const table of await r.db(dbName).tableList().run(conn)) {
          await r.db(dbName).table(table).reconfigure({ shards: 1, replicas }).run(conn);
          await r.db(dbName).table(table).wait({ waitFor: 'all_replicas_ready', timeout: 60 }).run(conn);
        }
      } finally {
        await conn.close();
      }
    },
  });

  if (choice.kind === 'url') {
    const { address } = parseRethinkdbUrl(choice.url);
    return {
      kind: 'url',
      label: 'RETHINKDB_URL',
      address,
      dbName,
      url: formatRethinkdbUrl(address, dbName),
      nodes: [],
      ...helpers(address, []),
      async close() {
        const conn = await connectTo(address);
        await r.dbDrop(dbName).run(conn).catch(() => undefined);
        await conn.close();
      },
    };
  }

  if (choice.kind === 'embedded') {
    const node = await startEmbeddedNode(choice.dataDir, choice.unkind);
    const address = () => ({ servers: [{ host: '127.0.0.1', port: node.port }], user: 'admin', password: '' });
    const u = choice.unkind;
    return {
      kind: 'embedded',
      label: `embedded (standalone process${u ? `, unkind: commits up to ${u.commitDelayMs} ms late, clocks ±${u.clockSkewMs} ms` : ''})`,
      address: address(),
      dbName,
      url: formatRethinkdbUrl(address(), dbName),
      nodes: [node],
      ...helpers(address(), [node]),
      close: () => node.stop(),
    };
  }

  const ports = [];
  for (let i = 0; i < choice.nodes; i++) ports.push({ driver: await freePort(), cluster: await freePort() });
  const nodes: StoppableNode[] = [];
  try {
    for (let i = 0; i < choice.nodes; i++) {
      const others = ports.filter((_, k) => k !== i).map((p) => p.cluster);
      // The first node starts alone; the others join the ones already up.
      nodes.push(await startRethinkdbNode(choice.bin, join(choice.dataDir, `n${i}`), `n${i}`, ports[i], i === 0 ? [] : others));
    }
  } catch (e) {
    await Promise.all(nodes.map((n) => n.kill()));
    throw e;
  }
  const address: DbAddress = { servers: ports.map((p) => ({ host: '127.0.0.1', port: p.driver })), user: 'admin', password: '' };
  if (choice.nodes > 1) {
    const conn = await connectTo(address);
    try {
      const deadline = Date.now() + 30_000;
      while (Number(await r.db('rethinkdb').table('server_status').count().run(conn)) < choice.nodes) {
        if (Date.now() > deadline) throw new Error(`the ${choice.nodes} RethinkDB nodes did not form a cluster within 30 s`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    } finally {
      await conn.close();
    }
  }
  return {
    kind: 'rethinkdb',
    label: choice.nodes === 1 ? 'RethinkDB (one real node)' : `RethinkDB (a cluster of ${choice.nodes} real nodes)`,
    address,
    dbName,
    url: formatRethinkdbUrl(address, dbName),
    nodes,
    ...helpers(address, nodes),
    async close() {
      await Promise.all(nodes.map((n) => n.stop().catch(() => n.kill())));
    },
  };
}

export interface Dyno {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly port: number;
  readonly url: string;
  /** what it printed (stdout and stderr), the last MiB */
  output(): string;
  kill(): Promise<void>;
  /** SIGTERM and wait for the exit */
  stop(): Promise<void>;
}

const OUTPUT_KEPT = 1024 * 1024;

/**
 * One app process, as a dyno runs it: the compiled server when it is built (`npm run build`),
 * otherwise the TypeScript source through tsx. Its stderr is echoed when `echoStderr`.
 */
export async function spawnDyno(
  name: string,
  dbUrl: string,
  env: Record<string, string> = {},
  opts: { fromSource?: boolean; nodeArgs?: string[]; echoStderr?: boolean } = {},
): Promise<Dyno> {
  const compiled = 'dist/src/server.js';
  // The server's own V8 setting (package.json's start, tunnel-and-serve.sh): see the README.
  const args = ['--max-semi-space-size=64', ...(opts.nodeArgs ?? []), ...(existsSync(compiled) && !opts.fromSource ? [compiled] : ['--import', 'tsx', 'src/server.ts'])];
  const child = track(spawn(process.execPath, args, {
    // LOG_LEVEL info: the 'listening' line tells the port. The article's open rooms are on
    // unless `env` says otherwise: the load, chaos and log-in phases use them.
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', RETHINKDB_URL: dbUrl, DYNO: name, ANONYMOUS_ROOMS: '1', ...env, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  }));
  let out = '';
  const keep = (b: Buffer) => {
    out += b.toString();
    if (out.length > 2 * OUTPUT_KEPT) out = out.slice(-OUTPUT_KEPT);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', (b: Buffer) => {
    keep(b);
    if (opts.echoStderr) process.stderr.write(b);
  });
  const m = await waitForLine(child, /"port":(\d+)[^\n]*"msg":"listening"/, `dyno ${name}`).catch((e: unknown) => {
    // stdout alone is in waitForLine's message; what the process said on stderr matters more.
    throw new Error(`${(e as Error).message.split('\n')[0]}\n${out.slice(-4000)}`);
  });
  const port = Number(m[1]);
  return {
    name,
    child,
    pid: child.pid ?? 0,
    port,
    url: `http://127.0.0.1:${port}`,
    output: () => out.slice(-OUTPUT_KEPT),
    kill: () => killHard(child),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    },
  };
}

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

export interface ProcSample {
  at: number;
  /** user + system CPU seconds so far */
  cpuSeconds: number;
  rssBytes: number;
  peakRssBytes: number;
}

/** CPU time and memory of a process, read from /proc. */
export function sampleProc(pid: number): ProcSample {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) * 1024;
  return { at: performance.now(), cpuSeconds: (utime + stime) / TICKS_PER_SECOND, rssBytes: kib('VmRSS'), peakRssBytes: kib('VmHWM') };
}

/** Share of one core a process used between two samples, in percent. */
export function cpuPercent(a: ProcSample, b: ProcSample): number {
  return (100 * (b.cpuSeconds - a.cpuSeconds)) / ((b.at - a.at) / 1000);
}

/** Changefeeds open on the database, from rethinkdb.jobs (the embedded server marks them; a real server's query text shows them). */
export async function openFeedsOnDb(address: DbAddress): Promise<number> {
  const conn = await connectTo(address);
  try {
    const jobs: Array<{ type: string; info?: { changefeed?: boolean; query?: string } }> = await r.db('rethinkdb').table('jobs').run(conn);
    return jobs.filter((j) => j.type === 'query' && (j.info?.changefeed === true || /\.changes\(/.test(j.info?.query ?? ''))).length;
  } finally {
    await conn.close();
  }
}
