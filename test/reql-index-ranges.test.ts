// Index ranges on the embedded server: between() with every kind of bound (open and closed,
// minval and maxval inside compound keys), in both orders, on indexes whose values end with
// the primary key (whose entries the storage keeps without it) and on the same indexes ending
// with a copy of it (kept whole). Each answer is checked against the rows sorted here; with
// RETHINKDB_URL set, the same queries run on that server and must answer the same.
import t from 'tap';
import { r, type Connection, type RDatum } from 'rethinkdb-ts';
import { parseRethinkdbUrl } from '../src/config.js';
import { compare, MAXVAL, MINVAL, type Datum, type Key } from '../src/reql/engine/datum.js';
import { startReqlServer } from '../src/reql/index.js';

const rows = Array.from({ length: 240 }, (_, i) => ({
  id: `m${String(i).padStart(3, '0')}`,
  copy: `m${String(i).padStart(3, '0')}`,
  room: `r${i % 4}`,
  sent: (i * 7) % 30, // ties within a room, broken by the key
  tags: [`t${i % 3}`, `t${(i * 5) % 7}`],
}));
type Row = (typeof rows)[number];

type Fn = (m: RDatum) => unknown;
const indexes: Array<{ name: string; fn: Fn; multi: boolean; values: (row: Row) => Datum[] }> = [
  { name: 'byKey', fn: (m) => [m('room'), m('sent'), m('id')], multi: false, values: (x) => [[x.room, x.sent, x.id]] },
  { name: 'byCopy', fn: (m) => [m('room'), m('sent'), m('copy')], multi: false, values: (x) => [[x.room, x.sent, x.copy]] },
  { name: 'tagKey', fn: (m) => m('tags').map((g: RDatum) => [g, m('room'), m('id')]), multi: true, values: (x) => x.tags.map((g) => [g, x.room, x.id]) },
  { name: 'tagCopy', fn: (m) => m('tags').map((g: RDatum) => [g, m('room'), m('copy')]), multi: true, values: (x) => x.tags.map((g) => [g, x.room, x.copy]) },
];

/** A bound as the driver sends it, and as compare() takes it. */
type Bound = { q: unknown; k: Key };
const MIN: Bound = { q: r.minval, k: MINVAL };
const MAX: Bound = { q: r.maxval, k: MAXVAL };
const v = (x: Datum): Bound => ({ q: x, k: x });
const arr = (...xs: Bound[]): Bound => ({ q: xs.map((x) => x.q), k: xs.map((x) => x.k) as unknown as Key });

const roomBounds: Array<[Bound, Bound]> = [
  [arr(v('r1'), MIN, MIN), arr(v('r1'), MAX, MAX)],
  [arr(v('r1'), v(7), MIN), arr(v('r1'), v(21), MAX)],
  [arr(v('r1'), v(7), v('m100')), arr(v('r2'), v(7), v('m100'))],
  [arr(v('r0'), v(14)), arr(v('r0'), v(28))],
  [arr(v('r2')), arr(v('r3'))],
  [MIN, arr(v('r1'), v(0), v('m001'))],
  [arr(v('r3'), v(28), v('m000')), MAX],
  [MIN, MAX],
];
const tagBounds: Array<[Bound, Bound]> = [
  [arr(v('t1'), MIN, MIN), arr(v('t1'), MAX, MAX)],
  [arr(v('t2'), v('r1'), v('m050')), arr(v('t4'), v('r2'), v('m200'))],
  [arr(v('t0')), arr(v('t1'))],
  [MIN, MAX],
];

/** The keys of the rows in [lo, hi] of an index, in its order (asc), or reversed, each once. */
function expected(values: (row: Row) => Datum[], lo: Key, hi: Key, loOpen: boolean, hiOpen: boolean, desc: boolean): string[] {
  const hits: Array<[Datum, string]> = [];
  for (const row of rows) {
    for (const val of values(row)) {
      const a = compare(val, lo);
      const b = compare(val, hi);
      if ((loOpen ? a > 0 : a >= 0) && (hiOpen ? b < 0 : b <= 0)) hits.push([val, row.id]);
    }
  }
  hits.sort((x, y) => compare(x[0], y[0]) || compare(x[1], y[1]));
  if (desc) hits.reverse();
  const seen = new Set<string>();
  return hits.map(([, id]) => id).filter((id) => !seen.has(id) && (seen.add(id), true));
}

