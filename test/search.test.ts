// Search over the real HTTP API: words and prefixes, phrases, every filter, folding (NFKC, case,
// accents), Chinese, Japanese and Korean, edits and deletions reflected at once, pages by
// cursor, highlights, and a bad query answered with a 400 that says why.
import { randomUUID } from 'node:crypto';
import t from 'tap';
import type { WireMessage } from '../src/chat/wire.js';
import { createMessageStore } from '../src/db/messages.js';
import { openPool } from '../src/db/pool.js';
import { parseQuery } from '../src/search/query.js';
import { reindexSearch } from '../src/search/reindex.js';
import { r } from 'rethinkdb-ts';
import { searchFields } from '../src/search/text.js';
import { Agent } from './fixtures/http.js';
import { startApp, startDb, testLog } from './fixtures/chat.js';

const db = await startDb(t);
const { url } = await startApp(t, db, { SIGNUP_RATE_LIMIT_PER_ADDRESS: '1000', LOGIN_RATE_LIMIT_PER_ADDRESS: '1000' });

const send = (a: Agent, method: 'PATCH' | 'DELETE', path: string, json?: unknown) => a.csrf().then((csrf) => a.request(method, path, { json, headers: { 'x-csrf-token': csrf } }));
const alice = new Agent(url);
await alice.signup({ username: 'alice', displayName: 'Alice' });
await send(alice, 'PATCH', '/api/workspace', { registration: 'open' });
const bob = new Agent(url);
await bob.signup({ username: 'bob', displayName: 'Bob' });
const roomOf = async (name: string) => (await alice.post('/api/rooms', { kind: 'channel', name })).json<{ room: { id: string } }>().room.id;
const general = await roomOf('general');
const random = await roomOf('random');
await bob.post(`/api/rooms/${general}/join`);

async function post(a: Agent, room: string, body: string, extra: { thread?: string } = {}): Promise<WireMessage> {
  const res = await a.post(`/api/rooms/${room}/messages`, { body, ...extra });
  if (res.status !== 201) throw new Error(`post: ${res.status} ${res.text}`);
  return res.json<{ message: WireMessage }>().message;
}

interface Result {
  message: WireMessage;
  room: { id: string; name: string; kind: string };
  highlights: Array<[number, number]>;
}
const search = async (q: string, a: Agent = alice, extra = '') => {
  const res = await a.get(`/api/search?q=${encodeURIComponent(q)}${extra}`);
  if (res.status !== 200) throw new Error(`search ${q}: ${res.status} ${res.text}`);
  return res.json<{ results: Result[]; cursor: string | null }>();
};
const ids = async (q: string, a: Agent = alice) => (await search(q, a)).results.map((r) => r.message.id);

const deployment = await post(alice, general, 'The deployment finished at noon');
const phrase = await post(bob, general, 'please deploy the app now');
const reversed = await post(alice, random, 'the app should deploy itself');
const link = await post(bob, general, 'notes at https://example.test/notes');
const folded = await post(alice, random, 'ＤＥＰＬＯＹ Café ﬁnal Ångström');
const chinese = await post(alice, general, '我们在北京大学学习');
const japanese = await post(bob, general, '東京でデプロイしました');
const korean = await post(alice, general, '배포를 완료했습니다');
const start = await post(alice, general, 'thread start about quarterly numbers');
const reply = await post(bob, general, 'a reply about quarterly budgets', { thread: start.id });

t.test('words and prefixes, newest first, with room and author', async (t) => {
  t.same(await ids('deployment'), [deployment.id]);
  t.same(await ids('deplo'), [folded.id, reversed.id, phrase.id, deployment.id], 'deplo: every word that starts so, newest first');
  t.same(await ids('deploy'), [folded.id, reversed.id, phrase.id, deployment.id]);
  t.same(await ids('finish noon'), [deployment.id], 'every word must match');
  t.same(await ids('finish lunch'), []);
  const [hit] = (await search('deployment')).results;
  t.equal(hit?.room.name, 'general');
  t.match(hit?.message.author, { name: 'Alice' });
  t.same(hit?.highlights, [[4, 14]], 'the word is highlighted where it is in the text');
  t.equal(deployment.body.slice(4, 14), 'deployment');
});

