// Threads, mentions and notification levels, over the real API and real sockets on two
// processes: a reply goes to its thread (not the room's history), the thread's start shows
// the reply count and followers live on every process, followers and @named members are
// asked to look (a mention badge apart from the unread count, right in a fresh sidebar and
// after a reconnect), @room is kept to admins in big rooms, and each member's level is
// theirs on every device.
import t from 'tap';
import type { WireMessage, WireRoom } from '../src/chat/wire.js';
import { notifies } from '../src/chat/wire.js';
import { mentionsIn } from '../src/chat/posting.js';
import { Agent } from './fixtures/http.js';
import { clientFor, spawnApp, startDb, type Client, type Frame } from './fixtures/chat.js';

const db = await startDb(t);
const env = { RETHINKDB_URL: db.url, SIGNUP_RATE_LIMIT_PER_ADDRESS: '1000', LOGIN_RATE_LIMIT_PER_ADDRESS: '1000' };
const [one, two] = await Promise.all([spawnApp(t, { ...env, DYNO: 'web.1' }), spawnApp(t, { ...env, DYNO: 'web.2' })]);

const olive = new Agent(one.url);
await olive.signup({ username: 'olive' });
const api = (a: Agent, method: 'PATCH' | 'DELETE' | 'POST' | 'PUT', path: string, json?: unknown) => a.csrf().then((csrf) => a.request(method, path, { json, headers: { 'x-csrf-token': csrf } }));
await api(olive, 'PATCH', '/api/workspace', { registration: 'open' });
const bob = new Agent(two.url);
await bob.signup({ username: 'bob' });
const gil = new Agent(one.url);
await gil.signup({ username: 'gil' });
const idOf = async (a: Agent) => (await a.get('/api/me')).json<{ user: { id: string } }>().user.id;
const [oliveId, bobId, gilId] = [await idOf(olive), await idOf(bob), await idOf(gil)];
const room = (await olive.post('/api/rooms', { kind: 'channel', name: 'general' })).json<{ room: { id: string } }>().room.id;
await bob.post(`/api/rooms/${room}/join`);
const other = (await olive.post('/api/rooms', { kind: 'channel', name: 'other' })).json<{ room: { id: string } }>().room.id;

const post = async (a: Agent, body: string, extra: { thread?: string; alsoRoom?: boolean } = {}, where = room) => a.post(`/api/rooms/${where}/messages`, { body, ...extra });
const message = async (a: Agent, body: string, extra: { thread?: string; alsoRoom?: boolean } = {}) => {
  const res = await post(a, body, extra);
  if (res.status !== 201) throw new Error(`post: ${res.status} ${JSON.stringify(res.json())}`);
  return res.json<{ message: WireMessage }>().message;
};
const history = async (a: Agent) => (await a.get(`/api/rooms/${room}/messages?limit=100`)).json<{ messages: WireMessage[] }>().messages;
const threadOf = async (a: Agent, id: string) => (await a.get(`/api/rooms/${room}/messages/${id}/thread`)).json<{ message: WireMessage; replies: WireMessage[] }>();

/** A signed-in socket watching every room of its user, as the team page opens it. */
async function watcher(url: string, a: Agent): Promise<{ c: Client; rooms: WireRoom[] }> {
  const c = clientFor(t, url, { transport: { extraHeaders: { cookie: `sid=${a.cookies.get('sid')}` } } });
  await c.hello();
  c.write({ type: 'watch' });
  const f = await c.take((f) => f.type === 'rooms', 'the rooms');
  return { c, rooms: f.rooms as WireRoom[] };
}
const roomIn = (rooms: WireRoom[], id: string) => rooms.find((r) => r.id === id);
const changedTo = (c: Client, id: string, ok: (m: WireMessage) => boolean, what: string) =>
  c.take((f: Frame) => f.type === 'messageChanged' && (f.message as WireMessage).id === id && ok(f.message as WireMessage), what);

