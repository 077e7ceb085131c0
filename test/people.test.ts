// Roles and the workspace through the real API: the owner/admin/member/guest ladder, the
// rules that keep an owner, disabling and password resets that end sessions, workspace
// settings, invitation links, and what a guest may see of people.
import t from 'tap';
import { Agent } from './fixtures/http.js';
import { startApp, startDb } from './fixtures/chat.js';

const db = await startDb(t);
const app = await startApp(t, db, { LOGIN_RATE_LIMIT_PER_ACCOUNT: '1000', LOGIN_RATE_LIMIT_PER_ADDRESS: '1000', SIGNUP_RATE_LIMIT_PER_ADDRESS: '1000' });

const owner = new Agent(app.url);
await owner.signup({ username: 'olga' });
const idOf = async (a: Agent) => (await a.get('/api/me')).json<{ user: { id: string } }>().user.id;
const patch = async (a: Agent, path: string, json: unknown) => a.request('PATCH', path, { json, headers: { 'x-csrf-token': await a.csrf() } });

t.test('invitations from the API, and workspace settings', async (t) => {
  const made = await owner.post('/api/invites', { maxUses: 3, days: 1 });
  t.equal(made.status, 201);
  const path = made.json<{ invite: { path: string; id: string } }>().invite.path;
  t.match(path, /^\/signup\?invite=[\w-]{20,}$/);
  const invite = decodeURIComponent(path.split('=')[1]);
  for (const name of ['adam', 'mona', 'max']) t.equal((await new Agent(app.url).signup({ username: name, invite })).status, 201, `${name} joins by the link`);
  t.match((await new Agent(app.url).signup({ username: 'fourth', invite })).json(), { error: { code: 'invite_invalid' } }, 'a three-use link works three times');
  const guestLink = await owner.post('/api/invites', { role: 'guest' });
  const g = guestLink.json<{ invite: { path: string; id: string } }>().invite;
  const revoke = await owner.request('DELETE', `/api/invites/${g.id}`, { headers: { 'x-csrf-token': await owner.csrf() } });
  t.equal(revoke.status, 204);
  t.match((await new Agent(app.url).signup({ username: 'late', invite: decodeURIComponent(g.path.split('=')[1]) })).json(), { error: { code: 'invite_invalid' } }, 'a revoked link does not work');
  t.match((await owner.get('/api/workspace')).json(), { workspace: { registration: 'invite' } });
  const ws = await patch(owner, '/api/workspace', { name: 'Acme', registration: 'open' });
  t.match(ws.json(), { workspace: { name: 'Acme', registration: 'open' } });
  t.equal((await new Agent(app.url).signup({ username: 'gus' })).status, 201, 'open: anyone signs up');
});

t.test('the role ladder', async (t) => {
  const adam = new Agent(app.url);
  await adam.login('adam');
  const mona = new Agent(app.url);
  await mona.login('mona');
  const ids = Object.fromEntries(await Promise.all([['olga', owner], ['adam', adam], ['mona', mona]].map(async ([n, a]) => [n as string, await idOf(a as Agent)])));
  t.equal((await patch(mona, `/api/users/${ids.adam}`, { role: 'admin' })).status, 403, 'a member manages nobody');
  t.equal((await patch(owner, `/api/users/${ids.adam}`, { role: 'admin' })).status, 200, 'the owner makes an admin');
  t.equal((await patch(adam, `/api/users/${ids.olga}`, { role: 'member' })).status, 403, 'an admin cannot demote an owner');
  t.equal((await patch(adam, `/api/users/${ids.olga}`, { disabled: true })).status, 403, 'nor disable one');
  t.equal((await patch(adam, `/api/users/${ids.mona}`, { role: 'owner' })).status, 403, 'nor make one');
  t.match((await patch(owner, `/api/users/${ids.olga}`, { role: 'admin' })).json(), { error: { code: 'last_owner' } }, 'the last owner cannot be demoted, not even by themself');
  t.equal((await patch(owner, `/api/users/${ids.mona}`, { role: 'owner' })).status, 200, 'an owner makes another owner');
  t.equal((await patch(owner, `/api/users/${ids.mona}`, { role: 'member' })).status, 200, 'and, not being the last, can demote one');
  t.equal((await patch(adam, `/api/users/${ids.mona}`, { role: 'guest' })).status, 200, 'an admin manages members');
  t.equal((await patch(adam, `/api/users/${ids.mona}`, { role: 'member' })).status, 200);
  t.equal((await patch(owner, `/api/users/${ids.mona}`, { role: 'king' })).status, 400, 'an unknown role is refused');
});