t.test('quoted phrases match words in order', async (t) => {
  t.same(await ids('"deploy the app"'), [phrase.id]);
  t.same(await ids('"the app"'), [reversed.id, phrase.id]);
  t.same(await ids('"app the"'), []);
});

t.test('filters', async (t) => {
  t.same(await ids('deploy in:random'), [folded.id, reversed.id]);
  t.same(await ids('deploy in:#General'), [phrase.id, deployment.id], 'a room by name, any case, with or without #');
  t.same(await ids('deploy from:bob'), [phrase.id]);
  t.same(await ids('from:@bob in:general'), [reply.id, japanese.id, link.id, phrase.id], 'filters alone');
  t.same(await ids('from:nobody-here'), [], 'an unknown user finds nothing');
  t.same(await ids('deploy in:nowhere'), [], 'an unknown room finds nothing');
  t.same(await ids('has:link'), [link.id]);
  t.same(await ids('notes has:link'), [link.id]);
  t.same(await ids('is:thread'), [reply.id]);
  t.same(await ids('quarterly is:thread'), [reply.id]);
  const day = (offset: number) => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);
  t.same(await ids(`deployment after:${day(-1)}`), [deployment.id]);
  t.same(await ids(`deployment before:${day(1)}`), [deployment.id]);
  t.same(await ids(`deployment before:${day(0)}`), [], 'before: is before that day');
  t.same(await ids(`deployment after:${day(0)}`), [], 'after: is after that day');
  t.same(await ids(`in:random after:${day(-1)}`), [folded.id, reversed.id], 'dates and a room alone');
});

t.test('has:file: a message with a file attached', async (t) => {
  const pool = openPool(db.address, { log: testLog() });
  t.teardown(() => pool.close());
  const store = createMessageStore(pool, db.dbName);
  const aliceId = (await alice.get('/api/me')).json<{ user: { id: string } }>().user.id;
  const { message } = await store.insert({ id: randomUUID(), room: general, body: 'the floor plan', author: { id: aliceId, name: 'Alice' }, file: { id: 'f1', name: 'plan.png', type: 'image/png', size: 10 } });
  t.same(await ids('has:file'), [message.id]);
  t.same(await ids('plan has:file'), [message.id]);
  t.same(await ids('plan'), [message.id]);
});

t.test('folding: NFKC, case and accents', async (t) => {
  for (const q of ['deploy in:random', 'ＤＥＰＬＯＹ in:random', 'DEPLOY in:random']) t.ok((await ids(q)).includes(folded.id), q);
  t.same(await ids('cafe'), [folded.id], 'café is found as cafe');
  t.same(await ids('CAFÉ'), [folded.id], 'and as CAFÉ');
  t.same(await ids('final'), [folded.id], 'the ﬁ ligature is fi');
  t.same(await ids('angstrom'), [folded.id]);
  const [hit] = (await search('cafe')).results;
  t.same(hit?.highlights.map(([a, b]) => folded.body.slice(a, b)), ['Café']);
});

t.test('Chinese, Japanese and Korean', async (t) => {
  t.same(await ids('北京'), [chinese.id]);
  t.same(await ids('大学'), [chinese.id], 'a word inside a longer one');
  t.same(await ids('北京大学'), [chinese.id]);
  t.same(await ids('京大'), [chinese.id], 'any part of a run');
  t.same(await ids('上海'), []);
  t.same(await ids('デプロイ'), [japanese.id]);
  t.same(await ids('しました'), [japanese.id]);
  t.same(await ids('東京'), [japanese.id]);
  t.same(await ids('배포'), [korean.id], 'a Korean word by its stem');
  t.same(await ids('완료'), [korean.id]);
  const [hit] = (await search('大学')).results;
  t.ok(hit && hit.highlights.length > 0, 'highlighted');
});

t.test('a thread-only reply is found, and says its thread', async (t) => {
  const [hit] = (await search('budgets')).results;
  t.equal(hit?.message.id, reply.id);
  t.equal(hit?.message.thread, start.id);
});

