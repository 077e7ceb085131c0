// Backup and restore throughput: fills a fresh database with --messages messages (1,000,000)
// in batches of 10,000, then runs `npm run backup` and `npm run restore` as an operator
// would (their own processes, through RETHINKDB_URL), the restore after the database is
// dropped, and prints what they report: rows, bytes, seconds, rows/s, MB/s, and the
// archive's size. The database is the standalone
// embedded server on a fresh data directory, or RETHINKDB_URL's server (in databases of the
// run's own). Everything it made is deleted at the end.
//
//   npx tsx bench/backup.ts [--messages 1000000] [--deadline-minutes 30]
//   RETHINKDB_URL=rethinkdb://127.0.0.1:28015 npx tsx bench/backup.ts
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { pino } from 'pino';
import { r } from 'rethinkdb-ts';
import { connectAny } from '../src/db/pool.js';
import { ensureSchema, MESSAGES } from '../src/db/schema.js';
import { chooseDb, exitOnSignals, startDb } from './lib/procs.js';

const { values } = parseArgs({ options: { messages: { type: 'string', default: '1000000' }, 'deadline-minutes': { type: 'string', default: '30' } } });
const MESSAGES_N = Number(values.messages);
const deadline = Date.now() + Number(values['deadline-minutes']) * 60_000;
const FILL_BATCH = 10_000;
const run = promisify(execFile);
const log = pino({ level: 'warn' });
exitOnSignals();

const left = () => {
  const ms = deadline - Date.now();
  if (ms <= 0) throw new Error('past the deadline');
  return ms;
};

/** One of the commands, as its own process; its summary (stdout) comes back, its progress goes to our stderr. */
async function command(name: 'backup' | 'restore', args: string[], url: string): Promise<string> {
  const child = run(process.execPath, ['--import', 'tsx', `src/ops/${name}-cli.ts`, ...args], { env: { ...process.env, RETHINKDB_URL: url }, timeout: left(), maxBuffer: 1 << 20 });
  child.child.stderr?.pipe(process.stderr);
  const { stdout } = await child;
  return stdout.trim();
}

function message(i: number, rooms: number) {
  const sent = new Date(1_700_000_000_000 + i * 37);
  const row: Record<string, unknown> = {
    id: randomUUID(),
    room: `room-${i % rooms}`,
    body: `message ${i}: the quick brown fox jumps over the lazy dog, like most chat lines do ✓`,
    author: { id: `user-${i % 500}`, name: `User ${i % 500}` },
    sent,
  };
  // Some are edited and reacted to, as in a real workspace.
  if (i % 20 === 0) Object.assign(row, { edited: new Date(sent.getTime() + 60_000), updated: new Date(sent.getTime() + 60_000) });
  if (i % 7 === 0) Object.assign(row, { reactions: { '👍': [`user-${(i + 1) % 500}`, `user-${(i + 2) % 500}`] }, updated: new Date(sent.getTime() + 30_000) });
  return row;
}

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'bench-backup-'));
  const suffix = Date.now().toString(36);
  const db = await startDb({ choice: chooseDb({}, join(dataDir, 'reql')), dbName: `bench_backup_${suffix}` });
  const conn = await connectAny(db.address, log);
  try {
    console.log(`database: ${db.label}; ${MESSAGES_N.toLocaleString('en-US')} messages`);
    await ensureSchema(conn, db.dbName, { log, staleMs: 60_000 });
    const t0 = performance.now();
    for (let done = 0; done < MESSAGES_N; ) {
      left();
      const n = Math.min(FILL_BATCH, MESSAGES_N - done);
      const res = await r.db(db.dbName).table(MESSAGES).insert(Array.from({ length: n }, (_, k) => message(done + k, 1000)), { durability: 'soft' }).run(conn);
      if (res.inserted !== n) throw new Error(`filling: ${res.first_error ?? `${res.inserted} of ${n} inserted`}`);
      done += n;
      if (done % 100_000 === 0) process.stderr.write(`filled ${done.toLocaleString('en-US')}\n`);
    }
    await r.db(db.dbName).table(MESSAGES).sync().run(conn);
    console.log(`filled in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    const file = join(dataDir, 'bench.jsonl.gz');
    const backupOut = await command('backup', ['--out', file], db.url);
    console.log(backupOut);
    console.log(`archive: ${(statSync(file).size / 1e6).toFixed(1)} MB`);
    // Wiped, then restored into a database of the same name, as after a loss.
    const source = Number(await r.db(db.dbName).table(MESSAGES).count().run(conn));
    await r.dbDrop(db.dbName).run(conn);
    console.log(await command('restore', [file], db.url));
    const back = Number(await r.db(db.dbName).table(MESSAGES).count().run(conn));
    if (back !== source) throw new Error(`the restored messages table holds ${back} rows, the source ${source}`);
    console.log(`restored messages: ${back.toLocaleString('en-US')}, as many as the source`);
  } finally {
    await r.dbDrop(db.dbName).run(conn).catch(() => undefined);
    await conn.close();
    await db.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(`bench/backup: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  },
);
