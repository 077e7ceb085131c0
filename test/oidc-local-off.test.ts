// LOCAL_LOGIN=off with the OpenID provider down (its port closed before the app starts): the
// app starts anyway; the log-in page shows the provider's button alone; sign-up is closed; a
// member's local log-in gets exactly the answer an unknown name gets; owners and admins keep a
// break-glass local log-in, and the command-line password reset still works.
import t from 'tap';
import { runAdmin } from './fixtures/admin.js';
import { loadConfig } from '../src/config.js';
import { spawnApp, startApp, startDb } from './fixtures/chat.js';
import { Agent } from './fixtures/http.js';
import { CLIENT_ID, CLIENT_SECRET, startProvider } from './fixtures/oidc.js';

const admin = (url: string, args: string[], stdin = '') => runAdmin(args, { RETHINKDB_URL: url }, stdin);

const PASSWORD = 'correct horse battery';
t.setTimeout(240_000);
const db = await startDb(t);
const idp = await startProvider(t);
await idp.stop();
const app = await startApp(t, db, {
  ANONYMOUS_ROOMS: '0',
  LOGIN_RATE_LIMIT_PER_ADDRESS: '1000',
  OIDC_ISSUER: idp.issuer,
  OIDC_CLIENT_ID: CLIENT_ID,
  OIDC_CLIENT_SECRET: CLIENT_SECRET,
  OIDC_BUTTON: 'Log in with Keycloak',
  LOCAL_LOGIN: 'off',
});
for (const [name, role] of [
  ['root', 'owner'],
  ['adele', 'admin'],
  ['mia', 'member'],
] as const) {
  const made = await admin(db.url, ['create-user', name, '--role', role, '--email', `${name}@example.test`], `${PASSWORD}\n`);
  if (made.code !== 0) throw new Error(`create-user ${name}: ${made.err}`);
}

t.test('the app started with the provider down; the log-in page shows its button alone', async (t) => {
  const page = await new Agent(app.url).get('/login');
  t.equal(page.status, 200);
  t.match(page.text, /<a class="button sso" href="\/auth\/oidc\/login">Log in with Keycloak<\/a>/);
  t.notMatch(page.text, /name="password"/, 'no password field');
  t.notMatch(page.text, /<form/, 'no form at all');
  t.notMatch(page.text, /href="\/signup"/, 'no sign-up link');
  const button = await new Agent(app.url).get('/auth/oidc/login');
  t.equal(button.status, 503, 'the button, while the provider is down');
  t.match(button.text, /cannot be reached right now/);
});

t.test('sign-up is closed', async (t) => {
  const a = new Agent(app.url);
  const page = await a.get('/signup');
  t.equal(page.status, 403);
  t.match(page.text, /Sign-up is closed here/);
  t.notMatch(page.text, /name="password"/);
  const api = await a.signup({ username: 'walkin' });
  t.equal(api.status, 403);
  t.match(api.json(), { error: { code: 'registration_closed' } });
  const form = await a.request('POST', '/signup', { form: { _csrf: await a.csrf(), username: 'walkin2', displayName: 'W', email: 'w@example.test', password: PASSWORD } });
  t.equal(form.status, 403);
});

t.test('a member\'s local log-in gets the same answer as an unknown name', async (t) => {
  const answers = await Promise.all(
    [
      ['mia', PASSWORD],
      ['mia', 'a wrong password'],
      ['mia@example.test', PASSWORD],
      ['nobody-here', PASSWORD],
      ['root', 'a wrong password'],
    ].map(async ([login, password]) => {
      const r = await new Agent(app.url).login(login, password);
      return { login, status: r.status, body: r.text };
    }),
  );
  for (const a of answers) t.same({ status: a.status, body: a.body }, { status: answers[3].status, body: answers[3].body }, `${a.login}: the unknown name's answer`);
  t.equal(answers[3].status, 401);
  t.match(JSON.parse(answers[3].body), { error: { code: 'local_login_off' } });

  // The page's form answers alike too (the CSRF token in it differs, nothing else).
  const pageAnswer = async (login: string) => {
    const a = new Agent(app.url);
    const r = await a.request('POST', '/login?local', { form: { _csrf: await a.csrf(), login, password: PASSWORD } });
    return { status: r.status, text: r.text.replace(/name="_csrf" value="[^"]*"/, '').replace(/value="[^"]*"/, '') };
  };
  const [member, unknown] = await Promise.all([pageAnswer('mia'), pageAnswer('nobody-here')]);
  t.same(member, unknown, 'the page: the same for a member and an unknown name');
  t.equal(member.status, 401);
});

