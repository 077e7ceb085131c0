// Edits, deletions and reactions: who may (through the access module, over the real API),
// live on every process, and exactly right after a reconnect: a client that was away while
// messages were posted, edited, deleted and reacted to comes back (to another process) to
// the state a fresh client sees, field by field.
import t, { type Test } from 'tap';
import Primus from 'primus';
import { r } from 'rethinkdb-ts';
import type { OutboundFrame, WireMessage } from '../src/chat/wire.js';
import { ClientSession } from '../src/client/session.js';
import { Agent } from './fixtures/http.js';
import { sleep, spawnApp, startDb } from './fixtures/chat.js';

const db = await startDb(t);
const env = { RETHINKDB_URL: db.url, SIGNUP_RATE_LIMIT_PER_ADDRESS: '1000', LOGIN_RATE_LIMIT_PER_ADDRESS: '1000' };
const [one, two] = await Promise.all([spawnApp(t, { ...env, DYNO: 'web.1' }), spawnApp(t, { ...env, DYNO: 'web.2' })]);

const olive = new Agent(one.url);
await olive.signup({ username: 'olive' });
await olive.request('PATCH', '/api/workspace', { json: { registration: 'open' }, headers: { 'x-csrf-token': await olive.csrf() } });
const bob = new Agent(two.url);
await bob.signup({ username: 'bob' });
const gil = new Agent(one.url);
await gil.signup({ username: 'gil' });
const ids = new Map<string, string>();
for (const [name, a] of [['olive', olive], ['bob', bob], ['gil', gil]] as const) ids.set(name, (await a.get('/api/me')).json<{ user: { id: string } }>().user.id);
const room = (await olive.post('/api/rooms', { kind: 'channel', name: 'general' })).json<{ room: { id: string } }>().room.id;
await bob.post(`/api/rooms/${room}/join`);
const secret = (await olive.post('/api/rooms', { kind: 'group', name: 'secret' })).json<{ room: { id: string } }>().room.id;

const api = (a: Agent, method: 'PATCH' | 'DELETE' | 'POST', path: string, json?: unknown) =>
  a.csrf().then((csrf) => a.request(method, path, { json, headers: { 'x-csrf-token': csrf } }));
const post = async (a: Agent, body: string, where = room) => (await a.post(`/api/rooms/${where}/messages`, { body })).json<{ message: WireMessage }>().message;
const edit = (a: Agent, id: string, body: string, where = room) => api(a, 'PATCH', `/api/rooms/${where}/messages/${id}`, { body });
const remove = (a: Agent, id: string, where = room) => api(a, 'DELETE', `/api/rooms/${where}/messages/${id}`);
const react = (a: Agent, id: string, emoji: string, where = room) => api(a, 'POST', `/api/rooms/${where}/messages/${id}/reactions`, { emoji });
const unreact = (a: Agent, id: string, emoji: string) => api(a, 'DELETE', `/api/rooms/${room}/messages/${id}/reactions/${encodeURIComponent(emoji)}`);

/** A real socket driven by the shared client module, as the page drives it. */
class Reader {
  session: ClientSession;
  private sock?: Primus.Client;
  constructor(
    private readonly t: Test,
    private readonly cookie: string,
  ) {
    this.session = new ClientSession({ write: (f) => this.sock?.write(f) });
  }
  connect(url: string): void {
    const Socket = Primus.createSocket({ transformer: 'engine.io', parser: 'JSON', pathname: '/primus', pingInterval: false });
    const sock = new Socket(url, { reconnect: { min: 100, max: 400, retries: 10 }, transport: { extraHeaders: { cookie: this.cookie } } });
    sock.on('open', () => this.session.connected());
    sock.on('data', (f: OutboundFrame) => this.session.receive(f));
    sock.on('close', () => this.session.disconnected());
    this.sock = sock;
    this.t.teardown(() => sock.end());
  }
  disconnect(): void {
    this.sock?.end();
    this.session.disconnected();
  }
  byId(id: string): WireMessage | undefined {
    return this.session.history.messages.find((m) => m.id === id);
  }
  async until(check: () => boolean, what: string, ms = 8000): Promise<void> {
    for (const end = Date.now() + ms; !check(); ) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await sleep(50);
    }
  }
}
const cookieOf = (a: Agent) => `sid=${a.cookies.get('sid')}`;

