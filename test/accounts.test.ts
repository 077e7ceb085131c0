// Accounts through the real HTTP API and pages: the first sign-up owns the workspace, the
// registration modes, log-in with the same answer for an unknown name and a wrong password,
// sessions in an HttpOnly SameSite=Lax cookie (Secure behind a trusted HTTPS proxy), CSRF on
// every state change, rate limits, log-out, log-out everywhere and password changes.
import t from 'tap';
import { r } from 'rethinkdb-ts';
import { hashToken } from '../src/accounts/service.js';
import { Agent } from './fixtures/http.js';
import { clientFor, startApp, startDb } from './fixtures/chat.js';

const db = await startDb(t);
const app = await startApp(t, db, { LOGIN_RATE_LIMIT_PER_ACCOUNT: '4', SIGNUP_RATE_LIMIT_PER_ADDRESS: '1000', LOGIN_RATE_LIMIT_PER_ADDRESS: '1000', TRUST_PROXY: 'loopback' });
const s = db.address.servers[0];
const conn = await r.connect({ host: s.host, port: s.port, user: db.address.user, password: db.address.password, silent: true });
t.teardown(() => conn.close());

t.test('the first sign-up owns the workspace; after that, sign-up needs an invitation', async (t) => {
  const page = await new Agent(app.url).get('/signup');
  t.equal(page.status, 200);
  t.match(page.text, /You are the first here/, 'the first visitor is told they will own the workspace');
  t.match(page.text, /name="_csrf" value="[^"]+"/, 'the form carries a CSRF token');

  const ann = new Agent(app.url);
  const first = await ann.signup({ username: 'ann', displayName: 'Ann Owner' });
  t.equal(first.status, 201);
  t.match(first.json(), { user: { username: 'ann', displayName: 'Ann Owner', role: 'owner' } });
  t.notOk('passwordHash' in (first.json().user as object), 'no hash leaves the server');

  const bob = new Agent(app.url);
  const refused = await bob.signup({ username: 'bob' });
  t.equal(refused.status, 403);
  t.match(refused.json(), { error: { code: 'invite_required' } }, 'invite is the mode once the owner exists');
  t.notOk((await new Agent(app.url).get('/signup')).text.includes('You are the first here'));

  const rows: Array<{ passwordHash: string; username: string }> = await r.db(db.dbName).table('users').run(conn);
  t.equal(rows.length, 1);
  t.match(rows[0].passwordHash, /^\$argon2id\$v=19\$m=19456,p=1,t=2\$/, 'argon2id with at least OWASP\'s minimum parameters');
  t.notOk(JSON.stringify(rows).includes('correct horse battery'), 'the password is not stored');
});

t.test('invitations: single-use, expiring, revocable, and they set the role', async (t) => {
  const token = 'invite-token-for-tests-0123456789';
  const now = Date.now();
  await r.db(db.dbName).table('invites').insert([
    { id: hashToken(token), createdBy: 'test', createdAt: new Date(now), expiresAt: new Date(now + 60_000), maxUses: 1, uses: 0, role: 'guest', revoked: false },
    { id: hashToken('expired-invite-token-0123456789'), createdBy: 'test', createdAt: new Date(now - 120_000), expiresAt: new Date(now - 60_000), maxUses: 5, uses: 0, role: 'member', revoked: false },
  ]).run(conn);
  const page = await new Agent(app.url).get(`/signup?invite=${token}`);
  t.match(page.text, new RegExp(`name="invite" value="${token}"`), 'the sign-up page keeps the invitation');
  const guest = new Agent(app.url);
  const ok = await guest.signup({ username: 'gina', invite: token });
  t.equal(ok.status, 201);
  t.equal(ok.json<{ user: { role: string } }>().user.role, 'guest', 'the invitation made a guest');
  const again = await new Agent(app.url).signup({ username: 'gary', invite: token });
  t.match(again.json(), { error: { code: 'invite_invalid' } }, 'a single-use invitation works once');
  const expired = await new Agent(app.url).signup({ username: 'eve', invite: 'expired-invite-token-0123456789' });
  t.match(expired.json(), { error: { code: 'invite_invalid' } }, 'an expired one not at all');
  const taken = await new Agent(app.url).signup({ username: 'ANN', invite: token });
  t.equal(taken.status, 403, 'the invitation is checked before anything else');
});

t.test('registration modes: open lets anyone in, closed nobody', async (t) => {
  await r.db(db.dbName).table('workspace').insert({ id: 'settings', name: 'Test', registration: 'open' }, { conflict: 'update' }).run(conn);
  const open = await new Agent(app.url).signup({ username: 'otto' });
  t.equal(open.status, 201);
  t.equal(open.json<{ user: { role: string } }>().user.role, 'member');
  const taken = await new Agent(app.url).signup({ username: 'OTTO', email: 'other@example.test' });
  t.equal(taken.status, 409, 'usernames are unique whatever their case');
  t.match(taken.json(), { error: { code: 'taken' } });
  const mail = await new Agent(app.url).signup({ username: 'otto2', email: 'Otto@Example.test' });
  t.equal(mail.status, 409, 'and so are e-mail addresses');
  const bad = await new Agent(app.url).signup({ username: 'x', password: 'short' });
  t.equal(bad.status, 400);
  t.match(bad.json(), { error: { code: 'invalid', message: /username: must be at least 2 characters.*password: must be at least 10 characters/ } }, 'bad input: every problem named');
  await r.db(db.dbName).table('workspace').get('settings').update({ registration: 'closed' }).run(conn);
  const closed = await new Agent(app.url).signup({ username: 'carl' });
  t.match(closed.json(), { error: { code: 'registration_closed' } });
});

