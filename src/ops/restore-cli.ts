// `npm run restore -- FILE [--force]`: a backup into the app's database, which must be empty
// (--force replaces the archive's tables where they hold rows). The archive is checked whole
// before anything is written; the indexes are made again and filled as the rows go in, then
// checked with every table's count. Stop the app first.
import { parseArgs } from 'node:util';
import { onAppDatabase, rates, runCommand, tables, UsageError } from './command.js';
import { progress } from './progress.js';
import { restore } from './restore.js';

const USAGE = 'usage: npm run restore -- FILE [--force]      into an empty database; --force replaces tables that hold rows';

async function main(argv: string[]): Promise<string> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { force: { type: 'boolean' } } });
  if (positionals.length !== 1) throw new UsageError(positionals.length ? `one FILE, not ${positionals.length}` : 'FILE is required');
  const file = positionals[0];
  return onAppDatabase(async ({ conn, db, config, log }) => {
    const res = await restore(conn, db, file, { log, force: values.force, layout: config.dbLayout, schemaLockStaleMs: config.schemaLockStaleMs, progress: (phase, total) => progress(phase, total) });
    const { rows, bytes } = res.manifest;
    const s = res.seconds;
    const lines = [
      `restore: ${file} (${res.header.db}, backed up ${res.header.created}) into ${db}: ${rows.toLocaleString('en-US')} rows in ${tables(res.header.tables.length)}`,
      ...(res.replaced.length ? [`restore: replaced the tables ${res.replaced.join(', ')}, which held rows (--force)`] : []),
      `restore: archive verified in ${s.verify.toFixed(1)} s; tables and indexes made in ${s.prepare.toFixed(1)} s; rows written in ${s.write.toFixed(1)} s (${rates(rows, bytes, s.write)}); indexes and counts checked in ${s.check.toFixed(1)} s`,
      `restore: ${s.total.toFixed(1)} s in all: ${rates(rows, bytes, s.total)}`,
    ];
    return lines.join('\n');
  });
}

runCommand('restore', USAGE, main);
