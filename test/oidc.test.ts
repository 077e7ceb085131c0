// Single sign-on against a real OpenID provider (oidc-provider on loopback), in Chromium: the
// button, the provider's own log-in and consent pages, and back, signed in. Linking by a
// verified e-mail (never an owner's or admin's), roles from the claim at every sign-in, state
// and nonce tampered with on the way, a return in another browser, and a log-out that ends the
// local session and then the provider's.
import t from 'tap';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { createAccounts } from '../src/accounts/service.js';
import { createAccountStore } from '../src/accounts/store.js';
import { openPool } from '../src/db/pool.js';
import { CHROMIUM_ARGS, findChromium } from './fixtures/browser.js';
import { startApp, startDb, testLog } from './fixtures/chat.js';
import { Agent } from './fixtures/http.js';
import { CLIENT_ID, CLIENT_SECRET, providerLogin, startProvider } from './fixtures/oidc.js';

const executablePath = findChromium();
// Each sign-in runs the provider's pages in Chromium; on a busy machine the file takes minutes.
t.setTimeout(300_000);

if (!executablePath) {
  t.skip('single sign-on in a browser, because no Chromium was found (apt-get install chromium)', () => {});
} else {
  const db = await startDb(t);
  const idp = await startProvider(t);
  // The app starts while the issuer does not answer like a provider yet.
  const app = await startApp(t, db, {
    ANONYMOUS_ROOMS: '0',
    LOGIN_RATE_LIMIT_PER_ADDRESS: '1000',
    OIDC_ISSUER: idp.issuer,
    OIDC_CLIENT_ID: CLIENT_ID,
    OIDC_CLIENT_SECRET: CLIENT_SECRET,
    OIDC_SCOPES: 'openid email profile roles',
    OIDC_ROLES_CLAIM: 'resource_access.chat.roles',
    OIDC_ACCESS_VALUE: 'chat-user',
    OIDC_ADMIN_VALUE: 'chat-admin',
    OIDC_BUTTON: 'Log in with Test SSO',
  });
  idp.configure(app.url);
  const discovery = (await (await fetch(`${idp.issuer}/.well-known/openid-configuration`)).json()) as { authorization_endpoint: string; end_session_endpoint: string };

  // Local accounts, made through the account store the app uses.
  const pool = openPool(db.address, { log: testLog() });
  t.teardown(() => pool.close());
  await pool.waitHealthy(10_000);
  const store = createAccountStore(pool, db.dbName);
  const accounts = createAccounts({ store, log: testLog(), sessionDays: 30 });
  const local = async (username: string, role: 'owner' | 'admin' | 'member') => accounts.createUser({ username, displayName: username, email: `${username}@example.test`, password: 'correct horse battery' }, role);
  const olga = await local('olga', 'owner');
  await store.claimFirstOwner(olga.id);
  const adam = await local('adam', 'admin');
  const mona = await local('mona', 'member');
  await local('uma', 'member');

  const access = ['chat-user'];
  idp.accounts.set('kc-alice', { email: 'alice@example.test', email_verified: true, preferred_username: 'alice', name: 'Alice A', roles: access });
  idp.accounts.set('kc-mona', { email: 'MONA@example.test', email_verified: true, preferred_username: 'mona.k', roles: access });
  idp.accounts.set('kc-uma', { email: 'uma@example.test', email_verified: false, preferred_username: 'uma', roles: access });
  idp.accounts.set('kc-olga', { email: 'olga@example.test', email_verified: true, preferred_username: 'olga', roles: ['chat-user', 'chat-admin'] });
  idp.accounts.set('kc-adam', { email: 'adam@example.test', email_verified: true, preferred_username: 'adam', roles: access });
  idp.accounts.set('kc-nora', { email: 'nora@example.test', email_verified: true, preferred_username: 'nora', roles: ['another-app'] });
  idp.accounts.set('kc-bob', { email: 'bob@example.test', email_verified: true, preferred_username: 'mona', roles: ['chat-user', 'chat-admin'] });
  idp.accounts.set('kc-sneaky', { email: 'mona', email_verified: true, preferred_username: 'Renée Ü', roles: access });
  idp.accounts.set('kc-ulla', { email: 'ulla@example.test', email_verified: false, preferred_username: 'ulla', roles: access });

  const browser: Browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
  t.teardown(() => browser.close());
  const problems: string[] = [];

  async function person(name: string): Promise<{ context: BrowserContext; page: Page }> {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.on('pageerror', (e) => problems.push(`${name}: ${e.message}`));
    return { context, page };
  }
  /** The button on the log-in page, the provider's pages, and back to the app. */
  async function ssoSignIn(page: Page, id: string): Promise<void> {
    await page.goto(`${app.url}/login`);
    await Promise.all([page.waitForNavigation(), page.click('a.sso')]);
    await providerLogin(page, id);
  }
  const me = async (page: Page) => {
    const r = await page.request.get(`${app.url}/api/me`);
    return { status: r.status(), user: r.status() === 200 ? ((await r.json()) as { user: { id: string; username: string; role: string } }).user : undefined };
  };

  t.test('the log-in page has the provider\'s button and the local form', async (t) => {
    const { page, context } = await person('visitor');
    await page.goto(`${app.url}/login`);
    t.equal(await page.textContent('a.sso'), 'Log in with Test SSO');
    t.ok(await page.isVisible('input[name=password]'), 'local log-in is on');
    await context.close();
  });

  t.test('a first sign-in: the button, the provider\'s pages, back and signed in as a new member', async (t) => {
    const { page, context } = await person('alice');
    await page.goto(`${app.url}/login`);
    await page.click('a.sso');
    t.ok(page.url().startsWith(discovery.authorization_endpoint.replace(/\/auth$/, '/interaction/')), `at the provider's log-in page (${page.url()})`);
    await providerLogin(page, 'kc-alice');
    t.equal(page.url(), `${app.url}/`, 'back at the app');
    await page.waitForSelector('#conn[data-state="live"]');
    const { user } = await me(page);
    t.match(user, { username: 'alice', role: 'member' });
    const stored = await store.userByLogin('alice@example.test');
    t.equal(stored?.id, user?.id, 'the verified address is the account\'s');

    // The same person again: the same account, through the (issuer, subject) link.
    await page.request.post(`${app.url}/api/auth/logout`, { headers: { 'x-csrf-token': ((await (await page.request.get(`${app.url}/api/auth/csrf`)).json()) as { csrf: string }).csrf } });
    t.equal((await me(page)).status, 401);
    await ssoSignIn(page, 'kc-alice');
    t.equal((await me(page)).user?.id, user?.id, 'signed in to the same account');
    await context.close();

    // The link is the subject, not the address: a new address at the provider, same account.
    idp.accounts.set('kc-alice', { ...idp.accounts.get('kc-alice'), email: 'alice.new@example.test' });
    const later = await person('alice');
    await ssoSignIn(later.page, 'kc-alice');
    t.equal((await me(later.page)).user?.id, user?.id, 'a changed address at the provider: the same account');
    idp.accounts.set('kc-alice', { ...idp.accounts.get('kc-alice'), email: 'alice@example.test' });
    await later.context.close();
  });

  t.test('an existing member is linked by an e-mail address the provider verified', async (t) => {
    const { page, context } = await person('mona');
    await ssoSignIn(page, 'kc-mona');
    t.equal(page.url(), `${app.url}/`);
    t.match((await me(page)).user, { id: mona.id, username: 'mona', role: 'member' });
    await context.close();
  });

  t.test('an "e-mail" claim that is not an address is not looked up (it would find a username)', async (t) => {
    const { page, context } = await person('sneaky');
    await ssoSignIn(page, 'kc-sneaky');
    const { user } = await me(page);
    t.match(user, { username: 'Renee-U', role: 'member' }, 'a new account, its username cleaned from preferred_username');
    t.not(user?.id, mona.id, 'not mona\'s account');
    await context.close();
  });

  t.test('an address the provider did not verify links nothing', async (t) => {
    const { page, context } = await person('uma');
    await ssoSignIn(page, 'kc-uma');
    t.match(page.url(), /\/auth\/oidc\/callback\?/);
    t.match(await page.textContent('main'), /has not verified that address/);
    t.equal((await me(page)).status, 401, 'not signed in');
    // Without a local account of that address, an unverified one makes an account that does
    // not claim the address.
    const ulla = await person('ulla');
    await ssoSignIn(ulla.page, 'kc-ulla');
    t.match((await me(ulla.page)).user, { username: 'ulla', role: 'member' });
    t.equal(await store.userByLogin('ulla@example.test'), undefined, 'the unverified address is not taken');
    await ulla.context.close();
    await context.close();
  });

  t.test('an owner or admin account is never linked by e-mail alone', async (t) => {
    for (const id of ['kc-olga', 'kc-adam']) {
      const { page, context } = await person(id);
      await ssoSignIn(page, id);
      t.match(await page.textContent('main'), /never linked by e-mail alone/, id);
      t.equal((await me(page)).status, 401, `${id} is not signed in`);
      await context.close();
    }
    t.equal((await store.userById(olga.id))?.role, 'owner');
    t.equal((await store.userById(adam.id))?.role, 'admin');
  });

  t.test('without the access value in the claim: a clear refusal, no account', async (t) => {
    const { page, context } = await person('nora');
    await ssoSignIn(page, 'kc-nora');
    t.match(await page.textContent('main'), /does not give access to this workspace \(it needs "chat-user"/);
    t.equal((await me(page)).status, 401);
    t.equal(await store.userByLogin('nora@example.test'), undefined);
    await context.close();
  });

  t.test('roles come from the claim at every sign-in; a taken username is made unique', async (t) => {
    const bob = await person('bob');
    await ssoSignIn(bob.page, 'kc-bob');
    t.match((await me(bob.page)).user, { username: 'mona-2', role: 'admin' }, 'the admin value makes an admin');
    await bob.context.close();

    idp.accounts.set('kc-alice', { ...idp.accounts.get('kc-alice'), roles: ['chat-user', 'chat-admin'] });
    let a = await person('alice');
    await ssoSignIn(a.page, 'kc-alice');
    t.match((await me(a.page)).user, { username: 'alice', role: 'admin' }, 'given the admin value: admin');
    await a.context.close();
    idp.accounts.set('kc-alice', { ...idp.accounts.get('kc-alice'), roles: ['chat-user'] });
    a = await person('alice');
    await ssoSignIn(a.page, 'kc-alice');
    t.match((await me(a.page)).user, { username: 'alice', role: 'member' }, 'the admin value taken away: member again');
    await a.context.close();
    idp.accounts.set('kc-alice', { ...idp.accounts.get('kc-alice'), roles: [] });
    a = await person('alice');
    await ssoSignIn(a.page, 'kc-alice');
    t.match(await a.page.textContent('main'), /does not give access/, 'the access value taken away: refused');
    t.equal((await me(a.page)).status, 401);
    idp.accounts.set('kc-alice', { ...idp.accounts.get('kc-alice'), roles: ['chat-user'] });
    await a.context.close();
  });

  t.test('a state or nonce changed on the way is refused', async (t) => {
    for (const param of ['state', 'nonce']) {
      const { page, context } = await person(`forger-${param}`);
      // The app's redirect to the provider, with one parameter changed on its way.
      await page.route((u) => u.href === `${app.url}/auth/oidc/login`, async (route) => {
        const res = await route.fetch({ maxRedirects: 0 });
        const to = new URL(res.headers().location ?? '');
        t.ok(to.href.startsWith(`${discovery.authorization_endpoint}?`), `${param}: the app sends the browser to the provider`);
        t.ok(to.searchParams.get(param), `${param}: with a ${param}`);
        to.searchParams.set(param, 'forged-by-the-test');
        await route.fulfill({ response: res, headers: { ...res.headers(), location: to.href } });
      });
      await ssoSignIn(page, 'kc-alice');
      t.match(page.url(), /\/auth\/oidc\/callback\?/, `${param}: back at the callback`);
      t.match(await page.textContent('main'), /failed/, `${param}: refused`);
      t.equal((await me(page)).status, 401, `${param}: not signed in`);
      await context.close();
    }
  });

  t.test('a return is taken only in the browser that started it, and only once', async (t) => {
    const a = await person('alice');
    let callback = '';
    // The provider's last step (the consent form's POST) is run for the browser, following
    // the provider's redirects by hand up to the app's callback, which is kept, not visited
    // (a route does not see the hops of a redirect).
    const atProvider = (u: URL) => u.href.startsWith(`${idp.issuer}/interaction/`);
    await a.page.route(atProvider, async (route) => {
      if (route.request().method() !== 'POST' || !/prompt=consent/.test(route.request().postData() ?? '')) return route.continue();
      let res = await route.fetch({ maxRedirects: 0 });
      for (let hop = 0; hop < 5 && res.status() === 303; hop++) {
        const to = new URL(res.headers().location ?? '', idp.issuer);
        if (to.href.startsWith(`${app.url}/`)) {
          callback = to.href;
          break;
        }
        res = await a.page.request.get(to.href, { maxRedirects: 0 });
      }
      await route.fulfill({ status: 200, contentType: 'text/plain', body: 'stopped by the test' });
    });
    await a.page.goto(`${app.url}/login`);
    await Promise.all([a.page.waitForNavigation(), a.page.click('a.sso')]);
    await providerLogin(a.page, 'kc-alice');
    t.match(callback, /^[^#]*\/auth\/oidc\/callback\?.*code=/, 'the provider sent the browser back with a code');
    await a.page.unroute(atProvider);

    const other = await person('eve');
    await other.page.goto(callback);
    t.match(await other.page.textContent('main'), /this browser did not start it/, 'another browser is refused');
    t.equal((await me(other.page)).status, 401);

    await a.page.goto(callback);
    t.equal(a.page.url(), `${app.url}/`, 'the browser that started it signs in');
    t.match((await me(a.page)).user, { username: 'alice' });
    const again = await person('eve2');
    await again.page.goto(callback);
    t.equal((await me(again.page)).status, 401, 'a replay is refused');
    await Promise.all([a.context.close(), other.context.close(), again.context.close()]);
  });

  t.test('log-out ends the local session, then goes to the provider\'s end-session endpoint', async (t) => {
    const { page, context } = await person('alice');
    await ssoSignIn(page, 'kc-alice');
    t.equal((await me(page)).status, 200);
    await page.goto(`${app.url}/account`);
    await page.click('form[action="/logout"] button');
    await page.waitForURL((u) => u.href.startsWith(discovery.end_session_endpoint));
    t.pass(`at the provider's end-session endpoint (${discovery.end_session_endpoint})`);
    t.equal((await me(page)).status, 401, 'the local session has ended');
    await page.click('button[name=logout][value=yes]');
    await page.waitForURL(`${app.url}/login`);
    t.pass('back at the app\'s log-in page');
    await page.click('a.sso');
    t.ok(await page.isVisible('input[name=login]'), 'the provider asks for the log-in again: its session ended too');
    await context.close();
  });

  t.test('a password session\'s log-out stays here', async (t) => {
    const a = new Agent(app.url);
    t.equal((await a.login('olga')).status, 200);
    const csrf = await a.csrf();
    const out = await a.request('POST', '/logout', { form: { _csrf: csrf } });
    t.equal(out.status, 303);
    t.equal(out.headers.get('location'), '/login');
  });

  t.test('no page errors', async (t) => {
    t.same(problems, []);
  });
}