t.test('owners and admins keep a break-glass local log-in', async (t) => {
  const glass = await new Agent(app.url).get('/login?local');
  t.match(glass.text, /Break-glass log-in/);
  t.match(glass.text, /<form class="stack" method="post" action="\/login\?local"/);
  t.notMatch(glass.text, /class="button sso"/, 'the break-glass page is the form alone');

  const owner = new Agent(app.url);
  const r = await owner.request('POST', '/login?local', { form: { _csrf: await owner.csrf(), login: 'root', password: PASSWORD } });
  t.equal(r.status, 303);
  t.equal(r.headers.get('location'), '/');
  t.match((await owner.get('/api/me')).json(), { user: { username: 'root', role: 'owner' } });
  const adele = new Agent(app.url);
  t.equal((await adele.login('adele')).status, 200, 'an admin by the API');
  t.match((await adele.get('/api/me')).json(), { user: { role: 'admin' } });

  // Its log-out does not try the provider.
  const out = await owner.request('POST', '/logout', { form: { _csrf: await owner.csrf() } });
  t.equal(out.headers.get('location'), '/login');
});

t.test('the command-line password reset still works', async (t) => {
  const reset = await admin(db.url, ['reset-password', 'root'], 'a brand new passphrase\n');
  t.equal(reset.code, 0, reset.err);
  t.match(reset.out, /reset the password of root/);
  const old = await new Agent(app.url).login('root', PASSWORD);
  t.equal(old.status, 401, 'the old password is refused');
  t.match(old.json(), { error: { code: 'local_login_off' } });
  t.equal((await new Agent(app.url).login('root', 'a brand new passphrase')).status, 200, 'the new one logs in');
  // A member's reset does not open local log-in to them.
  t.equal((await admin(db.url, ['reset-password', 'mia'], 'a member passphrase\n')).code, 0);
  t.equal((await new Agent(app.url).login('mia', 'a member passphrase')).status, 401);
});

t.test('LOCAL_LOGIN=off needs a provider; the client secret is never echoed', async (t) => {
  t.throws(() => loadConfig({ LOCAL_LOGIN: 'off' }), /LOCAL_LOGIN: off needs single sign-on/);
  t.throws(() => loadConfig({ OIDC_ISSUER: 'http://127.0.0.1:1' }), /OIDC_CLIENT_ID: must be set/);
  t.throws(() => loadConfig({ OIDC_ISSUER: 'http://127.0.0.1:1', OIDC_CLIENT_ID: 'x', OIDC_SCOPES: 'email profile' }), /OIDC_SCOPES: must include openid/);
  t.equal(loadConfig({ OIDC_ISSUER: 'http://127.0.0.1:1', OIDC_CLIENT_ID: 'x' }).oidc?.scopes, 'openid email profile', 'the default scopes');
  let message = '';
  try {
    loadConfig({ OIDC_ISSUER: 'http://127.0.0.1:1', OIDC_CLIENT_ID: 'x', OIDC_CLIENT_SECRET: 'x'.repeat(1001) });
  } catch (e) {
    message = (e as Error).message;
  }
  t.match(message, /OIDC_CLIENT_SECRET/);
  t.notMatch(message, /xxxx/, 'the secret is not in the error');
});

t.test('a process that cannot reach the provider logs why, and never the client secret', async (t) => {
  const dyno = await spawnApp(t, { RETHINKDB_URL: db.url, PORT: '0', LOG_LEVEL: 'debug', ANONYMOUS_ROOMS: '0', OIDC_ISSUER: idp.issuer, OIDC_CLIENT_ID: CLIENT_ID, OIDC_CLIENT_SECRET: CLIENT_SECRET, LOCAL_LOGIN: 'off' });
  t.equal((await new Agent(dyno.url).get('/auth/oidc/login')).status, 503);
  t.equal((await new Agent(dyno.url).login('root', 'a brand new passphrase')).status, 200, 'the owner gets in there too');
  const out = dyno.output();
  t.match(out, /provider discovery failed/);
  t.notOk(out.includes(CLIENT_SECRET), 'the secret is in no log line');
  t.notOk(out.includes(Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64')), 'nor its Basic form');
});

t.test('the provider back: its button works, without restarting the app', async (t) => {
  await idp.restart();
  idp.configure(app.url);
  const r = await new Agent(app.url).get('/auth/oidc/login');
  t.equal(r.status, 303, 'discovery was tried again');
  const to = new URL(r.headers.get('location') ?? '');
  t.equal(to.origin, idp.issuer, 'to the provider');
  t.equal(to.searchParams.get('code_challenge_method'), 'S256');
  t.ok(to.searchParams.get('state') && to.searchParams.get('nonce') && to.searchParams.get('code_challenge'), 'with state, nonce and a PKCE challenge');
  t.match(r.setCookies.join('\n'), /oidc_tx=[^;]+; Max-Age=600; Path=\/auth\/oidc; Expires=[^;]+; HttpOnly; SameSite=Lax/, 'the transaction in a short-lived HttpOnly cookie');
  const page = await new Agent(app.url).get('/login');
  t.notMatch(page.text, /name="password"/, 'the log-in page is still the button alone');
});
