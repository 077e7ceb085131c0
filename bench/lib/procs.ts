// Processes the benchmark and the chaos run start: the standalone embedded database (or the
// RethinkDB of RETHINKDB_URL), app processes ("dynos"), and readings of their CPU and memory
// from /proc. Everything listens on loopback.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { r } from 'rethinkdb-ts';
import { formatRethinkdbUrl, parseRethinkdbUrl, type DbAddress } from '../../src/config.js';

export interface Db {
  address: DbAddress;
  dbName: string;
  /** RETHINKDB_URL for an app on this database */
  url: string;
  /** the embedded server's process, when we started it */
  pid?: number;
  /** kill -9 (embedded only) */
  kill(): Promise<void>;
  /** start again on the same port and data directory (embedded only) */
  restart(): Promise<void>;
  /** stop it (embedded) or drop the benchmark's database (real RethinkDB) */
  close(): Promise<void>;
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

/**
 * The database: RETHINKDB_URL's server with a fresh database of our own (dropped at close),
 * or the standalone embedded server (`src/reql/cli.ts`) in its own process on `dataDir`.
 */
export async function startDb(opts: { dataDir: string; dbName: string; realUrl?: string }): Promise<Db> {
  if (opts.realUrl) {
    const { address } = parseRethinkdbUrl(opts.realUrl);
    const refuse = (what: string) => () => Promise.reject(new Error(`cannot ${what} a RethinkDB we did not start`));
    return {
      address,
      dbName: opts.dbName,
      url: formatRethinkdbUrl(address, opts.dbName),
      kill: refuse('kill'),
      restart: refuse('restart'),
      async close() {
        const conn = await r.connect({ ...address.servers[0], user: address.user, password: address.password, silent: true });
        await r.dbDrop(opts.dbName).run(conn).catch(() => undefined);
        await conn.close();
      },
    };
  }
  let port = 0;
  let child: ChildProcess;
  const start = async () => {
    child = track(
      spawn(process.execPath, ['--import', 'tsx', 'src/reql/cli.ts', '--port', String(port), '--data', opts.dataDir], {
        stdio: ['ignore', 'pipe', 'inherit'],
      }),
    );
    const m = await waitForLine(child, /serving RethinkDB protocol on [^:\s]+:(\d+)/, 'the embedded database');
    port = Number(m[1]);
    child.stdout?.resume();
  };
  await start();
  const address = { servers: [{ host: '127.0.0.1', port }], user: 'admin', password: '' };
  const db: Db = {
    address,
    dbName: opts.dbName,
    url: formatRethinkdbUrl(address, opts.dbName),
    get pid() {
      return child.pid;
    },
    kill: () => killHard(child),
    async restart() {
      await killHard(child);
      await start();
    },
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    },
  };
  return db;
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
    // LOG_LEVEL info: the 'listening' line tells the port.
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', RETHINKDB_URL: dbUrl, DYNO: name, ...env, LOG_LEVEL: 'info' },
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
  const conn = await r.connect({ ...address.servers[0], user: address.user, password: address.password, silent: true });
  try {
    const jobs: Array<{ type: string; info?: { changefeed?: boolean; query?: string } }> = await r.db('rethinkdb').table('jobs').run(conn);
    return jobs.filter((j) => j.type === 'query' && (j.info?.changefeed === true || /\.changes\(/.test(j.info?.query ?? ''))).length;
  } finally {
    await conn.close();
  }
}
