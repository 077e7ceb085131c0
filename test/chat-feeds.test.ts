// One changefeed per active room per process, shared and reference-counted; a feed that
// loses its database connection reopens and backfills, and clients see every message once.
import t, { type Test } from 'tap';
import { r, type Connection } from 'rethinkdb-ts';
import { clientFor, sleep, startApp, startDb, urlOf, byRoomOrder, type Client, type Frame, type WireMsg } from './fixtures/chat.js';
import { startTcpProxy } from './fixtures/tcp-proxy.js';

const db = await startDb(t);
const openFeedsOnDb = () => db.reql?.stats().openFeeds;

async function directConnection(): Promise<Connection> {
  const s = db.address.servers[0];
  const conn = await r.connect({ host: s.host, port: s.port, user: db.address.user, password: db.address.password, silent: true });
  t.teardown(() => conn.close());
  return conn;
}

/** Another writer on the database (as another dyno would be). */
async function insert(conn: Connection, room: string, bodies: string[]): Promise<void> {
  await r
    .db(db.dbName)
    .table('messages')
    .insert(bodies.map((body) => ({ id: crypto.randomUUID(), room, body, author: { name: 'direct' }, sent: r.now() })))
    .run(conn);
}

async function roomInDb(conn: Connection, room: string): Promise<string[]> {
  const rows: WireMsg[] = await r
    .db(db.dbName)
    .table('messages')
    .between([room, r.minval], [room, r.maxval], { index: 'room_sent' })
    .orderBy({ index: 'room_sent' })
    .run(conn);
  return rows.map((m) => m.id);
}

function assertExactlyOnce(t: Test, c: Client, expected: string[], who: string): void {
  const ids = c.received.map((m) => m.id);
  t.equal(new Set(ids).size, ids.length, `${who}: no duplicates`);
  t.same([...c.received].sort(byRoomOrder).map((m) => m.id), expected, `${who}: every message, in room order`);
}

t.test('one feed per room per process, shared by its sockets and closed by the last one', async (t) => {
  const { url, app } = await startApp(t, db);
  const baseline = openFeedsOnDb() ?? 0;
  const inA: Client[] = [];
  const inB: Client[] = [];
  for (let i = 0; i < 12; i++) inA.push(clientFor(t, url));
  for (let i = 0; i < 6; i++) inB.push(clientFor(t, url));
  await Promise.all([...inA, ...inB].map((c) => c.hello()));
  await Promise.all(inA.map((c) => c.join('shared-a')));
  await Promise.all(inB.map((c) => c.join('shared-b')));
  t.equal(app.stats().openFeeds, 2, 'the app holds two feeds for 18 sockets');
  if (db.reql) t.equal(openFeedsOnDb(), baseline + 2, 'and the database has two open');

  // More browsers, same number of feeds.
  const more = Array.from({ length: 10 }, () => clientFor(t, url));
  await Promise.all(more.map((c) => c.hello()));
  await Promise.all(more.map((c) => c.join('shared-a')));
  t.equal(app.stats().openFeeds, 2);
  if (db.reql) t.equal(openFeedsOnDb(), baseline + 2, 'does not grow with the number of browsers');

  // A message reaches every socket of the room through the one feed.
  await inA[0].send('shared-a', 'to all of a');
  await Promise.all([...inA, ...more].map((c) => c.receivedCount(1)));
  t.pass('22 sockets got it');

  for (const c of [...inA, ...more]) c.close();
  await inB[0].until(() => app.stats().openFeeds === 1 || undefined, 'room a released');
  if (db.reql) await inB[0].until(() => openFeedsOnDb() === baseline + 1 || undefined, 'feed closed on the database');
  for (const c of inB) c.close();
  await inB[0].until(() => app.stats().openFeeds === 0 || undefined, 'room b released');
  if (db.reql) await inB[0].until(() => openFeedsOnDb() === baseline || undefined, 'no feed left on the database');
  t.pass('feeds closed when their rooms emptied');
});

