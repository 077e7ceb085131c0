// The ReQL the chat app, endex and the driver rely on, run through rethinkdb-ts against the
// embedded server over TCP.
import t from 'tap';
import { r, type Connection, type RDatum } from 'rethinkdb-ts';
import endex from 'endex';
import { startReqlServer, type ReqlServer } from '../src/reql/index.js';

let server: ReqlServer;
let conn: Connection;

t.before(async () => {
  server = await startReqlServer({ port: 0, inMemory: true });
  conn = await r.connect({ host: server.host, port: server.port });
});
t.teardown(async () => {
  await conn.close();
  await server.close();
});

async function nextItems<T>(cursor: { next(): Promise<T> }, n: number): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < n; i++) out.push(await cursor.next());
  return out;
}

t.test('endex ensures a schema, twice, without errors or duplicates', async (t) => {
  const schema = () => endex({ r }).db('chat').table('messages').index('room_sent', (row: RDatum) => [row('room'), row('sent')]).index('author').table('rooms');
  const c1 = await r.connect({ host: server.host, port: server.port });
  await schema().run(c1);
  await schema().run(c1);
  t.same(await r.db('chat').tableList().run(conn), ['messages', 'rooms']);
  t.same(await r.db('chat').table('messages').indexList().run(conn), ['author', 'room_sent']);
  await c1.close();
});

t.test('indexes: getAll, between with compound keys and minval/maxval, ordered limit', async (t) => {
  await r.tableCreate('m').run(conn);
  const m = r.table('m');
  await m.indexCreate('room_sent', [r.row('room'), r.row('sent')]).run(conn);
  await m.indexCreate('tags', { multi: true } as never).run(conn).catch(() => undefined);
  await m.indexCreate('room').run(conn);
  await m.indexWait().run(conn);
  const docs = Array.from({ length: 30 }, (_, i) => ({ id: `m${i}`, room: i % 2 ? 'odd' : 'even', sent: i, tags: [`t${i % 3}`] }));
  const res = await m.insert(docs).run(conn);
  t.equal(res.inserted, 30);
  t.equal((await m.getAll('odd', { index: 'room' }).run(conn)).length, 15);
  const last5 = await m.between(['odd', r.minval], ['odd', r.maxval], { index: 'room_sent' }).orderBy({ index: r.desc('room_sent') }).limit(5).run(conn);
  t.same(last5.map((d: { sent: number }) => d.sent), [29, 27, 25, 23, 21]);
  const range = await m.between(['even', 4], ['even', 10], { index: 'room_sent', rightBound: 'closed' }).orderBy({ index: 'room_sent' })('sent').run(conn);
  t.same(range, [4, 6, 8, 10]);
  t.equal(await m.count().run(conn), 30);
  t.same(await m.orderBy({ index: r.desc('id') }).limit(2)('id').run(conn), ['m9', 'm8']);
});

t.test('the "last N then live" feed hands over history and changes atomically', async (t) => {
  await r.tableCreate('feed').run(conn);
  const f = r.table('feed');
  await f.indexCreate('room_sent', [r.row('room'), r.row('sent')]).run(conn);
  await f.insert(Array.from({ length: 5 }, (_, i) => ({ id: `a${i}`, room: 'a', sent: i }))).run(conn);
  await f.insert({ id: 'b0', room: 'b', sent: 100 }).run(conn);
  const feed = await f
    .between(['a', r.minval], ['a', r.maxval], { index: 'room_sent' })
    .orderBy({ index: r.desc('room_sent') })
    .limit(3)
    .changes({ includeInitial: true, includeStates: true, includeTypes: true })
    .run(conn);
  const start = await nextItems(feed, 5);
  t.same(start[0], { state: 'initializing', type: 'state' });
  t.same(start.slice(1, 4).map((c) => (c as { new_val: { sent: number } }).new_val.sent), [4, 3, 2], 'newest three, newest first');
  t.same(start[4], { state: 'ready', type: 'state' });
  await f.insert({ id: 'b1', room: 'b', sent: 200 }).run(conn); // another room: not in this feed
  await f.insert({ id: 'a5', room: 'a', sent: 5 }).run(conn);
  const [ch] = await nextItems(feed, 1);
  t.match(ch, { type: 'change', new_val: { id: 'a5' }, old_val: { id: 'a2' } }, 'the new row pushes the oldest out of the window');
  await feed.close();
});

