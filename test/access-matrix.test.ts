// The permission matrix: every action on a room, by every kind of viewer, for every kind of
// room, through the real HTTP API and the real socket, compared with one table of expected
// outcomes kept here. Each cell gets a fresh room (made in the database with the standard
// membership), so that what one cell does (leave, delete, archive) cannot change another.
//
// Viewers: roomOwner (made the room; a plain member of the workspace), owner and admin of
// the workspace (in the room), adminOut (an admin not in it), member (in it), guest (in it),
// outsider (a member not in it), guestOut (a guest not in it), disabled (was in it), anon.
import t from 'tap';
import { r, type Connection } from 'rethinkdb-ts';
import { Agent } from './fixtures/http.js';
import { Client, startApp, startDb } from './fixtures/chat.js';

const db = await startDb(t);
const app = await startApp(t, db, { LOGIN_RATE_LIMIT_PER_ACCOUNT: '1000', LOGIN_RATE_LIMIT_PER_ADDRESS: '1000', SIGNUP_RATE_LIMIT_PER_ADDRESS: '1000' });
const s = db.address.servers[0];
const conn: Connection = await r.connect({ host: s.host, port: s.port, user: db.address.user, password: db.address.password, silent: true });
t.teardown(() => conn.close());
const table = (name: string) => r.db(db.dbName).table(name);

const VIEWERS = ['roomOwner', 'owner', 'admin', 'adminOut', 'member', 'guest', 'outsider', 'guestOut', 'disabled', 'anon'] as const;
type ViewerName = (typeof VIEWERS)[number];
const ACTIONS = ['list', 'browse', 'see', 'read', 'post', 'join', 'leave', 'rename', 'invite', 'remove', 'archive', 'delete', 'sockRead', 'sockPost'] as const;
type ActionName = (typeof ACTIONS)[number];
const KINDS = ['channel', 'group', 'dm', 'open'] as const;
type Kind = (typeof KINDS)[number];

// ok: allowed; absent: the list answers, without the room; 403: forbidden; 404: not found
// (the same as a room that does not exist); 401: not signed in.
//            list    browse  see  read post join leave rename invite remove archive delete sockRead sockPost
const EXPECTED: Record<Kind, Record<ViewerName, string>> = {
  channel: {
    roomOwner: 'ok      ok      ok   ok   ok   ok   ok    ok     ok     ok     ok      ok     ok       ok',
    owner:     'ok      ok      ok   ok   ok   ok   ok    ok     ok     ok     ok      ok     ok       ok',
    admin:     'ok      ok      ok   ok   ok   ok   ok    ok     ok     ok     ok      ok     ok       ok',
    adminOut:  'absent  ok      ok   ok   403  ok   403   ok     ok     ok     ok      ok     ok       403',
    member:    'ok      ok      ok   ok   ok   ok   ok    403    403    403    403     403    ok       ok',
    guest:     'ok      403     ok   ok   ok   ok   ok    403    403    403    403     403    ok       ok',
    outsider:  'absent  ok      ok   ok   403  ok   403   403    403    403    403     403    ok       403',
    guestOut:  'absent  403     404  404  404  404  404   404    404    404    404     404    404      404',
    disabled:  '401     401     401  401  401  401  401   401    401    401    401     401    404      404',
    anon:      '401     401     401  401  401  401  401   401    401    401    401     401    404      404',
  },
  group: {
    roomOwner: 'ok      absent  ok   ok   ok   ok   ok    ok     ok     ok     ok      ok     ok       ok',
    owner:     'ok      absent  ok   ok   ok   ok   ok    ok     ok     ok     ok      ok     ok       ok',
    admin:     'ok      absent  ok   ok   ok   ok   ok    ok     ok     ok     ok      ok     ok       ok',
    adminOut:  'absent  absent  404  404  404  404  404   404    404    404    404     404    404      404',
    member:    'ok      absent  ok   ok   ok   ok   ok    403    403    403    403     403    ok       ok',
    guest:     'ok      403     ok   ok   ok   ok   ok    403    403    403    403     403    ok       ok',
    outsider:  'absent  absent  404  404  404  404  404   404    404    404    404     404    404      404',
    guestOut:  'absent  403     404  404  404  404  404   404    404    404    404     404    404      404',
    disabled:  '401     401     401  401  401  401  401   401    401    401    401     401    404      404',
    anon:      '401     401     401  401  401  401  401   401    401    401    401     401    404      404',
  },
  dm: {
    roomOwner: 'ok      absent  ok   ok   ok   ok   403   403    403    403    403     403    ok       ok',
    owner:     'ok      absent  ok   ok   ok   ok   403   403    403    403    403     403    ok       ok',
    admin:     'ok      absent  ok   ok   ok   ok   403   403    403    403    403     403    ok       ok',
    adminOut:  'absent  absent  404  404  404  404  404   404    404    404    404     404    404      404',
    member:    'ok      absent  ok   ok   ok   ok   403   403    403    403    403     403    ok       ok',
    guest:     'ok      403     ok   ok   ok   ok   403   403    403    403    403     403    ok       ok',
    outsider:  'absent  absent  404  404  404  404  404   404    404    404    404     404    404      404',
    guestOut:  'absent  403     404  404  404  404  404   404    404    404    404     404    404      404',
    disabled:  '401     401     401  401  401  401  401   401    401    401    401     401    404      404',
    anon:      '401     401     401  401  401  401  401   401    401    401    401     401    404      404',
  },
  // The article's open rooms (ANONYMOUS_ROOMS=1): by name, over the socket, for anyone.
  open: {
    roomOwner: 'absent  absent  404  404  404  404  404   404    404    404    404     404    ok       ok',
    owner:     'absent  absent  404  404  404  404  404   404    404    404    404     404    ok       ok',
    admin:     'absent  absent  404  404  404  404  404   404    404    404    404     404    ok       ok',
    adminOut:  'absent  absent  404  404  404  404  404   404    404    404    404     404    ok       ok',
    member:    'absent  absent  404  404  404  404  404   404    404    404    404     404    ok       ok',
    guest:     'absent  403     404  404  404  404  404   404    404    404    404     404    ok       ok',
    outsider:  'absent  absent  404  404  404  404  404   404    404    404    404     404    ok       ok',
    guestOut:  'absent  403     404  404  404  404  404   404    404    404    404     404    ok       ok',
    disabled:  '401     401     401  401  401  401  401   401    401    401    401     401    ok       ok',
    anon:      '401     401     401  401  401  401  401   401    401    401    401     401    ok       ok',
  },
};