t.test('disabling and password resets end sessions; re-enabling lets back in', async (t) => {
  const adam = new Agent(app.url);
  await adam.login('adam');
  const max = new Agent(app.url);
  await max.login('max');
  const maxId = await idOf(max);
  t.equal((await patch(adam, `/api/users/${maxId}`, { disabled: true })).status, 200);
  t.equal((await max.get('/api/me')).status, 401, 'the disabled user\'s session ended');
  t.equal((await new Agent(app.url).login('max')).status, 401, 'and they cannot log in');
  t.equal((await patch(adam, `/api/users/${maxId}`, { disabled: false })).status, 200);
  t.equal((await max.login('max')).status, 200, 'enabled again');
  const reset = await adam.post(`/api/users/${maxId}/password`, { password: 'set by an admin 123' });
  t.equal(reset.status, 204);
  t.equal((await max.get('/api/me')).status, 401, 'a reset ends the sessions');
  t.equal((await new Agent(app.url).login('max', 'set by an admin 123')).status, 200, 'the new password works');
  const ownerId = await idOf(owner);
  t.equal((await adam.post(`/api/users/${ownerId}/password`, { password: 'taking over 12345' })).status, 403, "an admin cannot reset an owner's password");
});

t.test('who sees whom: guests only the people who share a room with them', async (t) => {
  const link = (await owner.post('/api/invites', { role: 'guest' })).json<{ invite: { path: string } }>().invite.path;
  const guest = new Agent(app.url);
  await guest.signup({ username: 'client', invite: decodeURIComponent(link.split('=')[1]) });
  const names = async (a: Agent) => (await a.get('/api/users')).json<{ users: Array<{ username: string }> }>().users.map((u) => u.username).sort();
  t.same(await names(guest), ['client'], 'a guest in no room sees only themself');
  const room = (await owner.post('/api/rooms', { kind: 'group', name: 'project x' })).json<{ room: { id: string } }>().room;
  await owner.post(`/api/rooms/${room.id}/members`, { userId: await idOf(guest) });
  t.same(await names(guest), ['client', 'olga'], 'then the people in that room');
  t.ok((await names(owner)).length >= 6, 'members see everyone');
  t.notOk('email' in (await guest.get('/api/users')).json<{ users: object[] }>().users[0], 'no e-mail addresses for non-admins');
  t.equal((await guest.post('/api/rooms', { kind: 'channel', name: 'guest made' })).status, 403, 'guests cannot create rooms');
  t.equal((await guest.get('/api/channels')).status, 403, 'nor browse channels');
  const gus = (await new Agent(app.url).get('/api/me')).status;
  t.equal(gus, 401);
  const strangerDm = await guest.post('/api/dms', { userIds: [(await owner.get('/api/users')).json<{ users: Array<{ id: string; username: string }> }>().users.find((u) => u.username === 'gus')!.id] });
  t.equal(strangerDm.status, 404, 'a guest cannot open a DM with someone they share no room with');
  const okDm = await guest.post('/api/dms', { userIds: [await idOf(owner)] });
  t.equal(okDm.status, 201, 'but can with someone they do');
  const again = await owner.post('/api/dms', { userIds: [await idOf(guest)] });
  t.equal(again.json<{ room: { id: string } }>().room.id, okDm.json<{ room: { id: string } }>().room.id, 'one DM per set of people');
});

t.test('default channels: every new account joins them; a private group cannot be one', async (t) => {
  const general = (await owner.post('/api/rooms', { kind: 'channel', name: 'general' })).json<{ room: { id: string } }>().room;
  t.equal((await patch(owner, `/api/rooms/${general.id}`, { isDefault: true })).status, 200);
  const secret = (await owner.post('/api/rooms', { kind: 'group', name: 'secret' })).json<{ room: { id: string } }>().room;
  t.equal((await patch(owner, `/api/rooms/${secret.id}`, { isDefault: true })).status, 400);
  const newbie = new Agent(app.url);
  await newbie.signup({ username: 'newbie' });
  const sidebar = (await newbie.get('/api/rooms')).json<{ rooms: Array<{ name: string }> }>().rooms.map((r) => r.name);
  t.same(sidebar, ['general'], 'a new account is in the default channel, and nothing else');
  t.equal((await owner.post('/api/rooms', { kind: 'channel', name: 'General' })).status, 409, 'channel names are unique whatever their case');
  t.equal((await owner.post('/api/rooms', { kind: 'group', name: 'general' })).status, 201, "a private group's name need not be (it must not tell that a group exists)");
});