t.test('edits and deletions are reflected at once', async (t) => {
  const m = await post(alice, general, 'the zebra crossing');
  t.same(await ids('zebra'), [m.id]);
  t.equal((await send(alice, 'PATCH', `/api/rooms/${general}/messages/${m.id}`, { body: 'the giraffe crossing' })).status, 200);
  t.same(await ids('zebra'), [], 'the old text is found no more');
  t.same(await ids('giraffe'), [m.id]);
  t.same(await ids('giraffe from:alice'), [m.id], 'its author still a filter after the edit');
  t.equal((await send(alice, 'DELETE', `/api/rooms/${general}/messages/${m.id}`)).status, 204);
  t.same(await ids('giraffe'), []);
  t.same(await ids('crossing'), []);
});

t.test('pages by cursor, newest first, none twice', async (t) => {
  const posted: string[] = [];
  for (let i = 0; i < 7; i++) posted.push((await post(bob, general, `pagination round ${i}`)).id);
  const seen: string[] = [];
  let cursor: string | null = null;
  for (let pages = 0; pages < 10; pages++) {
    const page: { results: Result[]; cursor: string | null } = await search('pagination', alice, `&limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    seen.push(...page.results.map((r) => r.message.id));
    cursor = page.cursor;
    if (!cursor) break;
  }
  t.same(seen, posted.reverse());
});

t.test('messages stored before search get their terms from reindex-search', async (t) => {
  const pool = openPool(db.address, { log: testLog() });
  t.teardown(() => pool.close());
  await pool.waitHealthy(10_000);
  const table = r.db(db.dbName).table('messages');
  const old = { id: randomUUID(), room: general, body: 'an archaic wombat from 2015', author: { name: 'legacy' }, sent: new Date(Date.now() - 86_400_000) };
  const gone = { id: randomUUID(), room: general, body: '', author: { name: 'legacy' }, sent: new Date(Date.now() - 86_400_000), deleted: true };
  await pool.run(table.insert([old, gone]));
  t.same(await ids('wombat'), [], 'not found before');
  const first = await reindexSearch(pool, db.dbName);
  t.ok(first.indexed >= 1 && first.seen > first.indexed, `indexed ${first.indexed} of ${first.seen}`);
  t.same(await ids('wombat'), [old.id]);
  t.same(await ids('archaic in:general'), [old.id]);
  t.equal((await reindexSearch(pool, db.dbName)).indexed, 0, 'run again: nothing to do');
});

t.test('a bad query is a clear 400', async (t) => {
  for (const [q, says] of [
    ['before:2026-13-01', /before: takes a date as YYYY-MM-DD/],
    ['after:yesterday', /after: takes a date/],
    ['has:cake', /has: takes file or link/],
    ['is:pinned', /is: takes thread/],
    ['!!! ???', /type a word/],
    ['from:a from:b', /one from:/],
    [`after:2026-01-05 before:2026-01-02`, /after: must be earlier/],
    ['x'.repeat(301), /at most 300/],
  ] as const) {
    const res = await alice.get(`/api/search?q=${encodeURIComponent(q)}`);
    t.equal(res.status, 400, q.slice(0, 40));
    t.match(res.json(), { error: { message: says } }, q.slice(0, 40));
  }
  t.equal((await alice.get('/api/search')).status, 400, 'no q');
  t.match((await alice.get('/api/search?q=deploy&cursor=nonsense')).json(), { error: { code: 'bad_query', message: /cursor/ } });
  t.equal((await new Agent(url).get('/api/search?q=deploy')).status, 401, 'signed out');
  t.same(await ids('deploy in:random'), [folded.id, reversed.id], 'and the server goes on');
});

t.test('the text rules', async (t) => {
  const f = searchFields({ body: 'Deploying v1.2 to prod:eu', author: { id: 'u1' } });
  for (const term of ['deploying', 'de', 'dep', 'deplo', 'deployin', 'v1', '2', 'prod', 'eu', '#from:u1']) t.ok(f.terms.includes(term), term);
  t.notOk(f.terms.includes('deploy'), 'a prefix of another length is not stored (it is checked against the whole words)');
  t.equal(f.searchText, 'deploying v1 2 to prod eu');
  const q = parseQuery('time:12 "exact words" in:ops');
  t.same(q.in, ['ops']);
  t.same(q.words.map((w) => w.word), ['time', '12'], 'an unknown filter is text');
  t.same(q.phrases.map((p) => p.map((w) => w.word)), [['exact', 'words']]);
});
