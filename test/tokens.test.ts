// API tokens and bot accounts: scopes, shown once, stored as sha256, revoked, last used; a
// token reaches rooms only through the access module (a private group its user is not in is
// the same 404 as no room); no CSRF with a bearer token, still CSRF with a cookie; bots; and
// `npm run admin -- create-token / create-bot`.
import { createHash } from 'node:crypto';
import t from 'tap';
import { runAdmin } from './fixtures/admin.js';
import { r } from 'rethinkdb-ts';
import { Agent } from './fixtures/http.js';
import { startApp, startDb } from './fixtures/chat.js';

const db = await startDb(t);
const { url } = await startApp(t, db, { ANONYMOUS_ROOMS: '0' });

const admin = (args: string[]) => runAdmin(args, { RETHINKDB_URL: db.url });

async function bearer(token: string, method: string, path: string, json?: unknown) {
  const res = await fetch(url + path, { method, headers: { authorization: `Bearer ${token}`, ...(json !== undefined ? { 'content-type': 'application/json' } : {}) }, body: json === undefined ? undefined : JSON.stringify(json) });
  const text = await res.text();
  return { status: res.status, text, json: () => JSON.parse(text) as Record<string, any> };
}

const must = (ok: boolean, what: string) => {
  if (!ok) throw new Error(`setup failed: ${what}`);
};
const owner = new Agent(url);
must((await owner.signup({ username: 'olive' })).status === 201, 'owner signs up');
must((await owner.request('PATCH', '/api/workspace', { json: { registration: 'open' }, headers: { 'x-csrf-token': await owner.csrf() } })).status === 200, 'open registration');
const member = new Agent(url);
must((await member.signup({ username: 'mona' })).status === 201, 'member signs up');
const monaId = (await member.get('/api/me')).json<{ user: { id: string } }>().user.id;

const conn = await r.connect({ ...db.address.servers[0], user: db.address.user, password: db.address.password });
t.teardown(() => conn.close());

t.test('a token: shown once, stored hashed, scoped, revocable, last used', async (t) => {
  const made = await member.post('/api/tokens', { name: 'ci', scopes: ['read'] });
  t.equal(made.status, 201, made.text);
  const { token, id } = made.json<{ token: string; id: string }>();
  t.match(token, /^cor_[A-Za-z0-9_-]{43}$/);

  const listed = await member.get('/api/tokens');
  t.notOk(listed.text.includes(token), 'the list never holds the token');
  t.match(listed.json(), { tokens: [{ id, name: 'ci', scopes: ['read'], lastUsedAt: null, revoked: false }] });

  const rows = await r.db(db.dbName).table('tokens').run(conn);
  t.equal(rows.length, 1);
  t.equal(rows[0].id, createHash('sha256').update(token).digest('hex'), 'stored by its sha256');
  t.notOk(JSON.stringify(rows).includes(token), 'the token itself is nowhere in the database');

  const me = await bearer(token, 'GET', '/api/me');
  t.equal(me.status, 200);
  t.equal(me.json().user.username, 'mona');
  t.equal((await bearer(token, 'GET', '/api/rooms')).status, 200, 'read: GET');
  const refused = await bearer(token, 'POST', '/api/rooms', { kind: 'channel', name: 'from-token' });
  t.equal(refused.status, 403);
  t.equal(refused.json().error.code, 'insufficient_scope', 'read cannot post');

  const used = (await member.get('/api/tokens')).json<{ tokens: Array<{ lastUsedAt: string | null }> }>().tokens[0];
  t.ok(used.lastUsedAt && Date.now() - Date.parse(used.lastUsedAt) < 60_000, 'last used is set');

  t.equal((await member.request('DELETE', `/api/tokens/${id}`, { headers: { 'x-csrf-token': await member.csrf() } })).status, 204);
  const after = await bearer(token, 'GET', '/api/me');
  t.equal(after.status, 401, 'a revoked token is refused');
  t.equal((await bearer('cor_nonsense', 'GET', '/api/me')).status, 401, 'an unknown token is refused');
  t.equal((await fetch(`${url}/api/me`, { headers: { authorization: 'Basic abc' } })).status, 401, 'another scheme is refused');
});

