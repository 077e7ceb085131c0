// Search respects permissions by construction, checked both ways against the history API: for
// every user of a seeded workspace (owner, admin, members, guests), every search result is a
// message that user's history (the room's page, or its thread) shows now with the same text, and
// every message of their history that has the word is found. Checked again after messages are
// edited and deleted, people are removed from rooms, leave them, are added, and a member
// becomes a guest. The searches go each way the service looks: across rooms (hits enough, or
// the term's entries all checked), and room by room (one or two rooms, or a word whose newest
// messages are in a room none of them reads).
import { randomUUID } from 'node:crypto';
import { r } from 'rethinkdb-ts';
import t, { type Test } from 'tap';
import type { WireMessage } from '../src/chat/wire.js';
import { SCAN_PER_ROOM } from '../src/search/service.js';
import { fieldsOnInsert } from '../src/search/stored.js';
import { fold } from '../src/search/text.js';
import { Agent } from './fixtures/http.js';
import { startApp, startDb } from './fixtures/chat.js';

const db = await startDb(t);
const { url } = await startApp(t, db, { SIGNUP_RATE_LIMIT_PER_ADDRESS: '1000', LOGIN_RATE_LIMIT_PER_ADDRESS: '1000' });
const conn = await r.connect({ ...db.address.servers[0], user: db.address.user, password: db.address.password, silent: true });
t.teardown(() => conn.close());
const table = (name: string) => r.db(db.dbName).table(name);

const send = (a: Agent, method: 'PATCH' | 'DELETE', path: string, json?: unknown) => a.csrf().then((csrf) => a.request(method, path, { json, headers: { 'x-csrf-token': csrf } }));
const must = async <T>(p: Promise<{ status: number; text: string; json<U>(): U }>, what: string): Promise<T> => {
  const res = await p;
  if (res.status >= 300) throw new Error(`${what}: ${res.status} ${res.text}`);
  return (res.status === 204 ? undefined : res.json<T>()) as T;
};

const PEOPLE = [['owner', 'owner'], ['admin', 'admin'], ['m1', 'member'], ['m2', 'member'], ['m3', 'member'], ['g1', 'guest'], ['g2', 'guest']] as const;
type Name = (typeof PEOPLE)[number][0];
const agents = new Map<Name, Agent>();
const ids = new Map<Name, string>();
for (const [name, role] of PEOPLE) {
  const a = new Agent(url);
  await must(a.signup({ username: name }), `signup ${name}`);
  if (name === 'owner') await send(a, 'PATCH', '/api/workspace', { registration: 'open' });
  else await table('users').filter({ username: name }).update({ role }).run(conn);
  ids.set(name, (await a.get('/api/me')).json<{ user: { id: string } }>().user.id);
  agents.set(name, a);
}
const A = (n: Name) => agents.get(n)!;
const id = (n: Name) => ids.get(n)!;

const makeRoom = async (by: Name, kind: 'channel' | 'group', name: string) => (await must<{ room: { id: string } }>(A(by).post('/api/rooms', { kind, name }), `room ${name}`)).room.id;
const add = (by: Name, room: string, who: Name) => must(A(by).post(`/api/rooms/${room}/members`, { userId: id(who) }), `add ${who}`);
const c1 = await makeRoom('owner', 'channel', 'c1');
const c2 = await makeRoom('admin', 'channel', 'c2');
const p1 = await makeRoom('owner', 'group', 'p1');
const p2 = await makeRoom('m2', 'group', 'p2');
const g = await makeRoom('m3', 'group', 'guests');
for (const who of ['m1', 'm2'] as const) await must(A(who).post(`/api/rooms/${c1}/join`), 'join');
await add('owner', c1, 'g1');
await must(A('m2').post(`/api/rooms/${c2}/join`), 'join');
await add('owner', p1, 'm1');
await add('owner', p1, 'g2');
await add('m3', g, 'g1');
await add('m3', g, 'g2');
const dm = (await must<{ room: { id: string } }>(A('owner').post('/api/dms', { userIds: [id('m1')] }), 'dm')).room.id;

