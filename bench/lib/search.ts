// The `--search` phase of `npm run bench`: what search costs (issue 12, point 6), on one app
// process, with a seeded workspace (bench/lib/team.ts) whose rooms fill with generated chat:
// - GET /api/search p50/p99 for a common word (in about a third of the messages), a rare word
//   (1 in 20,000), a prefix (`deplo`: deployment, deploying, deployed, about 3 %) and a phrase
//   ("release notes", about 0.5 %), at a tenth of the messages and at all of them;
// - what the terms cost writes: rows inserted per second in batches, and one at a time (16 at
//   once, as posts arrive), with the search fields and without them;
// - on RethinkDB, the rows the database read per search (its stats), which load does not blur.
// Messages are written straight into the database with the fields the store would give them
// (src/search/stored.ts), timestamps spread over the past. Only 127.0.0.1 is contacted.
import { randomUUID } from 'node:crypto';
import { r, type Connection } from 'rethinkdb-ts';
import { MESSAGES } from '../../src/db/schema.js';
import { fieldsOnInsert } from '../../src/search/stored.js';
import { spawnDyno, type Db, type Dyno } from './procs.js';
import { roundSummary, Samples, summarize, table, type Summary } from './stats.js';
import { seed } from './team.js';

export interface SearchBenchOptions {
  /** messages stored at the end (1,000,000); the first measurement is at a tenth of them */
  messages: number;
  rooms: number;
  /** searches per query per size */
  samples: number;
  /** rows for each write measurement */
  writes: number;
  /** echo the app's log to stderr */
  echo?: boolean;
}

export interface SearchBenchResult {
  rooms: number;
  sizes: Array<{ messages: number; fillSeconds: number; rowsPerSecond: number; queries: Array<{ name: string; query: string; hits: number; failed: number; ms: Summary; rowsRead?: number }> }>;
  writes: { batchRowsPerSecond: { with: number; without: number }; singleInsertsPerSecond: { with: number; without: number }; termsPerMessage: number };
}

const log = (msg: string) => process.stderr.write(`bench: ${msg}\n`);

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let x = s;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32;
  };
}

const QUERIES = [
  { name: 'common word', query: 'status' },
  { name: 'rare word', query: 'zyxquartz' },
  { name: 'prefix', query: 'deplo' },
  { name: 'phrase', query: '"release notes"' },
];

/** Chat-like lines: words of a Zipf-weighted vocabulary, and the benchmark's words mixed in. */
function writer(seedValue: number): () => string {
  const rand = prng(seedValue);
  const letters = 'abcdefghiklmnoprstuvwy';
  const vocab: string[] = [];
  for (let i = 0; i < 3000; i++) {
    let w = '';
    const n = 3 + Math.floor(rand() * 7);
    for (let k = 0; k < n; k++) w += letters[Math.floor(rand() * letters.length)];
    vocab.push(w);
  }
  // Zipf: word i with weight 1/(i+1), drawn by inverting the cumulative sum.
  const cum = new Float64Array(vocab.length);
  let total = 0;
  for (let i = 0; i < vocab.length; i++) cum[i] = total += 1 / (i + 1);
  const pick = () => {
    const x = rand() * total;
    let lo = 0;
    let hi = cum.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cum[mid]! < x) lo = mid + 1;
      else hi = mid;
    }
    return vocab[lo]!;
  };
  return () => {
    const words: string[] = [];
    const n = 6 + Math.floor(rand() * 9);
    for (let i = 0; i < n; i++) words.push(pick());
    if (rand() < 0.33) words.splice(Math.floor(rand() * words.length), 0, 'status');
    if (rand() < 0.01) words.push('deployment');
    if (rand() < 0.01) words.push('deploying');
    if (rand() < 0.01) words.unshift('deployed');
    if (rand() < 0.005) words.splice(1, 0, 'release', 'notes');
    if (rand() < 1 / 20_000) words.push('zyxquartz');
    return words.join(' ');
  };
}