// ---- the people ------------------------------------------------------------------------

const agents = new Map<string, Agent>();
const ids = new Map<string, string>();
async function person(name: string, role: 'owner' | 'admin' | 'member' | 'guest'): Promise<void> {
  const a = new Agent(app.url);
  if (role === 'owner') {
    const res = await a.signup({ username: name });
    if (res.json<{ user: { role: string } }>().user.role !== 'owner') throw new Error('the first sign-up should own the workspace');
  } else {
    await table('workspace').insert({ id: 'settings', name: 'Matrix', registration: 'open' }, { conflict: 'update' }).run(conn);
    await a.signup({ username: name });
    await table('users').filter({ username: name }).update({ role }).run(conn);
  }
  const me = await a.get('/api/me');
  ids.set(name, me.json<{ user: { id: string } }>().user.id);
  agents.set(name, a);
}
await person('owner', 'owner');
for (const [name, role] of [['roomOwner', 'member'], ['admin', 'admin'], ['adminOut', 'admin'], ['member', 'member'], ['guest', 'guest'], ['outsider', 'member'], ['guestOut', 'guest'], ['disabled', 'member'], ['extra', 'member'], ['invitee', 'member']] as const) await person(name, role);
agents.set('anon', new Agent(app.url));
// Disabled: the account is switched off and its sessions end (as the admin tool does).
await table('users').get(ids.get('disabled')!).update({ disabled: true }).run(conn);
await table('sessions').getAll(ids.get('disabled')!, { index: 'userId' }).delete().run(conn);

const IN_ROOM = ['roomOwner', 'owner', 'admin', 'member', 'guest', 'disabled', 'extra'];

async function freshRoom(kind: Kind, n: number): Promise<string> {
  if (kind === 'open') return `matrix open ${n}`;
  const id = crypto.randomUUID();
  const name = `${kind}-${n}`;
  await table('rooms').insert({ id, kind, name: kind === 'dm' ? '' : name, topic: '', ownerId: kind === 'dm' ? null : ids.get('roomOwner'), createdAt: new Date(), archived: false, announcement: false, isDefault: false }).run(conn);
  if (kind === 'channel') await table('claims').insert({ id: `channel:${name}`, roomId: id }).run(conn);
  await table('members').insert(IN_ROOM.map((who) => ({ id: `${id}/${ids.get(who)}`, roomId: id, userId: ids.get(who)!, joinedAt: new Date() }))).run(conn);
  return id;
}

const sockets = new Map<string, Client>();
for (const v of VIEWERS) {
  const sid = agents.get(v)!.cookies.get('sid');
  const c = new Client(app.url, sid ? { transport: { extraHeaders: { cookie: `sid=${sid}` } } } : {});
  t.teardown(() => c.close());
  await c.hello();
  sockets.set(v, c);
}

