// `npm run bench:reql`: figures for the embedded ReQL server, measured over the wire with
// rethinkdb-ts against the standalone server in its own process (so its memory is its own).
//   npm run bench:reql -- [--messages 1000000] [--quick] [--search] [--server HOST:PORT] [--json FILE] [--keep]
//   npm run bench:reql -- --restart-only DIR [--messages N]   (restart figures of a directory kept by --keep)
// With --server it measures any RethinkDB instead (no RSS/restart figures then).
// The messages table is chat-like (about 200-byte bodies, 200 rooms, timestamps, some
// replies, mentions and edits) with the secondary indexes a team chat declares on its
// messages; --search adds the search fields and the multi index over them (src/search/text.ts,
// about 39 index entries a message). restart_ms is from spawning the server on its data to the
// first answered count; restart_tail_writes is how many row writes it replayed from the log
// after the snapshot (the rest it loaded whole), restart_load_ms the server's own time to open
// its data. The load averages (/proc/loadavg) at the start and the end are printed: on a
// shared machine every figure moves with them.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { r, type Connection, type RDatum } from 'rethinkdb-ts';
import { searchFields } from '../src/search/text.js';

const { values } = parseArgs({
  options: {
    messages: { type: 'string' },
    docs: { type: 'string' }, // the old name of --messages
    quick: { type: 'boolean', default: false },
    server: { type: 'string' },
    json: { type: 'string' },
    keep: { type: 'boolean', default: false }, // keep the data directory (its path is printed)
    search: { type: 'boolean', default: false },
    'restart-only': { type: 'string' },
  },
});
const DOCS = Number(values.messages ?? values.docs ?? (values.quick ? 100_000 : 1_000_000));
if (!Number.isInteger(DOCS) || DOCS < 1 || DOCS > 10_000_000) throw new Error(`--messages must be a whole number from 1 to 10000000, got ${values.messages ?? values.docs}`);
const DB = 'bench';
const results: Record<string, number | string> = { messages: DOCS, search: values.search ? 'yes' : 'no' };
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}
const ms = (ns: bigint) => Number(ns) / 1e6;
const now = () => process.hrtime.bigint();

/**
 * The server is started as `npm run db` starts it (package.json's "db": node, its flags and the
 * compiled cli.js, which `npm run bench:reql` builds first), so its figures are that command's.
 */
const DB_ARGS = ((): string[] => {
  const script = (JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> }).scripts.db;
  const [node, ...args] = script.split(/\s+/);
  if (node !== 'node' || !args.some((a) => a.endsWith('cli.js'))) throw new Error(`package.json's db script is not "node ... cli.js": ${script}`);
  return args;
})();