t.test('bearer requests need no CSRF; cookie ones still do', async (t) => {
  const { token } = (await member.post('/api/tokens', { name: 'poster', scopes: ['read', 'post'] })).json<{ token: string }>();
  const made = await bearer(token, 'POST', '/api/rooms', { kind: 'channel', name: 'made-by-token' });
  t.equal(made.status, 201, made.text);
  const roomId = made.json().room.id as string;
  const posted = await bearer(token, 'POST', `/api/rooms/${roomId}/messages`, { body: 'hello from a script' });
  t.equal(posted.status, 201, posted.text);
  const noCsrf = await member.request('POST', `/api/rooms/${roomId}/messages`, { json: { body: 'cookie without csrf' } });
  t.equal(noCsrf.status, 403, 'a cookie request without the CSRF token is refused');
  // A token's request carries no session: a cookie sent along is not used.
  const both = await fetch(`${url}/api/rooms/${roomId}/messages`, { method: 'POST', headers: { authorization: `Bearer ${token}`, cookie: [...owner.cookies].map(([k, v]) => `${k}=${v}`).join('; '), 'content-type': 'application/json' }, body: JSON.stringify({ body: 'as whom?' }) });
  t.equal(both.status, 201);
  t.equal(((await both.json()) as { message: { author: { id: string } } }).message.author.id, monaId, 'the token decides who it is');
  t.equal((await bearer(token, 'POST', '/api/tokens', { name: 'x', scopes: ['read'] })).status, 403, 'making tokens needs manage');
  t.equal((await bearer(token, 'PATCH', '/api/workspace', { registration: 'closed' })).status, 403, 'admin changes need manage (and an admin)');
});

t.test('a token reaches rooms through the access module as its user would', async (t) => {
  const group = await owner.post('/api/rooms', { kind: 'group', name: 'secret plans' });
  t.equal(group.status, 201);
  const groupId = group.json<{ room: { id: string } }>().room.id;
  await owner.post(`/api/rooms/${groupId}/messages`, { body: 'for members only' });
  const { token } = (await member.post('/api/tokens', { name: 'nosy', scopes: ['read', 'post', 'manage'] })).json<{ token: string }>();
  const hidden = await bearer(token, 'GET', `/api/rooms/${groupId}/messages`);
  const missing = await bearer(token, 'GET', `/api/rooms/${crypto.randomUUID()}/messages`);
  t.equal(hidden.status, 404);
  t.same(hidden.json(), missing.json(), 'a private group the user is not in answers exactly like a missing room');
  t.equal((await bearer(token, 'POST', `/api/rooms/${groupId}/messages`, { body: 'let me in' })).status, 404);
  t.equal((await bearer(token, 'GET', '/api/hooks')).status, 403, "a member's manage token is still a member's");

  const { token: ownerToken } = (await owner.post('/api/tokens', { name: 'mine', scopes: ['read'] })).json<{ token: string }>();
  const seen = await bearer(ownerToken, 'GET', `/api/rooms/${groupId}/messages`);
  t.equal(seen.status, 200);
  t.ok(seen.text.includes('for members only'));
});

t.test('bots: made by admins, no password, act by token', async (t) => {
  t.equal((await member.post('/api/bots', { username: 'sneaky-bot' })).status, 403, 'members make no bots');
  const made = await owner.post('/api/bots', { username: 'deploy-bot', displayName: 'Deploys' });
  t.equal(made.status, 201, made.text);
  const bot = made.json<{ bot: { id: string; username: string } }>().bot;
  t.equal((await owner.post('/api/bots', { username: 'deploy-bot' })).status, 409);
  const tok = await owner.post(`/api/bots/${bot.id}/tokens`, { name: 'ci', scopes: ['read', 'post'] });
  t.equal(tok.status, 201);
  const me = await bearer(tok.json<{ token: string }>().token, 'GET', '/api/me');
  t.equal(me.json().user.username, 'deploy-bot');
  t.equal((await new Agent(url).login('deploy-bot', 'correct horse battery')).status, 401, 'a bot cannot log in');
  t.match((await owner.get('/api/bots')).json(), { bots: [{ username: 'deploy-bot', bot: true }] });
});

t.test('npm run admin -- create-bot / create-token', async (t) => {
  const bot = await admin(['create-bot', 'cli-bot']);
  t.equal(bot.code, 0, bot.err);
  t.match(bot.out, /created bot cli-bot/);
  const made = await admin(['create-token', 'cli-bot', '--scopes', 'read,post']);
  t.equal(made.code, 0, made.err);
  const token = made.out.trim();
  t.match(token, /^cor_/);
  const me = await bearer(token, 'GET', '/api/me');
  t.equal(me.status, 200);
  t.equal(me.json().user.username, 'cli-bot');
  t.equal((await bearer(token, 'POST', '/api/tokens', { name: 'x', scopes: ['read'] })).status, 403, 'only the scopes it was given');
  const bad = await admin(['create-token', 'cli-bot', '--scopes', 'read,fly']);
  t.equal(bad.code, 2, 'an unknown scope is a usage error');
  const nobody = await admin(['create-token', 'nobody', '--scopes', 'read']);
  t.equal(nobody.code, 2);
  t.match(nobody.err, /there is no user nobody/);
});
