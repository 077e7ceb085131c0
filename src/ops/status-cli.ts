// `npm run status [--json]`: the whole deployment in one look (src/ops/status.ts), read from
// the app's database (RETHINKDB_URL, or the embedded one in DATA_DIR, as `npm run admin` finds
// it), so it is the same from any machine. Tables for people, `--json` for scripts. Exits 1
// when the database cannot be reached, 2 on bad arguments.
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { appDatabase } from '../admin/database.js';
import { loadConfig } from '../config.js';
import { openPool } from '../db/pool.js';
import { runCommand, UsageError } from './command.js';
import { readStatus, type Status } from './status.js';

const USAGE = 'usage: npm run status [--json]';
const CONNECT_TIMEOUT_MS = 5000;
const DEADLINE_MS = 20_000;

async function main(argv: string[]): Promise<string> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { json: { type: 'boolean' } } });
  if (positionals.length) throw new UsageError(`unexpected ${positionals.join(' ')}`);
  // `npm run status --json` gives the flag to npm, which says so in npm_config_json.
  const json = Boolean(values.json) || process.env.npm_config_json === 'true';
  const config = loadConfig(process.env);
  const target = await appDatabase(config);
  const where = target.address.servers.map((s) => `${s.host}:${s.port}`).join(', ');
  const pool = openPool(target.address, { log: pino({ level: 'silent' }), perServer: 1 });
  try {
    await pool.waitHealthy(CONNECT_TIMEOUT_MS).catch((e: unknown) => {
      throw new Error(`cannot reach the database at ${where} (${config.database ? 'RETHINKDB_URL' : `the embedded one in ${config.dataDir}`}): ${(e as Error).message}`);
    });
    const status = await readStatus(pool, target.db, { embeddedDataDir: config.database ? undefined : join(config.dataDir, 'reql') });
    return json ? JSON.stringify(status, null, 2) : render(status);
  } finally {
    await pool.close();
    await target.close();
  }
}

/** Left-aligned columns, two spaces apart. */
function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  return [head, ...rows].map((r) => `  ${r.map((c, i) => c.padEnd(widths[i])).join('  ')}`.trimEnd()).join('\n');
}

function duration(s: number | undefined): string {
  if (s === undefined) return '-';
  if (s < 60) return `${Math.round(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86_400)}d${String(Math.floor((s % 86_400) / 3600)).padStart(2, '0')}h`;
}

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

function render(s: Status): string {
  const out: string[] = [];
  out.push(`database ${s.database.db} on ${s.database.kind === 'embedded' ? 'the embedded ReQL server' : 'RethinkDB'}, read at ${s.at}`);

  const alive = s.processes.filter((p) => p.alive).length;
  out.push('', `processes: ${alive} alive${s.processes.length > alive ? `, ${s.processes.length - alive} gone in the last minutes` : ''}`);
  if (s.processes.length)
    out.push(
      table(
        ['DYNO', 'STATE', 'HOST', 'PID', 'UP', 'LAST BEAT', 'SOCKETS', 'ROOMS', 'FEEDS', 'VERSION'],
        s.processes.map((p) => [p.dyno, p.alive ? 'alive' : 'gone', p.host, String(p.pid), p.alive ? duration(p.uptimeSeconds) : '-', `${duration(p.lastBeatSecondsAgo)} ago`, String(p.sockets), String(p.feeds.rooms), String(p.feeds.openFeeds), p.commit ? `${p.version} (${p.commit})` : p.version]),
      ),
    );

  out.push('', `servers: ${s.servers.length}`);
  if (s.servers.length) out.push(table(['NAME', 'VERSION', 'HOST', 'PID', 'UP', 'CONNECTED TO'], s.servers.map((v) => [v.name, v.version, v.hostname ?? '-', v.pid === undefined ? '-' : String(v.pid), duration(v.uptimeSeconds), v.connectedTo.join(',') || '-'])));

  const notReady = s.tables.filter((t) => !t.ready).length;
  out.push('', `tables: ${s.tables.length}${notReady ? `, ${notReady} NOT READY` : ', all ready'}`);
  if (s.tables.length)
    out.push(
      table(
        ['TABLE', 'SHARDS', 'REPLICAS', 'STATE', 'PRIMARY', 'SIZE'],
        s.tables.map((t) => [
          t.name,
          String(t.shards.length),
          String(t.replicas),
          t.ready ? 'ready' : t.readyForWrites ? 'writes ok, replicas not ready' : t.readyForReads ? 'reads only' : 'UNAVAILABLE',
          [...new Set(t.shards.flatMap((x) => x.primaryReplicas))].join(',') || '-',
          [t.rows === undefined ? '' : `${t.rows} row${t.rows === 1 ? '' : 's'}`, t.dataBytes === undefined ? '' : bytes(t.dataBytes)].filter(Boolean).join(', ') || '-',
        ]),
      ),
    );

  out.push('', `issues: ${s.issues.length || 'none'}`);
  for (const i of s.issues) out.push(`  ${i.critical ? 'CRITICAL ' : ''}${i.type}: ${i.description.replace(/\s+/g, ' ')}`);

  if (s.embedded) out.push('', `embedded data: ${bytes(s.embedded.bytes)} in ${s.embedded.dataDir}`);
  if (s.unavailable.length) out.push('', 'not known:', ...s.unavailable.map((u) => `  ${u}`));
  return out.join('\n');
}

const deadline = setTimeout(() => {
  process.stderr.write(`status: no answer within ${DEADLINE_MS / 1000} s\n`);
  process.exit(1);
}, DEADLINE_MS);
deadline.unref();

runCommand('status', USAGE, main);