/** Starts the server on dir; `loaded` is what it says it read there (its "loaded" line). */
async function startServer(dir: string, port: number): Promise<{ child: ChildProcess; loaded: { rows: number; tail: number; logMiB: number; ms: number } }> {
  const child = spawn(process.execPath, [...DB_ARGS, '--port', String(port), '--data', dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes('serving')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
  const m = /loaded (\d+) rows from the snapshot and replayed (\d+) row writes after it \(log ([\d.]+) MiB\) in (\d+) ms/.exec(out);
  if (!m) throw new Error(`the server did not say what it loaded: ${out}`);
  return { child, loaded: { rows: Number(m[1]), tail: Number(m[2]), logMiB: Number(m[3]), ms: Number(m[4]) } };
}

/** CPU time (user + system) a process has used so far, in ms: restart cost less sensitive to a busy machine than wall time. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10; // utime, stime in clock ticks (100 per s)
}

function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return Math.round(kb / 1024);
}

const ROOMS = 200;
const WORDS = 'the quick brown fox jumps over lazy dog again and then some more words about release deploy review meeting lunch bug fix'.split(' ');
const hex = (n: number, len: number) => (n >>> 0).toString(16).padStart(len, '0').slice(-len);
const uuid = (kind: number, n: number) => `${hex(kind * 2654435761 + n * 40503, 8)}-${hex(n, 4)}-4${hex(n >> 4, 3)}-8${hex(kind, 3)}-${hex(n * 2246822519, 8)}${hex(kind + n, 4)}`;

/** A chat message as a team chat stores it (about 200 characters of text). */
function chatDoc(i: number): Record<string, unknown> {
  const room = uuid(1, i % ROOMS);
  const user = i % 200;
  let body = `message ${i}:`;
  for (let w = i; body.length < 200; w = (w * 1103515245 + 12345) >>> 0) body += ' ' + WORDS[w % WORDS.length];
  const sent = new Date(1_700_000_000_000 + i * 1000);
  const doc: Record<string, unknown> = {
    id: uuid(2, i),
    room,
    body,
    author: { id: uuid(3, user), name: `user${user}` },
    sent,
  };
  if (i % 30 === 5) doc.thread = uuid(2, i - 5);
  if (i % 20 === 7) doc.mentions = [uuid(3, (user + 1) % 200)];
  if (i % 50 === 9) doc.updated = new Date(sent.getTime() + 60_000);
  if (i % 50 === 9) doc.edited = new Date(sent.getTime() + 60_000);
  if (values.search) Object.assign(doc, searchFields(doc as unknown as Parameters<typeof searchFields>[0]));
  return doc;
}

/** The secondary indexes a team chat declares on its messages (all but full-text search). */
async function chatIndexes(conn: Connection, msgs: ReturnType<typeof r.table>): Promise<void> {
  const threadOnly = (m: RDatum) => m.hasFields('thread').and(m('alsoRoom').default(false).not());
  await msgs.indexCreate('room_sent', (m: RDatum) => [m('room'), m('sent'), m('id')]).run(conn);
  await msgs.indexCreate('room_updated', (m: RDatum) => [m('room'), m('updated'), m('id')]).run(conn);
  await msgs.indexCreate('room_main', (m: RDatum) => [r.branch(threadOnly(m), m('room').add('#thread'), m('room')), m('sent'), m('id')]).run(conn);
  await msgs.indexCreate('thread_sent', (m: RDatum) => [m('thread'), m('sent'), m('id')]).run(conn);
  await msgs.indexCreate('attention', (m: RDatum) => m('mentions').map((u: RDatum) => [u, m('room'), m('sent'), m('id')]), { multi: true }).run(conn);
  await msgs.indexCreate('room_all', (m: RDatum) => [m('room'), m('mentionsRoom'), m('sent'), m('id')]).run(conn);
  if (values.search) await msgs.indexCreate('search', (m: RDatum) => m('terms').map((t: RDatum) => [m('room'), t, m('sent'), m('id')]), { multi: true }).run(conn);
  await msgs.indexWait().run(conn);
}

/** p50 and p99 of a point get and of the newest 50 messages of a room, one query at a time. */
async function reads(conn: Connection, prefix: string): Promise<void> {
  const msgs = r.db(DB).table('msgs');
  {
    const lat: number[] = [];
    for (let k = 0; k < 2000; k++) {
      const i = (k * 7919) % DOCS;
      const t0 = now();
      const row = await msgs.get(uuid(2, i)).run(conn);
      lat.push(ms(now() - t0));
      if (!row) throw new Error(`message ${i} not found`);
    }
    lat.sort((a, b) => a - b);
    results[`${prefix}point_get_p50_ms`] = +pct(lat, 50).toFixed(3);
    results[`${prefix}point_get_p99_ms`] = +pct(lat, 99).toFixed(3);
  }
  {
    const lat: number[] = [];
    for (let k = 0; k < 200; k++) {
      const room = uuid(1, (k * 37) % ROOMS);
      const t0 = now();
      const rows = await msgs.between([room, r.minval, r.minval], [room, r.maxval, r.maxval], { index: 'room_sent' }).orderBy({ index: r.desc('room_sent') }).limit(50).run(conn);
      lat.push(ms(now() - t0));
      if (rows.length !== 50 && DOCS >= 50 * ROOMS) throw new Error(`expected 50 rows, got ${rows.length}`);
    }
    lat.sort((a, b) => a - b);
    results[`${prefix}index_range_50_p50_ms`] = +pct(lat, 50).toFixed(3);
    results[`${prefix}index_range_50_p99_ms`] = +pct(lat, 99).toFixed(3);
  }
}

/** Starts a server on dir again: time to its first answer, its CPU time and RSS, and reads on it. */
async function restart(dir: string, port: number): Promise<void> {
  const t0 = now();
  const { child: again, loaded } = await startServer(dir, port);
  results.restart_snapshot_rows = loaded.rows;
  results.restart_tail_writes = loaded.tail;
  results.restart_log_mib = loaded.logMiB;
  results.restart_load_ms = loaded.ms;
  const c2 = await r.connect({ host: '127.0.0.1', port });
  try {
    const count = await r.db(DB).table('msgs').count().run(c2);
    results.restart_ms = Math.round(ms(now() - t0));
    results.restart_cpu_ms = cpuMs(again.pid!);
    results.restart_rss_mib = rssMiB(again.pid!);
    if (count !== DOCS) throw new Error(`after restart: ${count} docs, expected ${DOCS}`);
    await reads(c2, 'restarted_');
    results.restarted_rss_mib = rssMiB(again.pid!);
  } finally {
    await c2.close();
    again.kill('SIGTERM');
    await new Promise((res) => again.once('exit', res));
  }
}

async function main(): Promise<void> {
  results.loadavg_start = loadavg();
  const port = 28100 + Math.floor(Math.random() * 500);
  if (values['restart-only']) {
    await restart(values['restart-only'], port);
    results.loadavg_end = loadavg();
    return;
  }
  let child: ChildProcess | undefined;
  let dir: string | undefined;
  let host = '127.0.0.1';
  let serverPort = port;
  if (values.server) {
    [host, serverPort] = [values.server.split(':')[0], Number(values.server.split(':')[1])];
  } else {
    dir = mkdtempSync(join(tmpdir(), 'reql-bench-'));
    child = (await startServer(dir, port)).child;
  }
  const conn: Connection = await r.connect({ host, port: serverPort });
  try {
    await r.dbCreate(DB).run(conn).catch(() => undefined);
    await r.db(DB).tableCreate('w').run(conn).catch(() => undefined);
    await r.db(DB).tableCreate('msgs').run(conn).catch(() => undefined);
    const w = r.db(DB).table('w');
    const msgs = r.db(DB).table('msgs');

    // Single-document inserts, several in flight (as a busy app would), per durability.
    for (const durability of ['hard', 'soft'] as const) {
      const N = values.quick ? 2000 : 10_000;
      const CONC = 32;
      const t0 = now();
      let next = 0;
      await Promise.all(Array.from({ length: CONC }, async () => {
        while (next < N) {
          const i = next++;
          await w.insert({ id: `${durability}-${i}`, v: i }, { durability }).run(conn);
        }
      }));
      results[`insert_${durability}_per_s`] = Math.round(N / (ms(now() - t0) / 1000));
    }

    // Point reads.
    {
      const N = values.quick ? 5000 : 20_000;
      const CONC = 32;
      const t0 = now();
      let next = 0;
      await Promise.all(Array.from({ length: CONC }, async () => {
        while (next < N) {
          const i = next++;
          await w.get(`soft-${i % 1000}`).run(conn);
        }
      }));
      results.point_reads_per_s = Math.round(N / (ms(now() - t0) / 1000));
    }

    // Load the chat-sized table in batches, then index it.
    await chatIndexes(conn, msgs);
    {
      const BATCH = 1000;
      const t0 = now();
      for (let i = 0; i < DOCS; i += BATCH) {
        const docs = [];
        for (let j = i; j < Math.min(DOCS, i + BATCH); j++) docs.push(chatDoc(j));
        await msgs.insert(docs, { durability: 'soft' }).run(conn);
      }
      await r.db(DB).table('msgs').sync().run(conn);
      results.bulk_load_docs_per_s = Math.round(DOCS / (ms(now() - t0) / 1000));
    }

    await reads(conn, '');

    // Changefeed delivery latency with 100 open feeds (one per room), writes spread over them.
    {
      await r.db(DB).tableCreate('feedbench').run(conn).catch(() => undefined);
      const fb = r.db(DB).table('feedbench');
      await fb.indexCreate('room').run(conn).catch(() => undefined);
      await fb.indexWait().run(conn);
      const feedConn = await r.connect({ host, port });
      const lat: number[] = [];
      const cursors = await Promise.all(Array.from({ length: 100 }, (_, i) => fb.getAll(`r${i}`, { index: 'room' }).changes().getCursor(feedConn)));
      const pending = new Map<string, bigint>();
      for (const cur of cursors) {
        void (async () => {
          try {
            for await (const ch of cur as AsyncIterable<{ new_val: { id: string } | null }>) {
              const id = ch.new_val?.id;
              const t = id ? pending.get(id) : undefined;
              if (t !== undefined) lat.push(ms(now() - t));
            }
          } catch {
            /* closed */
          }
        })();
      }
      const N = values.quick ? 1000 : 5000;
      for (let i = 0; i < N; i++) {
        const id = `f${i}`;
        pending.set(id, now());
        await fb.insert({ id, room: `r${i % 100}` }, { durability: 'soft' }).run(conn);
        if (i % 50 === 0) await new Promise((res) => setTimeout(res, 1));
      }
      await new Promise((res) => setTimeout(res, 500));
      await Promise.all(cursors.map((c) => (c as unknown as { close(): Promise<void> }).close()));
      await feedConn.close();
      lat.sort((a, b) => a - b);
      results.feed_latency_samples = lat.length;
      results.feed_latency_p50_ms = +pct(lat, 50).toFixed(3);
      results.feed_latency_p99_ms = +pct(lat, 99).toFixed(3);
    }
  } finally {
    await conn.close();
  }

  if (child && dir) {
    results.server_rss_mib = rssMiB(child.pid!);
    child.kill('SIGTERM');
    await new Promise((res) => child!.once('exit', res));
    await restart(dir, port);
    if (values.keep) results.data_dir = dir;
    else rmSync(dir, { recursive: true, force: true });
  }
  results.loadavg_end = loadavg();
}

main().then(
  () => {
    const width = Math.max(...Object.keys(results).map((k) => k.length));
    for (const [k, v] of Object.entries(results)) console.log(`${k.padEnd(width)}  ${v}`);
    if (values.json) writeFileSync(values.json, JSON.stringify(results, null, 2));
    process.exit(0);
  },
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