t.test('a dropped database connection: the feed reopens, backfills the gap, no duplicates', async (t) => {
  const target = db.address.servers[0];
  const proxy = await startTcpProxy(target);
  t.teardown(() => proxy.close());
  const { url, app } = await startApp(t, urlOf({ ...db.address, servers: [{ host: '127.0.0.1', port: proxy.port }] }, db.dbName));
  const conn = await directConnection();
  // the app's own feeds (its session feed) before any room is open
  const baseline = openFeedsOnDb() ?? 0;

  const v2 = clientFor(t, url);
  const v1 = clientFor(t, url);
  await v2.hello();
  await v1.opened();
  await v2.join('gap');
  v1.write({ type: 'joinRoom', room: 'gap' });
  await new Promise((r) => setTimeout(r, 200));

  await insert(conn, 'gap', ['before 1', 'before 2', 'before 3']);
  await Promise.all([v2.receivedCount(3), v1.receivedCount(3)]);

  // Cut the app off from the database; meanwhile other dynos keep writing, more than a
  // window's worth.
  proxy.cut();
  await v2.until(() => app.stats().openFeeds === 0 || undefined, 'the feed noticed');
  for (let i = 0; i < 15; i++) await insert(conn, 'gap', Array.from({ length: 10 }, (_, j) => `during ${i * 10 + j}`));
  proxy.restore();

  await Promise.all([v2.receivedCount(153, 20_000), v1.receivedCount(153, 20_000)]);
  await insert(conn, 'gap', ['after 1', 'after 2']);
  await Promise.all([v2.receivedCount(155), v1.receivedCount(155)]);
  await new Promise((r) => setTimeout(r, 300));

  const expected = await roomInDb(conn, 'gap');
  t.equal(expected.length, 155);
  assertExactlyOnce(t, v2, expected, 'protocol 2 client');
  assertExactlyOnce(t, v1, expected, 'protocol 1 client');
  t.equal(app.stats().openFeeds, 1, 'one feed again');
  if (db.reql) await v2.until(() => openFeedsOnDb() === baseline + 1 || undefined, 'and only one room feed on the database', 10_000);

  // A socket joining after the reopen gets the current window from memory.
  const late = clientFor(t, url);
  await late.hello();
  const { messages } = await late.join('gap');
  t.same(messages.map((m) => m.id), expected.slice(-100), 'the window is the last 100 after the gap');
});

t.test('a room whose feed cannot open is answered with an error; joined again later, history and live', async (t) => {
  const target = db.address.servers[0];
  const proxy = await startTcpProxy(target);
  t.teardown(() => proxy.close());
  const { url } = await startApp(t, urlOf({ ...db.address, servers: [{ host: '127.0.0.1', port: proxy.port }] }, db.dbName));
  const conn = await directConnection();
  await insert(conn, 'waiting', ['old']);
  proxy.cut();
  const c = clientFor(t, url);
  await c.hello();
  c.write({ type: 'joinRoom', room: 'waiting' });
  const refused = await c.take((f) => f.type === 'error', 'an error for the join', 15_000);
  t.match(refused, { code: 'unavailable', room: 'waiting' }, 'the join is answered: unavailable, naming the room');
  await insert(conn, 'waiting', ['while away']);
  proxy.restore();
  // As a client does: join again until the database is back (the app reconnects with backoff).
  let joined: Frame | undefined;
  for (const deadline = Date.now() + 15_000; !joined && Date.now() < deadline; ) {
    c.write({ type: 'joinRoom', room: 'waiting' });
    const answer = await c.take((f) => f.type === 'joined' || f.type === 'error', 'an answer to the join', 15_000);
    if (answer.type === 'joined') joined = answer;
    else await new Promise((r) => setTimeout(r, 200));
  }
  if (!joined) throw new Error('never joined');
  t.same((joined.messages as WireMsg[]).map((m) => m.body), ['old', 'while away']);
  await insert(conn, 'waiting', ['live']);
  await c.receivedCount(3);
  t.same(c.received.map((m) => m.body), ['old', 'while away', 'live']);
});

t.test('a database connection that goes silent is noticed within seconds: the feed reopens and backfills', async (t) => {
  const target = db.address.servers[0];
  const proxy = await startTcpProxy(target);
  t.teardown(() => proxy.close());
  const { url } = await startApp(t, urlOf({ ...db.address, servers: [{ host: '127.0.0.1', port: proxy.port }] }, db.dbName));
  const conn = await directConnection();
  const c = clientFor(t, url);
  await c.hello();
  await c.join('silent');
  await insert(conn, 'silent', ['before']);
  await c.receivedCount(1);

  // As when the database's machine dies without closing its sockets: nothing more comes
  // over the open connections, and nothing closes them.
  proxy.freeze();
  const frozenAt = Date.now();
  await insert(conn, 'silent', ['while silent 1', 'while silent 2']);
  await c.receivedCount(3, 15_000);
  const tookMs = Date.now() - frozenAt;
  t.comment(`delivered ${tookMs} ms after the connections went silent`);
  t.ok(tookMs < 12_000, 'the silence was noticed and the feed reopened within seconds');
  await insert(conn, 'silent', ['after']);
  await c.receivedCount(4);
  await sleep(300);
  assertExactlyOnce(t, c, await roomInDb(conn, 'silent'), 'the client');
});