t.test('a reply goes to its thread; its start counts replies live on every process', async (t) => {
  const seen = await watcher(two.url, bob);
  const start = await message(bob, 'shall we ship on friday?');
  const reply = await message(olive, 'only with a rollback plan', { thread: start.id });
  t.equal(reply.thread, start.id);
  t.same(reply.mentions, [bobId], "the thread's author is asked to look");
  const live = await seen.c.take((f) => f.type === 'deliverMessage' && (f.message as WireMessage).id === reply.id, 'the reply, live on the other process');
  t.equal((live.message as WireMessage).thread, start.id);
  const counted = await changedTo(seen.c, start.id, (m) => m.replies === 1, 'the count, live');
  t.match(counted.message, { replies: 1, lastReply: reply.sent });
  t.same(new Set((counted.message as WireMessage).followers), new Set([bobId, oliveId]), 'its author and the replier follow it');

  t.notOk((await history(olive)).some((m) => m.id === reply.id), "not in the room's history");
  const both = await message(olive, 'and in the room too', { thread: start.id, alsoRoom: true });
  t.ok((await history(bob)).some((m) => m.id === both.id), 'also sent to the room: in its history');
  const thread = await threadOf(bob, start.id);
  t.same(thread.replies.map((m) => m.id), [reply.id, both.id], 'the thread holds both, in order');
  t.equal(thread.message.replies, 2);

  const toReply = await message(bob, 'a reply to the reply', { thread: reply.id });
  t.equal(toReply.thread, start.id, 'a reply to a reply goes to the same thread');
  t.equal((await post(olive, 'wrong room', { thread: start.id }, other)).status, 404, 'a thread of another room is not found');
  t.equal((await post(gil, 'not in it', { thread: start.id })).status, 403, 'one not in the room does not reply');
  t.equal((await post(bob, 'no such', { thread: crypto.randomUUID() })).status, 404);

  // A reply over the socket, from the other process, resent with the same id: stored once.
  const olives = await watcher(one.url, olive);
  const id = crypto.randomUUID();
  for (let i = 0; i < 2; i++) olives.c.write({ type: 'createMessage', message: { id, room, body: 'over the socket', thread: start.id } });
  await olives.c.take((f) => f.type === 'ack' && f.clientId === id, 'ack');
  await olives.c.take((f) => f.type === 'ack' && f.clientId === id, 'the second ack');
  t.equal((await threadOf(bob, start.id)).replies.filter((m) => m.id === id).length, 1, 'once');
  await changedTo(seen.c, start.id, (m) => m.replies === 4, 'four replies');

  // Following: gil joins and follows; unfollowing takes one out.
  await gil.post(`/api/rooms/${room}/join`);
  t.equal((await api(gil, 'POST', `/api/rooms/${room}/messages/${start.id}/follow`)).status, 200);
  const toGil = await message(bob, 'gil, have a look', { thread: start.id });
  t.ok(toGil.mentions?.includes(gilId), 'a follower is asked to look');
  t.notOk(toGil.mentions?.includes(bobId), 'the replier is not');
  t.equal((await api(gil, 'DELETE', `/api/rooms/${room}/messages/${start.id}/follow`)).status, 200);
  t.notOk((await message(bob, 'after gil left it', { thread: start.id })).mentions?.includes(gilId));
  t.equal((await api(gil, 'POST', `/api/rooms/${other}/messages/${start.id}/follow`)).status, 404, 'through another room: not found');
});

