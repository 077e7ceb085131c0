// What the backup and restore commands share: the app's database (as `npm run admin` reaches
// it), one connection to it, and how a command ends: its report on standard output, or a
// message on standard error and a non-zero exit (2 for bad usage).
import { pino, type Logger } from 'pino';
import type { Connection } from 'rethinkdb-ts';
import { appDatabase } from '../admin/database.js';
import { loadConfig, type Config } from '../config.js';
import { connectAny } from '../db/pool.js';

export class UsageError extends Error {}

export interface Target {
  conn: Connection;
  db: string;
  config: Config;
  log: Logger;
}

/** Runs `fn` on a connection to the app's database, and lets go of it after. */
export async function onAppDatabase<T>(fn: (target: Target) => Promise<T>): Promise<T> {
  const config = loadConfig(process.env);
  const log = pino({ level: 'warn' }, pino.destination(2));
  const database = await appDatabase(config);
  try {
    const conn = await connectAny(database.address, log);
    try {
      return await fn({ conn, db: database.db, config, log });
    } finally {
      await conn.close().catch(() => undefined);
    }
  } finally {
    await database.close();
  }
}

export function runCommand(name: string, usage: string, main: (argv: string[]) => Promise<string>): void {
  main(process.argv.slice(2)).then(
    (out) => {
      process.stdout.write(`${out}\n`);
      process.exit(0);
    },
    (e: unknown) => {
      const parseError = e instanceof Error && 'code' in e && String(e.code).startsWith('ERR_PARSE_ARGS');
      if (e instanceof UsageError || parseError) {
        process.stderr.write(`${name}: ${(e as Error).message}\n${usage}\n`);
        process.exit(2);
      }
      process.stderr.write(`${name}: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(1);
    },
  );
}

/** "12,345 rows/s, 6.7 MB/s" for `rows` and `bytes` in `seconds`. */
export function rates(rows: number, bytes: number, seconds: number): string {
  const s = Math.max(seconds, 1e-3);
  return `${Math.round(rows / s).toLocaleString('en-US')} rows/s, ${(bytes / 1e6 / s).toFixed(1)} MB/s`;
}

export const tables = (n: number) => `${n} table${n === 1 ? '' : 's'}`;
