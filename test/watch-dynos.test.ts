// A socket follows every room its user is in, across two app processes: added to a room on
// one process, the socket on the other hears of it at once and gets its messages; read
// positions are stored and move on every device; removed (or the room deleted), the socket is
// told, and no message posted afterwards reaches it.
import t, { type Test } from 'tap';
import { Agent } from './fixtures/http.js';
import { clientFor, sleep, spawnApp, startDb, type Client } from './fixtures/chat.js';

const db = await startDb(t);
const env = { RETHINKDB_URL: db.url, SIGNUP_RATE_LIMIT_PER_ADDRESS: '1000' };
const [one, two] = await Promise.all([spawnApp(t, { ...env, DYNO: 'web.1' }), spawnApp(t, { ...env, DYNO: 'web.2' })]);

const owner = new Agent(one.url);
await owner.signup({ username: 'olive' });
await owner.request('PATCH', '/api/workspace', { json: { registration: 'open' }, headers: { 'x-csrf-token': await owner.csrf() } });
const bob = new Agent(two.url);
await bob.signup({ username: 'bob' });
const bobId = (await bob.get('/api/me')).json<{ user: { id: string } }>().user.id;

async function watcher(t: Test, url: string): Promise<Client> {
  const c = clientFor(t, url, { transport: { extraHeaders: { cookie: `sid=${bob.cookies.get('sid')}` } } });
  await c.hello();
  c.write({ type: 'watch' });
  await c.take((f) => f.type === 'rooms', 'the rooms snapshot');
  return c;
}

t.test('added on one process, followed on the other; read positions on every device; removed, and nothing after', async (t) => {
  const phone = await watcher(t, two.url);
  const group = (await owner.post('/api/rooms', { kind: 'group', name: 'plans' })).json<{ room: { id: string } }>().room;
  t.equal((await owner.post(`/api/rooms/${group.id}/members`, { userId: bobId })).status, 204);
  const added = await phone.take((f) => f.type === 'roomAdded', 'roomAdded on the other process', 3000);
  t.match(added.room, { id: group.id, kind: 'group', name: 'plans' }, 'the new room, at once');
  const posted = (await owner.post(`/api/rooms/${group.id}/messages`, { body: 'welcome, bob' })).json<{ message: { id: string } }>().message;
  await phone.until(() => phone.received.some((m) => m.id === posted.id), 'the message through the new room', 3000);

  const laptop = clientFor(t, one.url, { transport: { extraHeaders: { cookie: `sid=${bob.cookies.get('sid')}` } } });
  await laptop.hello();
  laptop.write({ type: 'watch' });
  const rooms = await laptop.take((f) => f.type === 'rooms', 'the snapshot on a second device');
  const plans = (rooms.rooms as Array<{ id: string; unread: number }>).find((r) => r.id === group.id);
  t.equal(plans?.unread, 2, 'a second device sees 2 unread (the system message and the post), counted from the stored position');
  phone.write({ type: 'read', room: group.id, id: posted.id });
  const readHere = await phone.take((f) => f.type === 'read' && f.room === group.id, 'read on this device', 3000);
  const readThere = await laptop.take((f) => f.type === 'read' && f.room === group.id, 'read on the other device', 3000);
  t.equal(readHere.unread, 0);
  t.equal(readThere.unread, 0, 'the read position moved on the other process too');

  // Removed on process one: the socket on process two is told, and then hears nothing more.
  t.equal((await owner.request('DELETE', `/api/rooms/${group.id}/members/${bobId}`, { headers: { 'x-csrf-token': await owner.csrf() } })).status, 204);
  await phone.take((f) => f.type === 'roomRemoved' && f.room === group.id, 'roomRemoved on the other process', 3000);
  await laptop.take((f) => f.type === 'roomRemoved' && f.room === group.id, 'roomRemoved on this process', 3000);
  const after = (await owner.post(`/api/rooms/${group.id}/messages`, { body: 'said after bob left' })).json<{ message: { id: string } }>().message;
  await sleep(800);
  for (const [name, c] of [['phone', phone], ['laptop', laptop]] as const) {
    t.notOk(c.received.some((m) => m.id === after.id), `${name}: no message posted after the removal`);
    t.notOk(c.received.some((m) => m.event?.type === 'member_removed'), `${name}: not even the notice of the removal (roomRemoved said it)`);
  }
  phone.write({ type: 'joinRoom', room: group.id });
  t.match(await phone.take((f) => f.type === 'error' && f.room === group.id), { code: 'not_found' }, 'and the room is gone for bob');
});

t.test('a deleted room is removed from every watcher', async (t) => {
  const phone = await watcher(t, two.url);
  const room = (await owner.post('/api/rooms', { kind: 'channel', name: 'short-lived' })).json<{ room: { id: string } }>().room;
  await owner.post(`/api/rooms/${room.id}/members`, { userId: bobId });
  await phone.take((f) => f.type === 'roomAdded' && (f.room as { id: string }).id === room.id, 'roomAdded', 3000);
  t.equal((await owner.request('DELETE', `/api/rooms/${room.id}`, { headers: { 'x-csrf-token': await owner.csrf() } })).status, 204);
  await phone.take((f) => f.type === 'roomRemoved' && f.room === room.id, 'roomRemoved after the delete', 3000);
  t.pass('told');
});

t.test('watching needs an account', async (t) => {
  const anon = clientFor(t, two.url);
  await anon.hello();
  anon.write({ type: 'watch' });
  t.match(await anon.take((f) => f.type === 'error'), { code: 'unauthenticated' });
});
