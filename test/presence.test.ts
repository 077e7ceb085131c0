// Presence and typing across two processes: online, away and offline as the other process
// sees them; a process killed outright takes its users offline within seconds (its
// heartbeat stops); typing signals reach the room's members on the other process, throttled,
// and nobody outside the room; a guest learns nothing of people who share no room with them.
import t from 'tap';
import { Agent } from './fixtures/http.js';
import { clientFor, sleep, spawnApp, startDb, type Client, type Frame } from './fixtures/chat.js';

const db = await startDb(t);
// Beats every half second: a process is gone after three missed beats.
const env = { RETHINKDB_URL: db.url, SIGNUP_RATE_LIMIT_PER_ADDRESS: '1000', LOGIN_RATE_LIMIT_PER_ADDRESS: '1000', HEARTBEAT_SECONDS: '0.5' };
const [one, two] = await Promise.all([spawnApp(t, { ...env, DYNO: 'web.1' }), spawnApp(t, { ...env, DYNO: 'web.2' })]);

const api = (a: Agent, method: 'PATCH' | 'POST', path: string, json?: unknown) => a.csrf().then((csrf) => a.request(method, path, { json, headers: { 'x-csrf-token': csrf } }));
const olive = new Agent(one.url);
await olive.signup({ username: 'olive' });
await api(olive, 'PATCH', '/api/workspace', { registration: 'open' });
const bob = new Agent(two.url);
await bob.signup({ username: 'bob' });
const gil = new Agent(two.url);
await gil.signup({ username: 'gil' });
const idOf = async (a: Agent) => (await a.get('/api/me')).json<{ user: { id: string } }>().user.id;
const [oliveId, bobId, gilId] = [await idOf(olive), await idOf(bob), await idOf(gil)];
const group = (await olive.post('/api/rooms', { kind: 'group', name: 'crew' })).json<{ room: { id: string } }>().room.id;
await api(olive, 'POST', `/api/rooms/${group}/members`, { userId: bobId });

function socketOf(url: string, a: Agent): Client {
  return clientFor(t, url, { transport: { extraHeaders: { cookie: `sid=${a.cookies.get('sid')}` } } });
}
async function watching(url: string, a: Agent): Promise<Client> {
  const c = socketOf(url, a);
  await c.hello();
  c.write({ type: 'watch' });
  await c.take((f) => f.type === 'rooms', 'rooms');
  return c;
}
const stateIn = (c: Client, id: string, state: string, what: string, ms = 8000) =>
  c.take((f: Frame) => f.type === 'presence' && (f.users as Record<string, string>)[id] === state, what, ms);

t.test('online, away, offline, as the other process sees it', async (t) => {
  const b = await watching(two.url, bob);
  b.write({ type: 'presence', users: [oliveId, 'no-such-user'] });
  const first = await b.take((f) => f.type === 'presence', 'the first answer');
  t.same(first.users, { [oliveId]: 'offline', 'no-such-user': 'offline' }, 'nobody online yet');
  const o = await watching(one.url, olive);
  await stateIn(b, oliveId, 'online', 'olive online, from the other process');
  o.write({ type: 'away', away: true });
  await stateIn(b, oliveId, 'away', 'olive away');
  const o2 = await watching(one.url, olive);
  await stateIn(b, oliveId, 'online', 'a second tab in use: online');
  o2.close();
  await stateIn(b, oliveId, 'away', 'the tab in use closed: away again');
  o.write({ type: 'away', away: false });
  await stateIn(b, oliveId, 'online', 'back');
  o.close();
  await stateIn(b, oliveId, 'offline', 'her last socket closed: offline');
});

t.test('typing reaches the room on the other process, throttled, and nobody else', async (t) => {
  const b = await watching(two.url, bob);
  const g = await watching(two.url, gil);
  const o = await watching(one.url, olive);
  o.write({ type: 'typing', room: group });
  const f = await b.take((f) => f.type === 'typing', 'olive typing');
  t.match(f, { room: group, userId: oliveId, name: 'olive' });
  o.write({ type: 'typing', room: group });
  o.write({ type: 'typing', room: group });
  b.write({ type: 'typing', room: group });
  await o.take((f) => f.type === 'typing' && f.userId === bobId, 'bob typing, to olive');
  await sleep(500);
  t.equal(b.inbox.filter((f) => f.type === 'typing').length, 0, 'her next two within two seconds are not sent');
  t.equal(g.inbox.filter((f) => f.type === 'typing').length, 0, 'gil, not in the group, hears nothing');
  t.equal(o.inbox.filter((f) => f.type === 'typing' && f.userId === oliveId).length, 0, 'nobody hears their own');
  g.write({ type: 'typing', room: group });
  await sleep(700);
  t.equal(b.inbox.filter((f) => f.type === 'typing' && f.userId === gilId).length, 0, 'one not in the room cannot type in it');
});

t.test('a guest learns nothing of people who share no room with them', async (t) => {
  const path = (await api(olive, 'POST', '/api/invites', { role: 'guest', maxUses: 1, days: 1 })).json<{ invite: { path: string } }>().invite.path;
  const invite = new URL(path, one.url).searchParams.get('invite') ?? '';
  const guest = new Agent(two.url);
  t.equal((await guest.signup({ username: 'guest', invite })).status, 201);
  const guestId = await idOf(guest);
  await api(olive, 'POST', `/api/rooms/${group}/members`, { userId: guestId });
  const c = await watching(two.url, guest);
  c.write({ type: 'presence', users: [oliveId, gilId] });
  const f = await c.take((f) => f.type === 'presence', 'the answer');
  t.same(Object.keys(f.users as object), [oliveId], 'olive shares the group; gil is left out');
});

t.test('a process killed outright takes its users offline within seconds', async (t) => {
  const b = await watching(two.url, bob);
  await watching(one.url, olive);
  await sleep(300);
  b.write({ type: 'presence', users: [oliveId] });
  const first = await b.take((f) => f.type === 'presence', 'the first answer');
  if ((first.users as Record<string, string>)[oliveId] !== 'online') await stateIn(b, oliveId, 'online', 'olive online');
  const killed = Date.now();
  await one.kill();
  await stateIn(b, oliveId, 'offline', 'olive offline after her process died', 10_000);
  t.comment(`offline ${Date.now() - killed} ms after the kill (three beats of 0.5 s, a check every 2 s; waited up to 10 s)`);
});