export async function searchPhase(db: Db, o: SearchBenchOptions): Promise<SearchBenchResult> {
  log(`search: seeding a workspace of ${o.rooms} rooms`);
  const seeded = await seed(db, { users: 5, rooms: o.rooms, perUser: o.rooms });
  const owner = seeded.users[0]!;
  const conn: Connection = await r.connect({ ...db.address.servers[0], user: db.address.user, password: db.address.password, silent: true });
  const messages = r.db(db.dbName).table(MESSAGES);
  const line = writer(20261202);
  const author = { id: owner.id, name: owner.name };
  const base = Date.now() - o.messages * 100;
  let stored = 0;
  const row = (i: number, withTerms = true) => {
    const m = { id: randomUUID(), room: seeded.roomIds[i % seeded.roomIds.length]!, body: line(), author };
    return { ...m, ...(withTerms ? fieldsOnInsert(m) : {}), sent: new Date(base + i * 100) };
  };
  // One batch in flight, of 1,000 rows: the embedded server stores a batch without answering
  // anything else (2,000 rows took it 2-4 s here), and the app's pool closes a connection whose
  // ping waits 4 s. Two in flight were no faster on either server (both were busy on the CPU).
  async function fillTo(n: number): Promise<{ seconds: number; rowsPerSecond: number }> {
    const t0 = performance.now();
    const from = stored;
    while (stored < n) {
      const batch = [];
      for (let k = 0; k < 1000 && stored < n; k++) batch.push(row(stored++));
      const res = await messages.insert(batch, { durability: 'soft' }).run(conn);
      if (res.errors > 0) throw new Error(`filling: ${res.first_error}`);
      if (stored % 50_000 < batch.length) log(`search: ${stored} messages stored (${Math.round((stored - from) / ((performance.now() - t0) / 1000))} rows/s)`);
    }
    const seconds = (performance.now() - t0) / 1000;
    return { seconds: Math.round(seconds * 10) / 10, rowsPerSecond: Math.round((stored - from) / seconds) };
  }

  /** The rows RethinkDB has read from the messages table (its stats table; none on the
   *  embedded server): what a search costs the database, whatever else the machine runs. */
  const rowsRead = async (): Promise<number | undefined> => {
    try {
      const stats = (await r.db('rethinkdb').table('stats').filter({ db: db.dbName, table: MESSAGES }).run(conn)) as Array<{ id: unknown[]; query_engine?: { read_docs_total?: number } }>;
      const servers = stats.filter((x) => x.id[0] === 'table_server');
      return servers.length === 0 ? undefined : servers.reduce((sum, x) => sum + (x.query_engine?.read_docs_total ?? 0), 0);
    } catch {
      return undefined;
    }
  };

  let dyno: Dyno | undefined;
  try {
    // The app's errors are echoed (LOG_LEVEL info: a line a request).
    dyno = await spawnDyno('web.search', db.url, { ANONYMOUS_ROOMS: '0' }, { echoStderr: o.echo ?? false });
    const url = dyno.url;
    let failed = 0;
    /** the hits of one search; a failed one is counted (and logged), not timed */
    const searchOnce = async (q: string): Promise<number | undefined> => {
      const res = await fetch(`${url}/api/search?q=${encodeURIComponent(q)}&limit=20`, { headers: { cookie: `sid=${owner.token}` } });
      if (res.ok) return ((await res.json()) as { results: unknown[] }).results.length;
      failed++;
      log(`search ${q}: ${res.status} ${(await res.text()).slice(0, 200)}`);
      return undefined;
    };
    const sizes: SearchBenchResult['sizes'] = [];
    for (const n of [Math.max(1000, Math.floor(o.messages / 10)), o.messages]) {
      const fill = await fillTo(n);
      // If the app's pool lost its connections while the database was busy, it is back first.
      for (let tries = 0; (await fetch(`${url}/readyz`).catch(() => undefined))?.status !== 200; tries++) {
        if (tries >= 60) throw new Error('the app was not ready within 30 s after filling');
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      log(`search: ${n} messages (${fill.rowsPerSecond} rows/s); timing ${o.samples} searches of each kind`);
      const queries: SearchBenchResult['sizes'][number]['queries'] = [];
      for (const q of QUERIES) {
        const s = new Samples();
        let hits = (await searchOnce(q.query)) ?? 0; // warm
        const before = failed;
        const read0 = await rowsRead();
        for (let i = 0; i < o.samples; i++) {
          const t0 = performance.now();
          const n = await searchOnce(q.query);
          if (n !== undefined) {
            s.push(performance.now() - t0);
            hits = n;
          }
        }
        const read1 = await rowsRead();
        const rowsPerSearch = read0 === undefined || read1 === undefined ? undefined : Math.round((read1 - read0) / o.samples);
        queries.push({ name: q.name, query: q.query, hits, failed: failed - before, ms: roundSummary(summarize(s.values())), rowsRead: rowsPerSearch });
      }
      sizes.push({ messages: n, fillSeconds: fill.seconds, rowsPerSecond: fill.rowsPerSecond, queries });
    }

    // ---- what the terms cost writes ------------------------------------------------------
    log(`search: write cost, ${o.writes} rows each way`);
    const batchRate = async (withTerms: boolean) => {
      const rows = Array.from({ length: o.writes }, (_, i) => row(stored + i, withTerms));
      const t0 = performance.now();
      for (let i = 0; i < rows.length; i += 1000) await messages.insert(rows.slice(i, i + 1000), { durability: 'soft' }).run(conn);
      stored += rows.length;
      return Math.round(rows.length / ((performance.now() - t0) / 1000));
    };
    const singleRate = async (withTerms: boolean) => {
      const n = Math.max(200, Math.floor(o.writes / 5));
      let next = 0;
      const t0 = performance.now();
      // The fields are made in the loop, as the store makes them per post.
      await Promise.all(Array.from({ length: 16 }, async () => {
        while (next < n) {
          next++;
          await messages.insert(row(stored++, withTerms)).run(conn);
        }
      }));
      return Math.round(n / ((performance.now() - t0) / 1000));
    };
    const without = await batchRate(false);
    const withTerms = await batchRate(true);
    const singleWithout = await singleRate(false);
    const singleWith = await singleRate(true);
    let terms = 0;
    for (let i = 0; i < 1000; i++) terms += (fieldsOnInsert({ body: line(), author }).terms ?? []).length;
    return { rooms: o.rooms, sizes, writes: { batchRowsPerSecond: { with: withTerms, without }, singleInsertsPerSecond: { with: singleWith, without: singleWithout }, termsPerMessage: Math.round(terms / 100) / 10 } };
  } finally {
    await conn.close().catch(() => undefined);
    await dyno?.stop().catch(() => dyno?.kill());
  }
}

export function printSearch(s: SearchBenchResult): void {
  console.log(`\n== search: ${s.rooms} rooms, one process; GET /api/search, 20 results a page ==`);
  const rows: Array<Array<string | number>> = [['query (ms)', 'messages', 'hits', 'failed', 'p50', 'p90', 'p99', 'max', 'rows read']];
  for (const size of s.sizes) for (const q of size.queries) rows.push([`${q.name}: ${q.query}`, size.messages, q.hits, q.failed, q.ms.p50, q.ms.p90, q.ms.p99, q.ms.max, q.rowsRead ?? '-']);
  console.log(table(rows));
  console.log(table([
    ['writes (rows/s)', 'with search fields', 'without'],
    ['batches of 1,000', s.writes.batchRowsPerSecond.with, s.writes.batchRowsPerSecond.without],
    ['one at a time, 16 at once', s.writes.singleInsertsPerSecond.with, s.writes.singleInsertsPerSecond.without],
  ]));
  console.log(`terms per message: ${s.writes.termsPerMessage} (index entries); fill rate with terms: ${s.sizes.map((x) => `${x.rowsPerSecond} rows/s to ${x.messages}`).join(', ')}`);
}