async function answers(conn: Connection, table: string): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const idx of indexes) {
    const bounds = idx.multi ? tagBounds : roomBounds;
    for (const [bi, [lo, hi]] of bounds.entries()) {
      for (const leftBound of ['closed', 'open'] as const) {
        for (const rightBound of ['open', 'closed'] as const) {
          const sel = r.table(table).between(lo.q, hi.q, { index: idx.name, leftBound, rightBound });
          const key = `${idx.name} #${bi} ${leftBound}/${rightBound}`;
          const ids = (x: RDatum) => x('id');
          if (idx.multi) {
            // A multi index has no order to ask for: the set of rows (RethinkDB 2.4 gives a row
            // once per matching entry, so twice for a tag it holds twice; this server once).
            out[key] = [...new Set((await sel.map(ids).run(conn)) as string[])].sort();
          } else {
            out[`${key} asc`] = (await sel.orderBy({ index: idx.name }).map(ids).run(conn)) as string[];
            out[`${key} desc`] = (await sel.orderBy({ index: r.desc(idx.name) }).map(ids).run(conn)) as string[];
            out[`${key} desc limit 5`] = (await sel.orderBy({ index: r.desc(idx.name) }).limit(5).map(ids).run(conn)) as string[];
          }
        }
      }
    }
  }
  return out;
}

async function setUp(conn: Connection, table: string): Promise<void> {
  await r.tableCreate(table).run(conn);
  for (const idx of indexes) await r.table(table).indexCreate(idx.name, idx.fn, { multi: idx.multi }).run(conn);
  await r.table(table).indexWait().run(conn);
  await r.table(table).insert(rows).run(conn);
}

const server = await startReqlServer({ port: 0, inMemory: true });
const conn = await r.connect({ host: server.host, port: server.port });
t.teardown(async () => {
  await conn.close();
  await server.close();
});
await setUp(conn, 'ranges');
const embedded = await answers(conn, 'ranges');

t.test('every range holds the rows its bounds hold, in index order', async (t) => {
  let checked = 0;
  for (const idx of indexes) {
    const bounds = idx.multi ? tagBounds : roomBounds;
    for (const [bi, [lo, hi]] of bounds.entries()) {
      for (const loOpen of [false, true]) {
        for (const hiOpen of [true, false]) {
          const key = `${idx.name} #${bi} ${loOpen ? 'open' : 'closed'}/${hiOpen ? 'open' : 'closed'}`;
          if (idx.multi) {
            t.same(embedded[key], expected(idx.values, lo.k, hi.k, loOpen, hiOpen, false).sort(), key);
          } else {
            t.same(embedded[`${key} asc`], expected(idx.values, lo.k, hi.k, loOpen, hiOpen, false), `${key} asc`);
            t.same(embedded[`${key} desc`], expected(idx.values, lo.k, hi.k, loOpen, hiOpen, true), `${key} desc`);
            t.same(embedded[`${key} desc limit 5`], expected(idx.values, lo.k, hi.k, loOpen, hiOpen, true).slice(0, 5), `${key} desc limit 5`);
          }
          checked++;
        }
      }
    }
  }
  t.ok(Object.values(embedded).some((ids) => ids.length > 20), `${checked} ranges, some of them long`);
});

t.test('an index ending with the key answers as one ending with a copy of it', async (t) => {
  for (const [key, ids] of Object.entries(embedded)) {
    if (key.startsWith('byKey')) t.same(ids, embedded[key.replace('byKey', 'byCopy')], key);
    if (key.startsWith('tagKey')) t.same(ids, embedded[key.replace('tagKey', 'tagCopy')], key);
  }
});

t.test('the same answers as RETHINKDB_URL', async (t) => {
  const real = process.env.RETHINKDB_URL;
  if (!real) {
    t.comment('RETHINKDB_URL is not set: not compared with a real server');
    return;
  }
  const { address } = parseRethinkdbUrl(real);
  const rc = await r.connect({ host: address.servers[0].host, port: address.servers[0].port, user: address.user, password: address.password });
  const db = `ranges_${Math.random().toString(36).slice(2, 8)}`;
  t.teardown(async () => {
    await r.dbDrop(db).run(rc).catch(() => undefined);
    await rc.close();
  });
  await r.dbCreate(db).run(rc);
  rc.use(db);
  await setUp(rc, 'ranges');
  t.same(await answers(rc, 'ranges'), embedded);
});