t.test('log-in: a session cookie, HttpOnly and SameSite=Lax; the same answer for no such user and a wrong password', async (t) => {
  const a = new Agent(app.url);
  const ok = await a.login('ann');
  t.equal(ok.status, 200);
  const cookie = ok.setCookies.find((c) => c.startsWith('sid='));
  t.ok(cookie, 'a session cookie');
  t.match(cookie, /HttpOnly/i);
  t.match(cookie, /SameSite=Lax/i);
  t.notMatch(cookie, /Secure/i, 'not Secure over plain http');
  const token = a.cookies.get('sid')!;
  const stored = await r.db(db.dbName).table('sessions').get(hashToken(token)).run(conn);
  t.ok(stored, 'the database holds the token\'s hash');
  t.equal(await r.db(db.dbName).table('sessions').filter({ id: token }).count().run(conn), 0, 'and never the token');
  t.match((await a.get('/api/me')).json(), { user: { username: 'ann', role: 'owner' } });
  t.match((await new Agent(app.url).login('Ann@Example.test')).status, 200, 'by e-mail address too, whatever its case');

  const times: Record<string, number[]> = { unknown: [], wrong: [] };
  const answers = new Set<string>();
  for (let i = 0; i < 3; i++) {
    for (const [kind, name] of [['unknown', `nobody${i}`], ['wrong', 'otto']] as const) {
      const started = performance.now();
      const res = await new Agent(app.url).login(name, 'not the password at all');
      times[kind].push(performance.now() - started);
      answers.add(`${res.status} ${res.text}`);
    }
  }
  t.same([...answers], ['401 {"error":{"code":"bad_credentials","message":"wrong username or password"}}'], 'one answer for both');
  const median = (v: number[]) => [...v].sort((x, y) => x - y)[1];
  t.comment(`median log-in time: unknown name ${median(times.unknown).toFixed(1)} ms, wrong password ${median(times.wrong).toFixed(1)} ms`);
  // A shortcut for unknown names would answer in well under a millisecond; argon2 takes tens.
  t.ok(median(times.unknown) > median(times.wrong) / 4, 'an unknown name costs a password check too');

  const secure = new Agent(app.url);
  const viaProxy = await secure.request('POST', '/api/auth/login', { json: { login: 'ann', password: 'correct horse battery' }, headers: { 'x-csrf-token': await secure.csrf(), 'x-forwarded-proto': 'https' } });
  t.match(viaProxy.setCookies.find((c) => c.startsWith('sid=')), /Secure/i, 'Secure when the request came over HTTPS through the trusted proxy');
});

t.test('CSRF: a state-changing request without the token is refused', async (t) => {
  const a = new Agent(app.url);
  await a.login('ann');
  const bare = await a.request('POST', '/api/auth/logout', { json: {} });
  t.equal(bare.status, 403);
  t.match(bare.json(), { error: { code: 'csrf' } });
  const forged = await a.request('POST', '/api/auth/logout', { json: {}, headers: { 'x-csrf-token': 'forged' } });
  t.equal(forged.status, 403);
  const form = await a.request('POST', '/logout', { form: { _csrf: 'nope' } });
  t.equal(form.status, 403, 'a form post too');
  t.equal((await a.get('/api/me')).status, 200, 'still logged in');
  const other = new Agent(app.url);
  const stolen = await a.request('POST', '/api/auth/logout', { json: {}, headers: { 'x-csrf-token': await other.csrf() } });
  t.equal(stolen.status, 403, "another browser's token does not fit this session");
});

t.test('rate limits: log-in per account, answered 429 with Retry-After', async (t) => {
  const statuses: number[] = [];
  let retryAfter: string | null = null;
  for (let i = 0; i < 6; i++) {
    const res = await new Agent(app.url).login('gina', 'wrong password number ' + i);
    statuses.push(res.status);
    if (res.status === 429) retryAfter = res.headers.get('retry-after');
  }
  t.same(statuses, [401, 401, 401, 401, 429, 429], 'four tries, then 429');
  t.ok(Number(retryAfter) > 0, `Retry-After: ${retryAfter}`);
  t.equal((await new Agent(app.url).login('gina')).status, 429, 'even with the right password, until the window passes');
  t.equal((await new Agent(app.url).login('otto')).status, 200, 'other accounts are not affected');
});