t.test('point, getAll and table feeds; includeInitial; squash merges', async (t) => {
  await r.tableCreate('pf').run(conn);
  const p = r.table('pf');
  await p.indexCreate('room').run(conn);
  const point = await p.get(1).changes({ includeInitial: true }).run(conn);
  t.same(await point.next(), { new_val: null });
  const byRoom = await p.getAll('x', { index: 'room' }).changes().run(conn);
  await p.insert({ id: 1, room: 'x' }).run(conn);
  t.same(await point.next(), { old_val: null, new_val: { id: 1, room: 'x' } });
  t.same(await byRoom.next(), { old_val: null, new_val: { id: 1, room: 'x' } });
  await p.get(1).update({ room: 'y' }).run(conn);
  t.same(await byRoom.next(), { old_val: { id: 1, room: 'x' }, new_val: null }, 'leaving the getAll set is a removal');
  await point.close();
  await byRoom.close();
});

t.test('writes: conflicts, returnChanges, atomic branch updates, errors are counted', async (t) => {
  await r.tableCreate('w').run(conn);
  const w = r.table('w');
  t.match(await w.insert({ id: 1, n: 1 }).run(conn), { inserted: 1 });
  const dup = await w.insert({ id: 1, n: 2 }).run(conn);
  t.equal(dup.errors, 1);
  t.match(dup.first_error, /^Duplicate primary key `id`/);
  t.match(await w.insert({ id: 1, n: 3 }, { conflict: 'update', returnChanges: true }).run(conn), {
    replaced: 1,
    changes: [{ old_val: { id: 1, n: 1 }, new_val: { id: 1, n: 3 } }],
  });
  t.match(await w.insert({ id: 1, n: 3 }, { conflict: 'replace' }).run(conn), { unchanged: 1 });
  const gen = await w.insert({ n: 9 }).run(conn);
  t.match(gen.generated_keys?.[0], /^[0-9a-f-]{36}$/);
  t.match(await w.get(1).update((row: RDatum) => r.branch(row('n').lt(10), { n: row('n').add(1) }, {})).run(conn), { replaced: 1 });
  t.equal(await w.get(1)('n').run(conn), 4);
  t.match(await w.get(404).update({ n: 1 }).run(conn), { skipped: 1 });
  await t.rejects(w.get(1).update(() => ({ n: r.js('1') })).run(conn), /deterministic|JAVASCRIPT/);
  t.match(await w.filter({ n: 9 }).delete().run(conn), { deleted: 1 });
});

t.test('unsupported terms fail with an error that names them', async (t) => {
  await t.rejects(r.js('1 + 1').run(conn), /JAVASCRIPT/);
  await t.rejects(r.http('http://127.0.0.1:1/').run(conn), /HTTP/);
  await t.rejects(r.table('nope').run(conn), /Table `test.nope` does not exist/);
  t.equal(await r.expr(1).add(1).run(conn), 2, 'the connection still works');
});

t.test('noreply queries, NOREPLY_WAIT and SERVER_INFO', async (t) => {
  await r.tableCreate('nr').run(conn);
  for (let i = 0; i < 20; i++) await r.table('nr').insert({ id: i }).run(conn, { noreply: true });
  await conn.noreplyWait();
  t.equal(await r.table('nr').count().run(conn), 20, 'every noreply write is done once noreplyWait returns');
  t.match(await conn.server(), { id: /^[0-9a-f-]{36}$/, name: 'embedded', proxy: false });
});

t.test('a connection pool connects (with discovery off)', async (t) => {
  const pool = await r.connectPool({ servers: [{ host: server.host, port: server.port }], discovery: false, silent: true, buffer: 2, max: 4 });
  t.equal(await r.expr('pool').run(), 'pool');
  await pool.drain();
});
