// The article's visitors keep a home, and what they wrote stays readable. Open rooms are off
// by default; the release phase (`src/schema.ts`, the Procfile's release: line) makes the
// rooms of messages stored before accounts public channels, or leaves them open rooms when
// ANONYMOUS_ROOMS=1. Rows here are written as round 1 wrote them (author a plain string).
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import t from 'tap';
import { r, type Connection } from 'rethinkdb-ts';
import { Agent } from './fixtures/http.js';
import { Client, startApp, startDb, type TestDb } from './fixtures/chat.js';

/** The release phase, as the Procfile runs it (from source here). */
function release(db: TestDb, env: Record<string, string> = {}): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/schema.ts'], { env: { ...process.env, RETHINKDB_URL: db.url, LOG_LEVEL: 'info', ANONYMOUS_ROOMS: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, out }));
  });
}

async function connect(db: TestDb): Promise<Connection> {
  const s = db.address.servers[0];
  return r.connect({ host: s.host, port: s.port, user: db.address.user, password: db.address.password, silent: true });
}

/** Round 1's rows: `count` messages in `room`, one millisecond apart, author a plain string. */
function oldMessages(room: string, count: number, start = Date.UTC(2015, 5, 1)): Array<Record<string, unknown>> {
  return Array.from({ length: count }, (_, i) => ({ id: randomUUID(), room, body: `${room || 'lobby'} #${i}`, author: `visitor ${i % 7}`, sent: new Date(start + i) }));
}

const ids = (rows: Array<Record<string, unknown>>) => rows.map((m) => String(m.id));

t.test('open rooms are off by default; the release phase makes old rooms channels', async (t) => {
  const db = await startDb(t);
  // The schema as round 1 left it, and its messages.
  t.equal((await release(db, { ANONYMOUS_ROOMS: '1' })).code, 0, 'the schema is made');
  const conn = await connect(db);
  t.teardown(() => conn.close());
  const messages = r.db(db.dbName).table('messages');
  const general = oldMessages('general', 2500);
  const lobby = oldMessages('', 3);
  const weird = oldMessages('a\u0007bell', 2);
  const clash = oldMessages('Design', 4);
  for (const rows of [general, lobby, weird, clash]) await messages.insert(rows).run(conn);
  // A channel named like one of the old rooms, made after accounts came (also round 1 wrote
  // no UUID rooms: those are account rooms and stay as they are).
  const app0 = await startApp(t, db, { ANONYMOUS_ROOMS: '1', SIGNUP_RATE_LIMIT_PER_ADDRESS: '1000' });
  const owner = new Agent(app0.url);
  t.equal((await owner.signup({ username: 'olive' })).status, 201);
  const design = (await owner.post('/api/rooms', { kind: 'channel', name: 'design' })).json<{ room: { id: string } }>().room.id;
  await app0.app.stop();

  const first = await release(db);
  t.equal(first.code, 0, 'the release succeeds') || t.comment(first.out);
  t.match(first.out, /"rooms":4,"messages":2509/, 'four old rooms, every message moved');

  const app = await startApp(t, db, { ANONYMOUS_ROOMS: '0', LOGIN_RATE_LIMIT_PER_ADDRESS: '1000' });
  const me = new Agent(app.url);
  t.equal((await me.login('olive')).status, 200);
  const channels = (await me.get('/api/channels')).json<{ channels: Array<{ id: string; name: string; topic: string }> }>().channels;
  const named = new Map(channels.map((c) => [c.name, c]));
  t.same([...named.keys()].sort(), ['Design (2)', 'a bell', 'design', 'general', 'lobby'], 'each old room is a channel; a taken name gets a number');
  t.equal(named.get('design')?.id, design, 'the existing channel is untouched');

  // Every message is in its channel, in its order, with its id, author and time.
  for (const [name, rows] of [['general', general], ['lobby', lobby], ['a bell', weird], ['Design (2)', clash]] as const) {
    const id = named.get(name)!.id;
    const stored: Array<{ id: string; author: unknown; sent: Date }> = await messages.between([id, r.minval], [id, r.maxval], { index: 'room_sent' }).orderBy({ index: 'room_sent' }).run(conn);
    t.same(stored.map((m) => m.id), ids(rows), `${name}: every message, in order`);
    t.equal(stored[0].sent.getTime(), (rows[0].sent as Date).getTime(), `${name}: times kept`);
  }
  t.equal(await messages.between(['general', r.minval], ['general', r.maxval], { index: 'room_sent' }).count().run(conn), 0, 'nothing is left under the old name');

  // Through the API, as a member sees it: join, read the newest page, rename, read again.
  const gen = named.get('general')!.id;
  t.equal((await me.post(`/api/rooms/${gen}/join`)).status, 200);
  type Page = { messages: Array<{ id: string; author: { name: string }; event?: { type: string } }> };
  const page = (await me.get(`/api/rooms/${gen}/messages`)).json<Page>().messages;
  t.same(page.slice(0, -1).map((m) => m.id), ids(general).slice(-99), 'the newest page of the old room');
  t.match(page.at(-1), { event: { type: 'member_added' } }, 'then the join');
  t.equal(page[0].author.name, `visitor ${2401 % 7}`, 'authors as they were');
  t.equal((await me.request('PATCH', `/api/rooms/${gen}`, { json: { name: 'general-2015' }, headers: { 'x-csrf-token': await me.csrf() } })).status, 200);
  t.same((await me.get(`/api/rooms/${gen}/messages`)).json<Page>().messages.map((m) => m.id), page.map((m) => m.id), 'a rename keeps the history');

  // With open rooms off, the article's frames find nothing, under the old name or a new one.
  const visitor = new Client(app.url);
  t.teardown(() => visitor.close());
  visitor.write({ type: 'joinRoom', room: 'general' });
  t.match(await visitor.until(() => visitor.inbox.find((f) => f.type === 'error'), 'an error'), { code: 'not_found', room: 'general' });
  visitor.write({ type: 'createMessage', message: { id: randomUUID(), room: 'anything', author: 'x', body: 'hello?' } });
  t.match(await visitor.until(() => visitor.inbox.filter((f) => f.type === 'error')[1], 'a second error'), { code: 'not_found' });
  const home = await fetch(`${app.url}/`, { redirect: 'manual' });
  t.equal(home.status, 303, 'a visitor without an account is sent to log in');
  t.equal(home.headers.get('location'), '/login');

  // Run again: the same result, nothing moved twice.
  const again = await release(db);
  t.equal(again.code, 0, 'the release succeeds') || t.comment(again.out);
  t.match(again.out, /"rooms":0,"messages":0/);
  t.equal((await me.get('/api/channels')).json<{ channels: unknown[] }>().channels.length, 5);
});