t.test('mentions: a badge apart from unread, in a fresh sidebar and live', async (t) => {
  // Bob reads the room up to now, then is named twice, and the room gets a plain message.
  const last = await message(olive, 'a line before');
  const b = await watcher(one.url, bob);
  b.c.write({ type: 'read', room, id: last.id });
  await b.c.take((f) => f.type === 'read' && f.room === room && f.id === last.id, 'his read position');
  const named = await message(olive, 'hey @bob, look');
  t.same(named.mentions, [bobId]);
  t.notOk((await message(olive, '@nobody-here is not a member, @gil is not in the room either? he is')).mentions?.includes(bobId));
  await message(olive, 'plain');
  const fresh = await watcher(two.url, bob);
  const r = roomIn(fresh.rooms, room)!;
  t.equal(r.unread, 3, 'three unread');
  t.equal(r.mentions, 1, 'one of them names him');
  // Live: a reply in a thread he follows and an @room count; reading resets both.
  const start = await message(bob, 'my thread');
  await message(olive, 'answer', { thread: start.id });
  const again = await watcher(two.url, bob);
  t.equal(roomIn(again.rooms, room)!.mentions, 1, 'a reply to his thread, after his own message (his read position)');
  t.equal(roomIn(again.rooms, room)!.unread, 0, 'and not an unread message of the room');
  await message(olive, 'second answer', { thread: start.id });
  await message(olive, '@room heads up');
  const after = await watcher(one.url, bob);
  const a = roomIn(after.rooms, room)!;
  t.equal(a.mentions, 3, 'two replies in a thread he follows and @room');
  t.equal(a.unread, 1, 'the reply in its thread is not an unread message of the room');
  const newest = (await history(bob)).at(-1)!;
  after.c.write({ type: 'read', room, id: newest.id });
  const read = await again.c.take((f) => f.type === 'read' && f.room === room && f.id === newest.id, 'read, on his other socket');
  t.match(read, { unread: 0, mentions: 0 });
});

t.test('@room in a big room is for admins and the room owner', async (t) => {
  await api(olive, 'PATCH', '/api/workspace', { bigRoomMembers: 2 });
  t.teardown(() => api(olive, 'PATCH', '/api/workspace', { bigRoomMembers: 50 }).then(() => undefined));
  const refused = await post(bob, '@room everyone!');
  t.equal(refused.status, 403);
  t.match(refused.json(), { error: { message: /more than 2 members/ } });
  await gil.post(`/api/rooms/${room}/join`);
  const b = await watcher(two.url, bob);
  const id = crypto.randomUUID();
  b.c.write({ type: 'createMessage', message: { id, room, body: '@channel over the socket' } });
  t.match(await b.c.take((f) => f.type === 'error' && f.clientId === id, 'refused'), { code: 'forbidden' });
  t.equal((await post(bob, 'no room mention here')).status, 201);
  t.equal((await message(olive, '@room from the owner')).mentionsRoom, true);
  // A channel of 3 members, above 2, is big: a member who chose nothing gets mentions only.
  t.equal(roomIn(b.rooms, room)!.level, 'mentions');
});

t.test('levels: chosen per room, the same on every device', async (t) => {
  const dm = (await bob.post('/api/dms', { userIds: [oliveId] })).json<{ room: { id: string } }>().room.id;
  const first = await watcher(one.url, bob);
  t.match(roomIn(first.rooms, dm), { level: 'all', levelChosen: false }, 'a DM: every message');
  t.match(roomIn(first.rooms, room), { level: 'all', levelChosen: false }, 'a small channel: every message');
  const second = await watcher(two.url, bob);
  t.equal((await api(bob, 'PUT', `/api/rooms/${room}/level`, { level: 'none' })).status, 200);
  const updated = await second.c.take((f) => f.type === 'roomUpdated' && (f.room as WireRoom).id === room, 'on his other device');
  t.match(updated.room, { level: 'none', levelChosen: true });
  t.match(roomIn((await watcher(one.url, bob)).rooms, room), { level: 'none', levelChosen: true }, 'and after a reload');
  t.equal((await api(bob, 'PUT', `/api/rooms/${room}/level`, { level: 'loud' })).status, 400);
  t.equal((await api(gil, 'PUT', `/api/rooms/${dm}/level`, { level: 'none' })).status, 404, "a DM he is not in does not exist");
  t.equal((await api(bob, 'PUT', `/api/rooms/${room}/level`, { level: null })).status, 200, 'back to the default');
  await second.c.take((f) => f.type === 'roomUpdated' && (f.room as WireRoom).id === room && (f.room as WireRoom).levelChosen === false, 'the default again');
});