const WORDS = ['beta', 'gamma', 'delta'];
const posted: Array<{ id: string; room: string; by: Name }> = [];
async function post(by: Name, room: string, i: number, extra: { thread?: string; alsoRoom?: boolean } = {}): Promise<WireMessage> {
  const body = `alpha ${WORDS[i % 3]} ${WORDS[(i * 7) % 3]} number${i}`;
  const m = (await must<{ message: WireMessage }>(A(by).post(`/api/rooms/${room}/messages`, { body, ...extra }), `post in ${room}`)).message;
  posted.push({ id: m.id, room, by });
  return m;
}
const plan: Array<[Name, string]> = [['owner', c1], ['m1', c1], ['g1', c1], ['admin', c2], ['m2', c2], ['owner', p1], ['m1', p1], ['g2', p1], ['m2', p2], ['owner', dm], ['m1', dm], ['m3', g], ['g1', g], ['g2', g]];
let n = 0;
for (let round = 0; round < 2; round++) for (const [by, room] of plan) await post(by, room, n++);
// Threads: replies kept in their thread, and one also sent to the room.
const startC1 = posted.find((p) => p.room === c1)!;
const startP1 = posted.find((p) => p.room === p1)!;
await post('m1', c1, n++, { thread: startC1.id });
await post('g1', c1, n++, { thread: startC1.id, alsoRoom: true });
await post('owner', p1, n++, { thread: startP1.id });
await post('g2', p1, n++, { thread: startP1.id });
// More messages with `beta` than a look across rooms checks (SCAN_PER_ROOM for each room one
// may read), newer than all the others, in rooms none of them reads: every search for it must
// go on room by room past them.
const elsewhere = { id: id('owner'), name: 'owner' };
const roomsNow = Number(await table('rooms').count().run(conn));
await table('messages').insert(Array.from({ length: SCAN_PER_ROOM * roomsNow + 50 }, (_, i) => {
  const m = { id: randomUUID(), room: `elsewhere-${randomUUID()}`, body: `beta far away ${i}`, author: elsewhere };
  return { ...m, ...fieldsOnInsert(m), sent: r.now() };
})).run(conn);

interface Hit {
  message: WireMessage;
  room: { id: string };
}

/** Every page of a search. */
async function searchAll(a: Agent, q: string): Promise<Hit[]> {
  const out: Hit[] = [];
  let cursor: string | null = null;
  for (let pages = 0; pages < 20; pages++) {
    const page: { results: Hit[]; cursor: string | null } = await must(a.get(`/api/search?q=${encodeURIComponent(q)}&limit=7${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`), `search ${q}`);
    out.push(...page.results);
    cursor = page.cursor;
    if (!cursor) return out;
  }
  throw new Error('more than 20 pages');
}

/** What the user can read by scrolling now: every room they see, its history and its threads. */
async function readable(a: Agent, guest: boolean): Promise<Map<string, WireMessage>> {
  const rooms = new Set((await must<{ rooms: Array<{ id: string }> }>(a.get('/api/rooms'), 'rooms')).rooms.map((x) => x.id));
  if (!guest) for (const c of (await must<{ channels: Array<{ id: string }> }>(a.get('/api/channels'), 'channels')).channels) rooms.add(c.id);
  const seen = new Map<string, WireMessage>();
  for (const room of rooms) {
    const { messages } = await must<{ messages: WireMessage[] }>(a.get(`/api/rooms/${room}/messages?limit=100`), 'history');
    for (const m of messages) {
      seen.set(m.id, m);
      if ((m.replies ?? 0) > 0) {
        const th = await must<{ replies: WireMessage[] }>(a.get(`/api/rooms/${room}/messages/${m.id}/thread?limit=100`), 'thread');
        for (const x of th.replies) seen.set(x.id, x);
      }
    }
  }
  return seen;
}

const QUERIES: Array<[string, (body: string) => boolean]> = [
  ['alpha', (b) => /\balpha\b/.test(fold(b))],
  ['alp', (b) => /\balp/.test(fold(b))],
  ['beta', (b) => /\bbeta\b/.test(fold(b))],
  ['"alpha gamma"', (b) => /\balpha gamma\b/.test(fold(b))],
  ['omega', (b) => /\bomega\b/.test(fold(b))],
];
const guests = new Set<Name>(['g1', 'g2']);