t.test('a run cut short resumes: one channel, every message', async (t) => {
  const db = await startDb(t);
  t.equal((await release(db, { ANONYMOUS_ROOMS: '1' })).code, 0);
  const conn = await connect(db);
  t.teardown(() => conn.close());
  const messages = r.db(db.dbName).table('messages');
  const rows = oldMessages('random', 1200);
  await messages.insert(rows).run(conn);
  // As a run that died after its claim and the first messages, before the channel row.
  const id = randomUUID();
  await r.db(db.dbName).table('claims').insert({ id: 'legacy:random', roomId: id }).run(conn);
  await messages.between(['random', r.minval], ['random', r.maxval], { index: 'room_sent' }).limit(500).update({ room: id }).run(conn);
  // Two release phases at once (two dynos' deploys racing).
  const [a, b] = await Promise.all([release(db), release(db)]);
  t.equal(a.code, 0, 'the release succeeds') || t.comment(a.out);
  t.equal(b.code, 0, 'the release succeeds') || t.comment(b.out);
  const rooms: Array<{ id: string; name: string; kind: string }> = await r.db(db.dbName).table('rooms').run(conn);
  t.same(rooms.map((x) => [x.id, x.name, x.kind]), [[id, 'random', 'channel']], 'one channel, with the claimed id');
  t.same(await messages.between([id, r.minval], [id, r.maxval], { index: 'room_sent' }).orderBy({ index: 'room_sent' })('id').run(conn), ids(rows));
});

t.test('with ANONYMOUS_ROOMS=1 old rooms stay open rooms, over the article\'s frames', async (t) => {
  const db = await startDb(t);
  t.equal((await release(db, { ANONYMOUS_ROOMS: '1' })).code, 0);
  const conn = await connect(db);
  t.teardown(() => conn.close());
  const rows = oldMessages('lobby', 5);
  await r.db(db.dbName).table('messages').insert(rows).run(conn);
  const run = await release(db, { ANONYMOUS_ROOMS: '1' });
  t.equal(run.code, 0, 'the release succeeds') || t.comment(run.out);
  t.equal(await r.db(db.dbName).table('rooms').count().run(conn), 0, 'no channel is made');
  const app = await startApp(t, db, { ANONYMOUS_ROOMS: '1' });
  const visitor = new Client(app.url);
  t.teardown(() => visitor.close());
  visitor.write({ type: 'joinRoom', room: 'lobby' });
  await visitor.until(() => visitor.received.length >= 5, 'the old history');
  t.same(visitor.received.map((m) => m.id), ids(rows), 'the old messages, by the room\'s name');
  t.same(visitor.received[0].author, 'visitor 0', 'round 1\'s frames, unchanged');
});
