// Every app process says it is alive: a row of its own in the `processes` table, rewritten
// every few seconds with the database's clock and what the process holds (sockets, feeds), and
// deleted when it stops cleanly. A process killed outright leaves its row behind; readers
// count it as gone once three beats are missed (src/ops/status.ts), and any process sweeps
// rows older than SWEEP_AFTER_SECONDS.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { r } from 'rethinkdb-ts';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { Pool } from '../db/pool.js';
import { PROCESSES } from '../db/schema.js';

/** A row whose last beat is older than this is deleted by whichever process sweeps next. */
export const SWEEP_AFTER_SECONDS = 600;
const SWEEP_EVERY_MS = 60_000;
/** Beats missed before a process counts as gone. */
export const MISSED_BEATS = 3;

const time = z.union([z.date(), z.string()]).transform((v) => new Date(v));

/** One process's row, as readers parse it. */
export const processRow = z.object({
  id: z.string(),
  dyno: z.string(),
  host: z.string(),
  pid: z.number(),
  started: time,
  beat: time,
  /** seconds between beats */
  every: z.number().positive(),
  sockets: z.number(),
  feeds: z.object({ rooms: z.number(), subscribers: z.number(), openFeeds: z.number() }),
  version: z.string(),
  commit: z.string().optional(),
  node: z.string(),
  /** set by the process that runs the embedded database in it */
  embedded: z.object({ dataDir: z.string(), bytes: z.number() }).optional(),
});
export type ProcessRow = z.output<typeof processRow>;

export interface HeartbeatOptions {
  pool: Pick<Pool, 'run'>;
  db: string;
  log: Logger;
  everyMs: number;
  /** DYNO, or host-pid when unset */
  dyno?: string;
  /** what the process holds now */
  stats: () => { sockets: number; rooms: number; subscribers: number; openFeeds: number };
  /** the embedded database's directory, when this process runs it */
  embeddedDataDir?: string;
}

export interface Heartbeat {
  readonly id: string;
  /** Writes the first beat (a failure is logged, not thrown), then one every `everyMs`. */
  start(): Promise<void>;
  /** Stops beating and deletes the row. */
  stop(): Promise<void>;
}

export function createHeartbeat(opts: HeartbeatOptions): Heartbeat {
  const { pool, log } = opts;
  const table = r.db(opts.db).table(PROCESSES);
  const id = randomUUID();
  const host = hostname();
  const fixed = {
    id,
    dyno: opts.dyno ?? `${host}-${process.pid}`,
    host,
    pid: process.pid,
    started: new Date(),
    every: opts.everyMs / 1000,
    ...buildInfo(),
    node: process.version,
  };
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  let stopped = false;
  let failing = false;
  let lastSweep = 0;

  async function beat(): Promise<void> {
    const s = opts.stats();
    const embedded = opts.embeddedDataDir === undefined ? undefined : { dataDir: opts.embeddedDataDir, bytes: await dirBytes(opts.embeddedDataDir) };
    const row = { ...fixed, sockets: s.sockets, feeds: { rooms: s.rooms, subscribers: s.subscribers, openFeeds: s.openFeeds }, ...(embedded ? { embedded } : {}) };
    await pool.run(table.insert({ ...row, beat: r.now() }, { conflict: 'replace' }));
    if (Date.now() - lastSweep >= SWEEP_EVERY_MS) {
      lastSweep = Date.now();
      await pool.run(table.between(r.minval, r.now().sub(SWEEP_AFTER_SECONDS), { index: 'beat' }).delete());
    }
  }

  function tick(): Promise<void> {
    running = beat().then(
      () => {
        if (failing) log.info('heartbeat written again');
        failing = false;
      },
      (e: unknown) => {
        // While the database is away every beat fails: say so once.
        if (!failing) log.warn({ err: String(e) }, 'could not write the heartbeat');
        failing = true;
      },
    );
    return running;
  }

  function next(): void {
    if (stopped) return;
    timer = setTimeout(() => void tick().finally(next), opts.everyMs);
    timer.unref();
  }

  return {
    id,
    async start() {
      await tick();
      next();
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
      await pool.run(table.get(id).delete()).catch((e: unknown) => log.warn({ err: String(e) }, 'could not delete the heartbeat row'));
    },
  };
}

/** The package's version, and the git commit when the code runs from a checkout. */
function buildInfo(): { version: string; commit?: string } {
  // src/ops/ under tsx, dist/src/ops/ when built.
  for (const up of ['../..', '../../..']) {
    const root = fileURLToPath(new URL(`${up}/`, import.meta.url));
    let pkg: { name?: string; version?: string };
    try {
      pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as typeof pkg;
    } catch {
      continue;
    }
    const commit = process.env.GIT_REV || gitCommit(join(root, '.git'));
    return { version: pkg.version ?? 'unknown', ...(commit ? { commit } : {}) };
  }
  return { version: 'unknown' };
}

function gitCommit(gitDir: string): string | undefined {
  try {
    const head = readFileSync(join(gitDir, 'HEAD'), 'utf8').trim();
    const ref = /^ref: (.+)$/.exec(head)?.[1];
    if (!ref) return head.slice(0, 12);
    try {
      return readFileSync(join(gitDir, ref), 'utf8').trim().slice(0, 12);
    } catch {
      const line = readFileSync(join(gitDir, 'packed-refs'), 'utf8').split('\n').find((l) => l.endsWith(` ${ref}`));
      return line?.slice(0, 12);
    }
  } catch {
    return undefined;
  }
}

/** Bytes in the files under a directory (0 when it does not exist). */
export async function dirBytes(dir: string): Promise<number> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  let total = 0;
  for (const e of entries) {
    const path = join(dir, e.name);
    if (e.isDirectory()) total += await dirBytes(path);
    else if (e.isFile()) total += await stat(path).then((s) => s.size, () => 0);
  }
  return total;
}