t.test('after a reconnect: thread counts and mention badges as a fresh client has them', async (t) => {
  const start = await message(olive, 'a thread while bob is away');
  const leaving = (await olive.post('/api/rooms', { kind: 'group', name: 'leaving' })).json<{ room: { id: string } }>().room.id;
  await api(olive, 'POST', `/api/rooms/${leaving}/members`, { userId: bobId });
  const away = await watcher(two.url, bob);
  t.ok(roomIn(away.rooms, leaving), 'in the group before');
  const held = (await history(bob)).find((m) => m.id === start.id)!;
  away.c.close();
  for (let i = 0; i < 3; i++) await message(olive, `reply ${i} @bob`, { thread: start.id });
  await message(gil, 'and @bob in the room');
  // Membership changes meanwhile: out of one group, into another.
  t.equal((await api(olive, 'DELETE', `/api/rooms/${leaving}/members/${bobId}`)).status, 204);
  const joining = (await olive.post('/api/rooms', { kind: 'group', name: 'joining' })).json<{ room: { id: string } }>().room.id;
  await api(olive, 'POST', `/api/rooms/${joining}/members`, { userId: bobId });
  // He comes back to the other process, resuming from what he held.
  const back = clientFor(t, one.url, { transport: { extraHeaders: { cookie: `sid=${bob.cookies.get('sid')}` } } });
  await back.hello();
  back.write({ type: 'watch', rooms: { [room]: { since: held.id, changedSince: held.sent } } });
  const snapshot = (await back.take((f) => f.type === 'rooms', 'rooms')).rooms as WireRoom[];
  const changed = await changedTo(back, start.id, (m) => m.replies === 3, 'the thread count caught up');
  const fresh = await threadOf(bob, start.id);
  t.same(changed.message, fresh.message, "the thread's start, field by field as a fresh read has it");
  const freshRooms = (await watcher(two.url, bob)).rooms;
  t.same(roomIn(snapshot, room), roomIn(freshRooms, room), 'the sidebar entry, field by field as a fresh client has it');
  t.ok(roomIn(snapshot, room)!.mentions >= 4, 'three replies naming him and one message');
  const byId = (list: WireRoom[]) => [...list].sort((a, b) => a.id.localeCompare(b.id));
  t.same(byId(snapshot), byId(freshRooms), 'every room of the sidebar as a fresh client has it');
  t.notOk(roomIn(snapshot, leaving), 'not the group he was taken out of');
  t.ok(roomIn(snapshot, joining), 'the group he was put in');
});

t.test('the @names of a message', async (t) => {
  t.same(mentionsIn('hi @Alice and @bob.'), { names: ['alice', 'bob'], room: false });
  t.same(mentionsIn('@room deploy at 5, @here'), { names: [], room: true });
  t.same(mentionsIn('mail alice@example.com, `@bob` in code, ```\n@carol\n```'), { names: [], room: false }, 'not an address, not in code');
  t.same(mentionsIn('@dave @dave @DAVE'), { names: ['dave'], room: false }, 'each once');
});

t.test('what a level notifies of', async (t) => {
  const me = 'u1';
  const plain: Pick<WireMessage, 'author'> = { author: { id: 'u2', name: 'B' } };
  t.ok(notifies('all', plain, me));
  t.notOk(notifies('mentions', plain, me));
  t.ok(notifies('mentions', { ...plain, mentions: [me] }, me));
  t.ok(notifies('mentions', { ...plain, mentionsRoom: true }, me));
  t.notOk(notifies('none', { ...plain, mentions: [me] }, me), 'muted: nothing');
  t.notOk(notifies('all', { author: { id: me, name: 'A' }, mentions: [me] }, me), 'never one\'s own');
  t.notOk(notifies('all', { ...plain, thread: 'x' }, me), 'a reply in a thread one does not follow');
  t.ok(notifies('all', { ...plain, thread: 'x', alsoRoom: true }, me), 'unless it is also in the room');
});