t.test('who may edit, delete and react', async (t) => {
  const mine = await post(bob, 'bob writes');
  const hers = await post(olive, 'olive writes');
  t.equal((await edit(bob, mine.id, 'bob edits')).status, 200, 'an author edits their own');
  t.equal((await edit(bob, hers.id, 'bob edits hers')).status, 403, 'not someone else\'s');
  t.equal((await edit(olive, mine.id, 'the owner edits his')).status, 403, 'not even the workspace owner');
  t.equal((await react(bob, hers.id, '👍')).status, 200, 'a member reacts');
  t.equal((await react(gil, hers.id, '👍')).status, 403, 'one not in the channel joins first');
  t.equal((await react(bob, hers.id, 'two words')).status, 400, 'a reaction is one emoji or :code:');
  t.equal((await remove(bob, hers.id)).status, 403, 'a member does not delete others\' messages');
  t.equal((await remove(olive, mine.id)).status, 204, "the room's owner does");
  t.equal((await edit(bob, mine.id, 'again')).status, 403, 'a deleted message is not edited');
  t.equal((await react(bob, mine.id, '👍')).status, 403, 'nor reacted to');
  const gone = (await bob.get(`/api/rooms/${room}/messages?around=${mine.id}&limit=3`)).json<{ messages: WireMessage[] }>().messages.find((m) => m.id === mine.id);
  t.match(gone, { deleted: true, body: '' }, 'a tombstone: its text is gone');
  const s = db.address.servers[0];
  const conn = await r.connect({ host: s.host, port: s.port, user: db.address.user, password: db.address.password, silent: true });
  t.teardown(() => conn.close());
  const row = await r.db(db.dbName).table('messages').get(mine.id).run(conn);
  t.match(row, { body: '', deleted: true }, 'and from the database');
  t.notOk(JSON.stringify(row).includes('bob edits'), 'no trace of its text');

  // The private group: to bob, its messages do not exist.
  const inSecret = await post(olive, 'in the group', secret);
  for (const [what, res] of [
    ['edit', await edit(bob, inSecret.id, 'x', secret)],
    ['delete', await remove(bob, inSecret.id, secret)],
    ['react', await react(bob, inSecret.id, '👍', secret)],
  ] as const) t.equal(res.status, 404, `${what} in a group he is not in: 404`);
  t.equal((await edit(bob, inSecret.id, 'x')).status, 404, 'nor through a room he is in');
  t.equal((await edit(bob, 'no-such-id', 'x')).status, 404);

  // The edit window.
  await api(olive, 'PATCH', '/api/workspace', { editWindowMinutes: 1 });
  const old = crypto.randomUUID();
  await r.db(db.dbName).table('messages').insert({ id: old, room, body: 'long ago', author: { id: ids.get('bob'), name: 'Bob' }, sent: new Date(Date.now() - 120_000) }).run(conn);
  const late = await edit(bob, old, 'too late');
  t.equal(late.status, 403);
  t.match(late.json(), { error: { message: /1 minutes/ } });
  t.equal((await edit(bob, (await post(bob, 'just now')).id, 'in time')).status, 200);
  await api(olive, 'PATCH', '/api/workspace', { editWindowMinutes: 0 });
});

t.test('history pages by index cursor, back to the first message', async (t) => {
  const paged = (await olive.post('/api/rooms', { kind: 'channel', name: 'paged' })).json<{ room: { id: string } }>().room.id;
  const s = db.address.servers[0];
  const conn = await r.connect({ host: s.host, port: s.port, user: db.address.user, password: db.address.password, silent: true });
  t.teardown(() => conn.close());
  const rows = Array.from({ length: 250 }, (_, i) => ({ id: `p${String(i).padStart(4, '0')}`, room: paged, body: `#${i}`, author: { name: 'x' }, sent: new Date(Date.UTC(2026, 0, 1) + i) }));
  await r.db(db.dbName).table('messages').insert(rows).run(conn);
  const seen: string[] = [];
  let page = (await olive.get(`/api/rooms/${paged}/messages?limit=100`)).json<{ messages: WireMessage[]; more: { older: boolean } }>();
  seen.unshift(...page.messages.map((m) => m.id));
  for (let guard = 0; page.more.older && guard < 10; guard++) {
    page = (await olive.get(`/api/rooms/${paged}/messages?limit=100&before=${seen[0]}`)).json();
    seen.unshift(...page.messages.map((m) => m.id));
  }
  t.same(seen, rows.map((x) => x.id), 'every message once, in order, and no more beyond the first');
  const around = (await olive.get(`/api/rooms/${paged}/messages?around=p0100&limit=10`)).json<{ messages: WireMessage[] }>().messages.map((m) => m.id);
  t.same(around, ['p0095', 'p0096', 'p0097', 'p0098', 'p0099', 'p0100', 'p0101', 'p0102', 'p0103', 'p0104', 'p0105'], 'a permalink: the message with context on both sides');
  t.equal((await olive.get(`/api/rooms/${paged}/messages?before=p0001&after=p0002`)).status, 400);
  t.equal((await olive.get(`/api/rooms/${room}/messages?around=p0100`)).status, 404, "another room's message is not found here");
});

