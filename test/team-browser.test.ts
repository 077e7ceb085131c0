// The team chat page in headless Chromium, walking the flows: the first visitor signs up and
// owns the workspace; a second person joins by an invitation link; a private group is made,
// the second person added, and they talk; a third person finds the group in no list and
// reads none of it by any URL or frame; a guest sees only the room they were added to.
import t from 'tap';
import { findChromium, CHROMIUM_ARGS } from './fixtures/browser.js';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startApp, startDb } from './fixtures/chat.js';
import { Agent } from './fixtures/http.js';

const executablePath = findChromium();

if (!executablePath) {
  t.skip('the team page in a browser, because no Chromium was found (apt-get install chromium)', () => {});
} else {
  const db = await startDb(t);
  const app = await startApp(t, db, { ANONYMOUS_ROOMS: '0', SIGNUP_RATE_LIMIT_PER_ADDRESS: '1000', LOGIN_RATE_LIMIT_PER_ADDRESS: '1000' });
  const browser: Browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
  t.teardown(() => browser.close());
  const problems: string[] = [];

  async function person(name: string): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
    const page = await context.newPage();
    page.on('pageerror', (e) => problems.push(`${name}: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' && !/404|403|409/.test(m.text())) problems.push(`${name}: ${m.text()}`);
    });
    return page;
  }
  async function signUp(page: Page, path: string, username: string): Promise<void> {
    await page.goto(`${app.url}${path}`);
    await page.fill('input[name=username]', username);
    await page.fill('input[name=displayName]', username[0].toUpperCase() + username.slice(1));
    await page.fill('input[name=email]', `${username}@example.test`);
    await page.fill('input[name=password]', 'correct horse battery');
    await page.click('button[type=submit]');
    await page.waitForSelector('#conn[data-state="live"]');
  }
  async function invite(page: Page, asGuest = false): Promise<string> {
    await page.click('#invite');
    if (asGuest) await page.check('dialog input[name=guest]');
    await page.click('dialog button[type=submit]');
    const link = await page.waitForSelector('#invite-link');
    const url = await link.inputValue();
    await page.click('dialog button.secondary');
    return new URL(url).pathname + new URL(url).search;
  }
  const sidebarNames = (page: Page) => page.$$eval('#sidebar .room-name', (els) => els.map((e) => e.textContent ?? ''));

  const ann = await person('ann');
  const bob = await person('bob');
  const cat = await person('cat');
  const gil = await person('gil');
  let groupId = '';

  t.test('the first visitor signs up and owns the workspace', async (t) => {
    await ann.goto(`${app.url}/signup`);
    t.match(await ann.textContent('main'), /You are the first here/);
    await signUp(ann, '/signup', 'ann');
    t.match((await ann.evaluate(() => fetch('/api/me').then((r) => r.json()))) as object, { user: { role: 'owner' } });
    t.ok(await ann.isVisible('#invite'), 'an owner can invite people');
  });

  t.test('a private group, a second person by invitation, added, and they talk', async (t) => {
    await ann.click('#new-room');
    await ann.fill('dialog input[name=name]', 'secret plans');
    await ann.check('dialog input[name=private]');
    await ann.click('dialog button[type=submit]');
    await ann.waitForFunction(() => document.getElementById('room-name')?.textContent?.includes('secret plans'));
    groupId = new URL(ann.url()).searchParams.get('room') ?? '';
    t.match(groupId, /^[0-9a-f-]{36}$/);
    const link = await invite(ann);
    await signUp(bob, link, 'bob');
    t.notOk((await sidebarNames(bob)).some((n) => n.includes('secret plans')), 'before being added, bob does not see the group');
    await ann.click('#add-people');
    await ann.check('dialog input[name=person]');
    await ann.click('dialog button[type=submit]');
    await bob.waitForFunction(() => [...document.querySelectorAll('#sidebar .room-name')].some((e) => e.textContent?.includes('secret plans')));
    t.pass('added: the group appears in bob\'s sidebar at once');
    await bob.click('#sidebar .room-link:has-text("secret plans")');
    await bob.fill('#body', 'hello from bob');
    await bob.press('#body', 'Enter');
    await ann.waitForSelector('#messages .msg .body:text("hello from bob")');
    await ann.fill('#body', 'hi bob, welcome');
    await ann.press('#body', 'Enter');
    await bob.waitForSelector('#messages .msg .body:text("hi bob, welcome")');
    t.pass('they talk');
  });

  t.test('edit, react and delete, live; older pages by scrolling up; a permalink', async (t) => {
    const mine = '#messages .msg.mine:has(.body:text("hi bob, welcome"))';
    await ann.hover(mine);
    await ann.click(`${mine} .actions button[aria-label="Edit"]`);
    await ann.fill('dialog textarea[name=body]', 'hi bob, **welcome**');
    await ann.click('dialog button[type=submit]');
    await bob.waitForSelector('#messages .msg:has(.body strong:text("welcome")) .edited');
    t.pass('an edit reaches the other person at once, marked (edited)');

    const hers = '#messages .msg:has(.body strong:text("welcome"))';
    await bob.hover(hers);
    await bob.click(`${hers} .actions button[aria-label="React with 👍"]`);
    await ann.waitForSelector(`${hers} .reaction[data-emoji="👍"]:text("👍 1")`);
    t.pass('a reaction shows, with its count, on the other side');
    await bob.click(`${hers} .reaction[data-emoji="👍"]`);
    await ann.waitForSelector(`${hers} .reaction`, { state: 'detached' });
    t.pass('and goes when taken back');

    bob.once('dialog', (d) => void d.accept());
    const his = '#messages .msg.mine:has(.body:text("hello from bob"))';
    await bob.hover(his);
    await bob.click(`${his} .actions button[aria-label="Delete"]`);
    await ann.waitForSelector('#messages .msg.deleted .body:text("message deleted")');
    t.notOk(await ann.isVisible('#messages .body:text("hello from bob")'), 'deleted: its text is gone from the other page');

    // A long channel: the newest page first, older ones by scrolling up, to the first message.
    const sid = (await ann.context().cookies()).find((c) => c.name === 'sid')?.value ?? '';
    const asAnn = new Agent(app.url);
    asAnn.cookies.set('sid', sid);
    const longRoom = (await asAnn.post('/api/rooms', { kind: 'channel', name: 'long' })).json<{ room: { id: string } }>().room.id;
    const ids: string[] = [];
    for (let i = 0; i < 130; i++) ids.push((await asAnn.post(`/api/rooms/${longRoom}/messages`, { body: `long #${i}` })).json<{ message: { id: string } }>().message.id);
    const long = { room: longRoom, ids };
    await ann.goto(`${app.url}/?room=${long.room}`);
    await ann.waitForSelector('#messages .msg .body:text("long #129")');
    t.notOk(await ann.isVisible('#messages .body:text-is("long #0")'), 'the oldest is not loaded at first');
    for (let i = 0; i < 10 && !(await ann.$('#messages .body:text-is("long #0")')); i++) {
      await ann.evaluate(() => {
        const list = document.getElementById('messages')!;
        list.scrollTop = 0;
        list.dispatchEvent(new Event('scroll'));
      });
      await ann.waitForTimeout(300);
    }
    t.ok(await ann.$('#messages .body:text-is("long #0")'), 'scrolling up reaches the first message');
    const order = await ann.$$eval('#messages .msg .body', (els) => els.map((e) => e.textContent ?? '').filter((x) => x.startsWith('long #')));
    t.same(order, Array.from({ length: 130 }, (_, i) => `long #${i}`), 'every message once, in order');

    const sidBob = (await bob.context().cookies()).find((c) => c.name === 'sid')?.value ?? '';
    const asBob = new Agent(app.url);
    asBob.cookies.set('sid', sidBob);
    await asBob.post(`/api/rooms/${long.room}/join`);
    await bob.goto(`${app.url}/?room=${long.room}&message=${long.ids[10]}`);
    await bob.waitForSelector('#messages .msg.linked .body:text-is("long #10")');
    t.ok(await bob.isVisible('#messages .body:text-is("long #5")') && (await bob.$('#messages .body:text-is("long #15")')) !== null, 'a permalink opens the room there, with context on both sides');
    await ann.goto(`${app.url}/?room=${groupId}`);
    await bob.goto(`${app.url}/?room=${groupId}`);
    await ann.waitForSelector('#conn[data-state="live"]');
    await bob.waitForSelector('#conn[data-state="live"]');
  });

  t.test('a thread beside the room, typing, who is online, a mention badge, levels and notifications', async (t) => {
    const welcome = '#messages .msg:has(.body strong:text("welcome"))';
    await bob.hover(welcome);
    await bob.click(`${welcome} .actions button[aria-label="Reply in thread"]`);
    await bob.waitForSelector('#thread:not([hidden]) .thread-start .body strong:text("welcome")');
    await bob.fill('#thread textarea', 'a reply in the thread');
    await bob.press('#thread textarea', 'Enter');
    await bob.waitForSelector('#thread .thread-replies .msg:not(.pending) .body:text("a reply in the thread")');
    await ann.waitForSelector(`${welcome} .thread-link:text("1 reply")`);
    t.notOk(await ann.$('#messages .body:text("a reply in the thread")'), 'the reply is not in the room');
    await ann.click(`${welcome} .thread-link`);
    await ann.waitForSelector('#thread .thread-replies .body:text("a reply in the thread")');
    t.pass('the reply count moved live, and the thread opens beside the room');
    await ann.click('#thread .thread-close');

    await ann.waitForFunction(() => /2 online/.test(document.getElementById('room-members')?.textContent ?? ''));
    t.pass('the header counts who is online');
    await ann.click('#room-settings');
    await ann.waitForSelector('dialog .member-list li');
    t.equal(await ann.$$eval('dialog .member-list .presence.online', (els) => els.length), 2, 'the member list shows both online');
    await ann.keyboard.press('Escape');
    await ann.waitForSelector('dialog[open]', { state: 'detached' }).catch(() => undefined);
    await bob.type('#body', 'typing…');
    await ann.waitForSelector('#typing:text("Bob is typing")');
    t.pass('the other side sees who is typing');
    await bob.fill('#body', '');

    // In another room, ann gets a mention badge for the group.
    await ann.click('#sidebar .room-link:has-text("long")');
    await ann.waitForSelector('#messages .msg .body:text("long #129")');
    await bob.fill('#body', 'hey @ann, a look?');
    await bob.press('#body', 'Enter');
    await ann.waitForSelector('#sidebar .room-link:has-text("secret plans") .badge.mention:text("@1")');
    t.pass('a mention badge, apart from the unread count');

    // Notifications while the tab is hidden, as the room's level asks.
    await ann.context().grantPermissions(['notifications'], { origin: app.url });
    await ann.addInitScript({ content: 'window.__notes = []; const N = window.Notification; window.Notification = class extends N { constructor(title, o) { super(title, o); window.__notes.push(title); } };' });
    await ann.goto(`${app.url}/?room=${groupId}`);
    await ann.waitForSelector('#conn[data-state="live"]');
    await ann.selectOption('#room-level', 'none');
    await ann.waitForFunction(() => (document.getElementById('room-level') as HTMLSelectElement | null)?.value === 'none');
    // A string: a function here would carry tsx's __name helper into the page.
    await ann.evaluate('Object.defineProperty(document, "hidden", { configurable: true, get: () => true })');
    await bob.fill('#body', 'while ann is muted');
    await bob.press('#body', 'Enter');
    await ann.waitForSelector('#messages .body:text("while ann is muted")');
    await ann.selectOption('#room-level', 'all');
    await ann.waitForTimeout(300);
    await bob.fill('#body', 'now she hears it');
    await bob.press('#body', 'Enter');
    await ann.waitForFunction(() => ((window as unknown as { __notes?: string[] }).__notes?.length ?? 0) > 0);
    const notes = () => ann.evaluate(() => (window as unknown as { __notes?: string[] }).__notes);
    t.same(await notes(), ['Bob in secret plans'], 'one notification: not while muted, and never for her own');
    await ann.fill('#body', 'my own message');
    await ann.press('#body', 'Enter');
    await ann.waitForSelector('#messages .msg.mine:not(.pending) .body:text("my own message")');
    t.same(await notes(), ['Bob in secret plans'], 'still one after her own message');
    await ann.evaluate(() => delete (document as unknown as { hidden?: boolean }).hidden);
    await ann.selectOption('#room-level', '');
  });

  t.test('a third person finds the group in no list and reads none of it by any URL or frame', async (t) => {
    const link = await invite(ann);
    await signUp(cat, link, 'cat');
    t.notOk((await sidebarNames(cat)).some((n) => n.includes('secret plans')), 'not in the sidebar');
    const channels = (await cat.evaluate(() => fetch('/api/channels').then((r) => r.json()))) as { channels: Array<{ name: string }> };
    t.notOk(channels.channels.some((c) => c.name === 'secret plans'), 'not among the channels to browse');
    for (const path of [`/api/rooms/${groupId}`, `/api/rooms/${groupId}/messages`, `/api/rooms/${groupId}/members`]) {
      const status = await cat.evaluate((p) => fetch(p).then((r) => r.status), path);
      t.equal(status, 404, `GET ${path.replace(groupId, ':id')}: 404, as a room that does not exist`);
    }
    await cat.goto(`${app.url}/?room=${groupId}`);
    await cat.waitForSelector('#conn[data-state="live"]');
    t.notMatch((await cat.textContent('#room-name')) ?? '', /secret plans/, 'the URL opens nothing');
    const frame = await cat.evaluate(
      (room) =>
        new Promise((resolve) => {
          const P = (window as unknown as { Primus: new (url: string) => { on(e: string, f: (d: unknown) => void): void; write(d: unknown): void } }).Primus;
          const p = new P(location.origin);
          p.on('open', () => {
            p.write({ type: 'hello', protocol: 2 });
            p.write({ type: 'joinRoom', room });
            p.write({ type: 'createMessage', message: { id: crypto.randomUUID(), room, body: 'sneaking in' } });
          });
          const seen: unknown[] = [];
          p.on('data', (d) => {
            const f = d as { type: string };
            if (f.type === 'error') seen.push(d);
            if (seen.length === 2) resolve(seen);
            if (f.type === 'joined' || f.type === 'deliverMessage') resolve(['LEAK', d]);
          });
        }),
      groupId,
    );
    t.match(frame, [{ type: 'error', code: 'not_found' }, { type: 'error', code: 'not_found' }], 'the socket answers not_found to joining and to posting');
    await ann.waitForTimeout(300);
    t.notOk(await ann.isVisible('#messages .msg .body:text("sneaking in")'), 'nothing was posted');
  });

  t.test('a guest sees only the room they were added to', async (t) => {
    await ann.click('#new-room');
    await ann.fill('dialog input[name=name]', 'client-x');
    await ann.click('dialog button[type=submit]');
    await ann.waitForFunction(() => document.getElementById('room-name')?.textContent?.includes('client-x'));
    const link = await invite(ann, true);
    await signUp(gil, link, 'gil');
    t.same(await sidebarNames(gil), [], 'a guest starts in no room');
    t.notOk(await gil.isVisible('#browse'), 'and cannot browse channels');
    await ann.click('#add-people');
    await ann.check('dialog label:has-text("Gil") input');
    await ann.click('dialog button[type=submit]');
    await gil.waitForFunction(() => document.querySelectorAll('#sidebar .room-name').length === 1);
    t.same(await sidebarNames(gil), ['# client-x'], 'then only that room');
    const users = (await gil.evaluate(() => fetch('/api/users').then((r) => r.json()))) as { users: Array<{ username: string }> };
    t.same(users.users.map((u) => u.username).sort(), ['ann', 'gil'], 'and only the people in it');
  });

  t.test('the admin page: roles, registration, default channels', async (t) => {
    await ann.click('#admin-link');
    await ann.waitForSelector('#users tr[data-user="bob"] select[name=role]');
    await ann.selectOption('#users tr[data-user="bob"] select[name=role]', 'admin');
    await ann.waitForSelector('#users tr[data-user="bob"][data-role="admin"]');
    const bobNow = (await bob.evaluate(() => fetch('/api/me').then((r) => r.json()))) as { user: { role: string } };
    t.equal(bobNow.user.role, 'admin', 'bob is an admin now');
    await ann.selectOption('#users tr[data-user="ann"] select[name=role]', 'member');
    await ann.waitForSelector('#notice:not([hidden])');
    t.match(await ann.textContent('#notice'), /last owner/, 'the last owner cannot be demoted, and the page says so');
    t.equal(await ann.inputValue('#users tr[data-user="ann"] select[name=role]'), 'owner', 'and shows the role unchanged');
    await ann.selectOption('#workspace select[name=registration]', 'open');
    await ann.click('#workspace button[type=submit]');
    await ann.waitForSelector('#workspace[data-saved="open"]');
    const ws = (await ann.evaluate(() => fetch('/api/workspace').then((r) => r.json()))) as { workspace: { registration: string } };
    t.equal(ws.workspace.registration, 'open');
    await ann.check('#channels tr:has-text("client-x") input[name=default]');
    await ann.waitForTimeout(300);
    const chans = (await ann.evaluate(() => fetch('/api/channels').then((r) => r.json()))) as { channels: Array<{ name: string; isDefault: boolean }> };
    t.ok(chans.channels.find((c) => c.name === 'client-x')?.isDefault, 'client-x is a default channel');
    const forbidden = await cat.goto(`${app.url}/admin`);
    t.equal(forbidden?.status(), 403, 'a member gets no admin page');
  });

  t.test('room settings: rename and topic by its owner, read-only for others, removing someone', async (t) => {
    await ann.goto(`${app.url}/`);
    await ann.click('#sidebar .room-link:has-text("client-x")');
    await ann.waitForFunction(() => document.getElementById('room-name')?.textContent?.includes('client-x'));
    await ann.click('#room-settings');
    await ann.fill('dialog input[name=name]', 'client-x2');
    await ann.fill('dialog input[name=topic]', 'for the client');
    await ann.click('dialog button[type=submit]');
    await ann.waitForFunction(() => document.getElementById('room-name')?.textContent?.includes('client-x2') && document.getElementById('room-topic')?.textContent === 'for the client');
    const stored = (await ann.evaluate(() => fetch('/api/channels').then((r) => r.json()))) as { channels: Array<{ name: string; topic: string }> };
    t.ok(stored.channels.some((c) => c.name === 'client-x2' && c.topic === 'for the client'), 'renamed, with its topic, through the API');

    await gil.reload();
    await gil.click('#sidebar .room-link:has-text("client-x2")');
    await gil.click('#room-settings');
    t.ok(await gil.isDisabled('dialog input[name=name]'), 'a guest sees the settings, read-only');
    t.notOk(await gil.isVisible('dialog button:text("Delete room")'), 'and no delete');
    await gil.click('dialog button:text("Cancel")');

    ann.once('dialog', (d) => void d.accept());
    await ann.click('#room-settings');
    await ann.click('dialog li:has-text("Gil") button:text("Remove")');
    await gil.waitForFunction(() => document.querySelectorAll('#sidebar .room-name').length === 0);
    t.match(await gil.textContent('#empty'), /no longer in this room/, 'removed: the guest\'s page says so at once');
  });

  t.test('a session ended elsewhere: the page asks to log in again', async (t) => {
    await cat.goto(`${app.url}/`);
    await cat.waitForSelector('#conn[data-state="live"]');
    const other = await person('cat on another device');
    await other.goto(`${app.url}/login`);
    await other.fill('input[name=login]', 'cat');
    await other.fill('input[name=password]', 'correct horse battery');
    await other.click('button[type=submit]');
    await other.waitForSelector('#conn[data-state="live"]');
    await other.evaluate(() => fetch('/api/auth/logout-everywhere', { method: 'POST', headers: { 'x-csrf-token': document.querySelector<HTMLMetaElement>('meta[name="csrf"]')!.content } }).then((r) => r.status));
    await cat.waitForSelector('#notice:not([hidden]) a[href="/login"]', { timeout: 5000 });
    t.match(await cat.textContent('#notice'), /session has ended/);
    t.ok(await cat.isDisabled('#body'), 'and the composer is off');
  });

  t.test('no script errors on the team page', async (t) => {
    t.same(problems, []);
  });
}