t.test('pages work without JavaScript: sign-up, log-in and log-out forms', async (t) => {
  const a = new Agent(app.url);
  const page = await a.get('/login');
  const csrf = /name="_csrf" value="([^"]+)"/.exec(page.text)?.[1];
  t.ok(csrf);
  const wrong = await a.request('POST', '/login', { form: { _csrf: csrf!, login: 'otto', password: 'nope nope nope' } });
  t.equal(wrong.status, 401);
  t.match(wrong.text, /wrong username or password/, 'the form shows the error');
  t.match(wrong.text, /value="otto"/, 'and keeps what was typed (not the password)');
  const csrf2 = /name="_csrf" value="([^"]+)"/.exec(wrong.text)?.[1];
  const ok = await a.request('POST', '/login', { form: { _csrf: csrf2!, login: 'otto', password: 'correct horse battery' } });
  t.equal(ok.status, 303);
  t.equal(ok.headers.get('location'), '/');
  const account = await a.get('/account');
  t.match(account.text, /@otto/);
  const csrf3 = /name="_csrf" value="([^"]+)"/.exec(account.text)?.[1];
  const out = await a.request('POST', '/logout', { form: { _csrf: csrf3! } });
  t.equal(out.status, 303);
  t.equal((await a.get('/api/me')).status, 401, 'logged out');
  t.equal((await a.get('/account')).status, 303, 'the account page sends you to log in');
});

t.test('password change ends the other sessions; log-out everywhere ends all', async (t) => {
  const here = new Agent(app.url);
  const there = new Agent(app.url);
  await here.login('otto');
  await there.login('otto');
  const wrong = await here.post('/api/auth/password', { current: 'not it at all', password: 'a new long password' });
  t.equal(wrong.status, 403, 'the current password is checked');
  const changed = await here.post('/api/auth/password', { current: 'correct horse battery', password: 'a new long password' });
  t.equal(changed.status, 204);
  t.equal((await here.get('/api/me')).status, 200, 'this session goes on');
  t.equal((await there.get('/api/me')).status, 401, 'the other one ended');
  t.equal((await new Agent(app.url).login('otto')).status, 401, 'the old password no longer works');
  t.equal((await new Agent(app.url).login('otto', 'a new long password')).status, 200);
  const everywhere = await here.post('/api/auth/logout-everywhere');
  t.equal(everywhere.status, 204);
  t.equal(await r.db(db.dbName).table('sessions').getAll((await r.db(db.dbName).table('users').filter({ username: 'otto' }).nth(0).run(conn)).id, { index: 'userId' }).count().run(conn), 0, 'no session of the user is left');
});

t.test('sockets: identity from the session at the handshake; a session that ends closes its sockets', async (t) => {
  const a = new Agent(app.url);
  await a.login('ann');
  const c = clientFor(t, app.url, { transport: { extraHeaders: { cookie: `sid=${a.cookies.get('sid')}` } } });
  await c.hello();
  await c.join('lobby');
  const ack = await c.send('lobby', 'hello from ann', undefined, 'Somebody Else');
  t.equal(ack.type, 'ack');
  const got = await c.receivedCount(1);
  t.match(got[0].author, { name: 'Ann Owner' }, 'a signed-in socket posts under its own name, whatever the frame claims');
  t.match(got[0].author, { id: /^[0-9a-f-]{36}$/ });
  await a.post('/api/auth/logout');
  const ended = await c.take((f) => f.type === 'error' && f.code === 'unauthenticated', 'the session-ended frame', 3000);
  t.ok(ended, 'the socket is told its session ended');
  await c.until(() => c.sock.readyState !== 3 || undefined, 'the socket closed', 3000);
});

t.test('the socket refuses pages of other origins; polling answers carry no CORS grant', async (t) => {
  const foreign = await fetch(`${app.url}/primus/?EIO=4&transport=polling&t=x`, { headers: { origin: 'https://evil.example' } });
  t.equal(foreign.status, 403, 'a polling handshake from another origin: 403');
  t.notOk(foreign.headers.get('access-control-allow-origin'));
  const own = await fetch(`${app.url}/primus/?EIO=4&transport=polling&t=x`, { headers: { origin: app.url } });
  t.equal(own.status, 200, 'from the page\'s own origin: fine');
  t.notOk(own.headers.get('access-control-allow-credentials'), 'and no Access-Control-Allow-Credentials');
  // Close that engine.io session (a close packet), as a client going away would.
  const sid = /"sid":"([^"]+)"/.exec(await own.text())?.[1];
  t.ok(sid, 'the handshake opened a session');
  await fetch(`${app.url}/primus/?EIO=4&transport=polling&sid=${sid}`, { method: 'POST', body: '1', headers: { origin: app.url, 'content-type': 'text/plain' } });
  const lib = await fetch(`${app.url}/vendor/primus.js`);
  t.equal(lib.status, 200);
  t.equal(lib.headers.get('x-content-type-options'), 'nosniff', 'the client library goes out with the security headers');
  t.ok(lib.headers.get('content-security-policy'));
});
