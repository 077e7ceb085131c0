// The embedded server's snapshots (src/reql/storage/catalog.ts): a compaction writes rows and
// index entries in bulk blocks, a restart loads them (rows stay in the file until read) and
// replays the tail written after, and the next compaction copies rows from the old file to the
// new one while writes and reads go on. Through all of it, every row and every index answers
// exactly as before the restart. This is the embedded server's storage: it runs on it even when
// RETHINKDB_URL names another server.
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { r, type Connection, type RDatum } from 'rethinkdb-ts';
import { startReqlServer, type ReqlServer } from '../src/reql/index.js';

const dir = mkdtempSync(join(tmpdir(), 'reql-snapshot-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const logFile = join(dir, 'reql.log');

/** How many frames of the log are snapshot blocks (their payload starts with a 00 byte). */
function blobFrames(): number {
  const b = readFileSync(logFile);
  let n = 0;
  for (let at = 12; at + 8 <= b.length; ) {
    const len = b.readUInt32LE(at);
    if (at + 8 + len > b.length) break;
    if (len > 0 && b[at + 8] === 0) n++;
    at += 8 + len;
  }
  return n;
}

/** A compaction replaces the file: its inode changes. */
const inode = () => statSync(logFile).ino;

async function start(): Promise<{ server: ReqlServer; conn: Connection }> {
  const server = await startReqlServer({ port: 0, dataDir: dir, compactMinRows: 200 });
  const conn = await r.connect({ host: server.host, port: server.port });
  return { server, conn };
}

async function stop({ server, conn }: { server: ReqlServer; conn: Connection }): Promise<void> {
  await conn.close();
  await server.close();
}

const m = () => r.table('m');
const big = (n: number, c: string) => c.repeat(n);

function row(i: number): Record<string, unknown> {
  return {
    id: i % 3 ? `r${i}` : i,
    room: `room${i % 7}`,
    n: i,
    tags: [`t${i % 5}`, `t${i % 3}`, `t${i % 5}`],
    text: i % 10 === 0 ? `héllo wörld 😀 中文 ${i}` : `plain ${i}`,
    at: r.epochTime(1000 + (i % 50)),
  };
}

/** Everything a client can see of the table: rows by key, and each index in its order. */
async function state(conn: Connection): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  out.count = await m().count().run(conn);
  out.rows = await m().orderBy({ index: 'id' }).run(conn);
  out.indexes = await m().indexList().run(conn);
  for (const name of out.indexes as string[]) {
    out[`asc:${name}`] = await m().between(r.minval, r.maxval, { index: name }).map((x: RDatum) => x('id')).run(conn);
    out[`desc:${name}`] = await m().orderBy({ index: r.desc(name) }).map((x: RDatum) => x('id')).run(conn).catch((e: Error) => e.message);
  }
  if ((out.indexes as string[]).includes('tags')) out.tagT1 = await m().getAll('t1', { index: 'tags' }).map((x: RDatum) => x('id')).coerceTo('array').run(conn);
  out.someGets = await r.expr(['r1', 3, 'r500', 999, 'nope', 'big1', 'big2']).map((k: RDatum) => m().get(k).default(null)).run(conn);
  return out;
}

/** Writes that change rows in every way, with reads in between. */
async function churn(conn: Connection, round: number): Promise<void> {
  await m().between(`r${round % 9}`, `r${round % 9}~`).update({ n: r.row('n').add(1000), round }, { durability: 'soft' }).run(conn);
  await m().get(round * 3).delete({ durability: 'soft' }).run(conn);
  await m().insert([row(2000 + round), row(3000 + round)], { durability: 'soft', conflict: 'replace' }).run(conn);
  const got = await m().getAll(`room${round % 7}`, { index: 'room_n' }).count().run(conn).catch(() => -1);
  if (typeof got !== 'number') throw new Error('a read failed during the writes');
  await m().get('big1').run(conn);
}

let before: Record<string, unknown>;

t.test('rows and indexes written before and after a snapshot come back after a restart', async (t) => {
  const s = await start();
  const { conn } = s;
  await r.tableCreate('m').run(conn);
  await m().indexCreate('room_n', (x: RDatum) => [x('room'), x('n')]).run(conn);
  await m().indexCreate('tags', (x: RDatum) => x('tags'), { multi: true }).run(conn);
  await m().indexCreate('textlen', (x: RDatum) => x('text').count()).run(conn); // not compiled: interpreted
  await m().indexCreate('at', (x: RDatum) => x('at')).run(conn);
  await m().indexWait().run(conn);
  for (let i = 0; i < 1000; i += 100) await m().insert(Array.from({ length: 100 }, (_, k) => row(i + k)), { durability: 'soft' }).run(conn);
  // Rows larger than a read of the file, and than a snapshot block.
  await m().insert([{ id: 'big1', room: 'room1', n: -1, tags: [], text: big(300_000, 'é'), at: r.epochTime(5) }, { id: 'big2', room: 'room2', n: -2, tags: ['t1'], text: big(1_500_000, 'x'), at: r.epochTime(6) }]).run(conn);
  const first = inode();
  let round = 0;
  for (; round < 200 && inode() === first; round++) await churn(conn, round);
  t.not(inode(), first, `the log was compacted after ${round} rounds of writes`);
  t.ok(blobFrames() > 0, 'into a snapshot of blocks');
  // The tail: writes and index changes after the snapshot.
  for (let k = 0; k < 5; k++) await churn(conn, round + k);
  await m().indexCreate('late', (x: RDatum) => x('room')).run(conn);
  await m().indexDrop('textlen').run(conn);
  await m().indexRename('at', 'at2').run(conn);
  await m().indexWait().run(conn);
  await m().insert({ id: 'after', room: 'room0', n: 7, tags: ['t1', 't9'], text: 'ünïcode after', at: r.epochTime(9) }).run(conn);
  await m().sync().run(conn);
  before = await state(conn);
  t.ok((before.count as number) > 1000, `${before.count as number} rows`);
  await stop(s);

  const again = await start();
  t.same(await state(again.conn), before, 'the same rows, indexes and orders after the restart');
  await stop(again);
});

t.test('a compaction copies rows from the old file while writes and reads go on', async (t) => {
  const s = await start();
  const { conn } = s;
  t.same(await state(conn), before, 'as left');
  const first = inode();
  let round = 500;
  // Enough writes for the next compaction; it copies the snapshot's rows out of the old file.
  // Index changes on the way, some while a compaction is writing (its blocks must say the
  // index's name as its records do).
  let name = 'at2';
  for (; round < 700 && inode() === first; round++) {
    await churn(conn, round);
    const next = name === 'at2' ? 'at3' : 'at2';
    await m().indexRename(name, next).run(conn);
    name = next;
    if (round % 2 === 0) await m().indexDrop('late').run(conn);
    else await m().indexCreate('late', (x: RDatum) => x('room')).run(conn);
  }
  t.not(inode(), first, `compacted again after ${round - 500} rounds`);
  if (name !== 'at2') await m().indexRename(name, 'at2').run(conn);
  if (!(await m().indexList().run(conn)).includes('late')) await m().indexCreate('late', (x: RDatum) => x('room')).run(conn);
  await m().indexWait().run(conn);
  for (let k = 0; k < 5; k++) await churn(conn, round + k);
  await m().sync().run(conn);
  const after = await state(conn);
  t.equal((after.someGets as Array<{ text?: string } | null>)[5]?.text?.length, 300_000, 'the large row reads whole');
  await stop(s);

  const again = await start();
  t.same(await state(again.conn), after, 'the same after the next restart');
  await stop(again);
});