t.test('live on every process, and exactly right after a reconnect to another', async (t) => {
  const m: WireMessage[] = [];
  for (let i = 1; i <= 5; i++) m.push(await post(olive, `message ${i}`));
  const reader = new Reader(t, cookieOf(bob));
  reader.session.join(room);
  reader.connect(one.url);
  await reader.until(() => m.every((x) => reader.byId(x.id)), 'the history');

  // Live, made through the other process.
  t.equal((await edit(olive, m[0].id, 'message 1, edited')).status, 200);
  t.equal((await react(olive, m[1].id, '👍')).status, 200);
  t.equal((await remove(olive, m[2].id)).status, 204);
  await reader.until(() => reader.byId(m[0].id)?.body === 'message 1, edited' && reader.byId(m[1].id)?.reactions?.['👍']?.length === 1 && reader.byId(m[2].id)?.deleted === true, 'the live changes');
  t.ok(reader.byId(m[0].id)?.edited, 'an edited message says so');
  t.same(reader.byId(m[1].id)?.reactions, { '👍': [ids.get('olive')] });
  t.equal(reader.byId(m[2].id)?.body, '', "a deleted one's text is gone");

  // Away: everything happens.
  reader.disconnect();
  await sleep(200);
  t.equal((await edit(olive, m[3].id, 'message 4, edited while bob was away')).status, 200);
  t.equal((await react(olive, m[0].id, ':tada:')).status, 200);
  t.equal((await unreact(olive, m[1].id, '👍')).status, 200);
  t.equal((await remove(olive, m[4].id)).status, 204);
  const m6 = await post(olive, 'message 6');
  t.equal((await edit(olive, m6.id, 'message 6, edited')).status, 200);
  t.equal((await react(bob, m6.id, '👍')).status, 200);
  // A thread grows on the first message: its count and followers change, its replies stay in it.
  for (let i = 0; i < 2; i++) t.equal((await olive.post(`/api/rooms/${room}/messages`, { body: `reply ${i} @bob`, thread: m[0].id })).status, 201);

  // Back, through the other process; then a fresh client for comparison.
  reader.connect(two.url);
  const fresh = new Reader(t, cookieOf(bob));
  fresh.session.join(room);
  fresh.connect(two.url);
  await fresh.until(() => Boolean(fresh.byId(m6.id)), "the fresh client's history");
  const view = (x: WireMessage) => ({ id: x.id, body: x.body, edited: x.edited, deleted: x.deleted, reactions: x.reactions, updated: x.updated, sent: x.sent, replies: x.replies, lastReply: x.lastReply, followers: x.followers, thread: x.thread, mentions: x.mentions });
  const freshView = () => fresh.session.history.messages.map(view);
  try {
    await reader.until(() => JSON.stringify(reader.session.history.messages.slice(-freshView().length).map(view)) === JSON.stringify(freshView()), 'the same state as a fresh client', 8000);
  } catch {
    // fall through to the comparison, which shows the difference
  }
  const tail = reader.session.history.messages.slice(-freshView().length).map(view);
  t.same(tail, freshView(), 'field by field, the state a fresh client sees');
  t.same(reader.byId(m[1].id)?.reactions, undefined, 'the reaction taken away is gone');
  t.equal(reader.byId(m[4].id)?.deleted, true);
  t.equal(reader.byId(m6.id)?.body, 'message 6, edited');
  t.equal(reader.byId(m[0].id)?.replies, 2, 'the thread count caught up');
  t.notOk(reader.session.history.messages.some((x) => x.thread !== undefined), 'its replies are not in the room');
});