const code = (status: number, okStatuses = [200, 201, 204]) => (okStatuses.includes(status) ? 'ok' : String(status));

async function perform(kind: Kind, viewer: ViewerName, action: ActionName, roomId: string): Promise<string> {
  const a = agents.get(viewer)!;
  const room = encodeURIComponent(roomId);
  switch (action) {
    case 'list': {
      const res = await a.get('/api/rooms');
      if (res.status !== 200) return String(res.status);
      return res.json<{ rooms: Array<{ id: string }> }>().rooms.some((x) => x.id === roomId) ? 'ok' : 'absent';
    }
    case 'browse': {
      const res = await a.get('/api/channels');
      if (res.status !== 200) return String(res.status);
      return res.json<{ channels: Array<{ id: string }> }>().channels.some((x) => x.id === roomId) ? 'ok' : 'absent';
    }
    case 'see':
      return code((await a.get(`/api/rooms/${room}`)).status);
    case 'read':
      return code((await a.get(`/api/rooms/${room}/messages`)).status);
    case 'post':
      return code((await a.post(`/api/rooms/${room}/messages`, { body: `from ${viewer}` })).status);
    case 'join':
      return code((await a.post(`/api/rooms/${room}/join`)).status);
    case 'leave':
      return code((await a.post(`/api/rooms/${room}/leave`)).status);
    case 'rename':
      return code((await a.request('PATCH', `/api/rooms/${room}`, { json: { name: `renamed ${kind} ${viewer}` }, headers: { 'x-csrf-token': await a.csrf() } })).status);
    case 'invite':
      return code((await a.post(`/api/rooms/${room}/members`, { userId: ids.get('invitee') })).status);
    case 'remove':
      return code((await a.request('DELETE', `/api/rooms/${room}/members/${ids.get('extra')}`, { headers: { 'x-csrf-token': await a.csrf() } })).status);
    case 'archive':
      return code((await a.request('PATCH', `/api/rooms/${room}`, { json: { archived: true }, headers: { 'x-csrf-token': await a.csrf() } })).status);
    case 'delete':
      return code((await a.request('DELETE', `/api/rooms/${room}`, { headers: { 'x-csrf-token': await a.csrf() } })).status);
    case 'sockRead': {
      const c = sockets.get(viewer)!;
      c.write({ type: 'joinRoom', room: roomId });
      const f = await c.take((f) => (f.type === 'joined' && f.room === roomId) || (f.type === 'error' && f.room === roomId), `the answer to joining as ${viewer}`);
      return f.type === 'joined' ? 'ok' : f.code === 'not_found' ? '404' : f.code === 'forbidden' ? '403' : String(f.code);
    }
    case 'sockPost': {
      const c = sockets.get(viewer)!;
      const f = await c.send(roomId, `socket post from ${viewer}`);
      return f.type === 'ack' ? 'ok' : f.code === 'not_found' ? '404' : f.code === 'forbidden' ? '403' : String(f.code);
    }
  }
}

let n = 0;
for (const kind of KINDS) {
  t.test(`${kind}: every action by every viewer`, async (t) => {
    const actual: Record<string, string> = {};
    const expected: Record<string, string> = {};
    for (const viewer of VIEWERS) {
      const want = EXPECTED[kind][viewer].trim().split(/\s+/);
      t.equal(want.length, ACTIONS.length, `the table has a cell for every action (${kind}, ${viewer})`);
      const got: string[] = [];
      for (const action of ACTIONS) got.push(await perform(kind, viewer, action, await freshRoom(kind, n++)));
      actual[viewer] = got.join(' ');
      expected[viewer] = want.join(' ');
    }
    t.same(actual, expected, `${kind}: the outcomes, viewer by viewer (${ACTIONS.join(' ')})`);
  });
}

t.test('a room that does not exist answers exactly as one the viewer may not see', async (t) => {
  const group = await freshRoom('group', n++);
  const missing = crypto.randomUUID();
  const a = agents.get('outsider')!;
  for (const path of ['', '/messages', '/members']) {
    const hidden = await a.get(`/api/rooms/${group}${path}`);
    const none = await a.get(`/api/rooms/${missing}${path}`);
    t.equal(hidden.status, none.status, `GET ${path || '/'}: same status (${hidden.status})`);
    t.equal(hidden.text, none.text, `and the same body`);
  }
  const c = sockets.get('adminOut')!;
  c.write({ type: 'joinRoom', room: group });
  const hidden = await c.take((f) => f.type === 'error' && f.room === group);
  c.write({ type: 'joinRoom', room: missing });
  const none = await c.take((f) => f.type === 'error' && f.room === missing);
  t.same({ ...hidden, room: 'x' }, { ...none, room: 'x' }, 'over the socket too, even for an admin');
});