async function check(t: Test, stage: string): Promise<void> {
  for (const [name] of PEOPLE) {
    const a = A(name);
    const history = await readable(a, guests.has(name));
    for (const [q, has] of QUERIES) {
      const hits = await searchAll(a, q);
      const found = new Set<string>();
      for (const h of hits) {
        const m = history.get(h.message.id);
        if (!m) {
          t.fail(`${stage}: ${name} found ${h.message.id} (room ${h.room.id}) for ${q}, which their history does not show`);
          continue;
        }
        if (m.deleted || m.body !== h.message.body) t.fail(`${stage}: ${name} found ${h.message.id} for ${q} with text their history does not show`);
        if (!has(m.body)) t.fail(`${stage}: ${name} found ${h.message.id} for ${q} without the word`);
        found.add(h.message.id);
      }
      const missing = [...history.values()].filter((m) => !m.deleted && !m.event && has(m.body) && !found.has(m.id));
      t.same(missing.map((m) => m.id), [], `${stage}: ${name}: ${q}: everything their history shows is found`);
      t.equal(found.size, hits.length, `${stage}: ${name}: ${q}: none twice`);
    }
  }
}

t.test('seeded: every result readable, every readable match found', async (t) => {
  await check(t, 'seeded');
});

t.test('after edits, deletions and membership changes', async (t) => {
  // Edits: the word goes away from some, comes to others; the old text is not found.
  const own = (by: Name) => posted.filter((p) => p.by === by);
  const [e1, e2] = own('m1');
  await must(send(A('m1'), 'PATCH', `/api/rooms/${e1!.room}/messages/${e1!.id}`, { body: 'nothing to see here' }), 'edit');
  await must(send(A('m1'), 'PATCH', `/api/rooms/${e2!.room}/messages/${e2!.id}`, { body: 'omega alpha gamma' }), 'edit');
  const [d1] = own('g2');
  await must(send(A('g2'), 'DELETE', `/api/rooms/${d1!.room}/messages/${d1!.id}`), 'delete');
  await must(send(A('owner'), 'DELETE', `/api/rooms/${c1}/messages/${posted.filter((p) => p.by === 'm1' && p.room === c1)[1]!.id}`), 'delete by the owner');
  // Removed from a private group, removed from a channel, leaving a channel, added later.
  await must(send(A('owner'), 'DELETE', `/api/rooms/${p1}/members/${id('m1')}`), 'remove m1 from p1');
  await must(send(A('owner'), 'DELETE', `/api/rooms/${c1}/members/${id('g1')}`), 'remove g1 from c1');
  await must(A('m2').post(`/api/rooms/${c1}/leave`), 'm2 leaves c1');
  await add('owner', p1, 'm3');
  await check(t, 'changed');
  // m1 no longer sees p1; g1 no longer sees c1; m3 now does see p1.
  const m1Rooms = new Set((await searchAll(A('m1'), 'alpha')).map((h) => h.room.id));
  t.notOk(m1Rooms.has(p1), 'nothing of a private group one was removed from');
  t.ok(m1Rooms.has(c1) && m1Rooms.has(c2), 'public channels still, in or not');
  t.notOk(new Set((await searchAll(A('g1'), 'alpha')).map((h) => h.room.id)).has(c1), 'a guest removed from a channel sees nothing of it');
  t.ok(new Set((await searchAll(A('m3'), 'alpha')).map((h) => h.room.id)).has(p1), 'added: its history is found');
  t.ok(new Set((await searchAll(A('m2'), 'alpha')).map((h) => h.room.id)).has(c1), 'a member who left a public channel still reads it');
});

t.test('a member made a guest, a room deleted, more edits', async (t) => {
  await table('users').get(id('m2')).update({ role: 'guest' }).run(conn);
  guests.add('m2');
  await must(send(A('m2'), 'DELETE', `/api/rooms/${p2}`), 'delete p2');
  for (const p of posted.filter((x) => x.by === 'owner').slice(0, 3)) await must(send(A('owner'), 'PATCH', `/api/rooms/${p.room}/messages/${p.id}`, { body: 'alpha omega rewritten' }), 'edit');
  await check(t, 'guest');
  const m2Rooms = new Set((await searchAll(A('m2'), 'alpha')).map((h) => h.room.id));
  t.notOk(m2Rooms.has(c1), 'a guest: nothing of a channel they left');
  t.ok(m2Rooms.has(c2), 'a guest: the channels they are in');
  t.notOk(m2Rooms.has(p2), 'a deleted room is found no more');
});
