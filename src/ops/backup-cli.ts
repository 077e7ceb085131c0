// `npm run backup -- --out FILE | --out DIR/ [--keep N]`: the whole workspace (every table of
// the app's database, with its indexes' definitions) into one compressed archive, while the
// chat runs. With a directory, the archive is DIR/<db>-<time>.jsonl.gz and `--keep N` deletes
// the oldest beyond N (for cron). Progress on standard error; a summary on standard output.
import { existsSync, statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { archivePath, backup, rotate } from './backup.js';
import { onAppDatabase, rates, runCommand, tables, UsageError } from './command.js';
import { mb, progress } from './progress.js';

const USAGE = `usage: npm run backup -- --out FILE
       npm run backup -- --out DIR/ [--keep N]     DIR/<db>-<time>.jsonl.gz, keeping the newest N`;

async function main(argv: string[]): Promise<string> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { out: { type: 'string' }, keep: { type: 'string' } } });
  if (positionals.length) throw new UsageError(`unexpected ${positionals.join(' ')}`);
  const out = values.out;
  if (!out) throw new UsageError('--out FILE or --out DIR/ is required');
  const toDir = out.endsWith('/') || (existsSync(out) && statSync(out).isDirectory());
  let keep: number | undefined;
  if (values.keep !== undefined) {
    keep = Number(values.keep);
    if (!Number.isInteger(keep) || keep < 1) throw new UsageError(`--keep must be a whole number of at least 1, got ${values.keep}`);
    if (!toDir) throw new UsageError('--keep needs --out to name a directory (end it with /)');
  }
  return onAppDatabase(async ({ conn, db }) => {
    const file = toDir ? archivePath(out, db) : out;
    const res = await backup(conn, db, file, { progress: (estimate) => progress('backup', estimate) });
    const { rows, bytes } = res.manifest;
    const lines = [
      `backup: ${res.file}: ${rows.toLocaleString('en-US')} rows in ${tables(res.header.tables.length)} of ${db}, ${mb(bytes)} MB of JSON in ${mb(res.archiveBytes)} MB`,
      `backup: ${res.seconds.toFixed(1)} s: ${rates(rows, bytes, res.seconds)}; sha256 ${res.fileSha256}`,
    ];
    if (keep !== undefined) for (const f of rotate(out, db, keep)) lines.push(`backup: deleted ${f} (keeping the newest ${keep})`);
    return lines.join('\n');
  });
}

runCommand('backup', USAGE, main);
