// A message's permalink in headless Chromium, for someone who is not in its room. A public
// channel opens as a read-only preview at the message, with context on both sides, marked,
// live, and a Join button instead of the composer; joining makes it a normal room. For a
// guest, or for a private group one is not in, the page answers exactly as for a made-up id:
// the message was not found, and the first room of the sidebar opens.
import t from 'tap';
import { chromium, type Browser, type Page } from 'playwright-core';
import { findChromium, CHROMIUM_ARGS } from './fixtures/browser.js';
import { startApp, startDb } from './fixtures/chat.js';
import { Agent } from './fixtures/http.js';
import type { WireMessage } from '../src/chat/wire.js';

const executablePath = findChromium();

if (!executablePath) {
  t.skip('permalinks in a browser, because no Chromium was found (apt-get install chromium)', () => {});
} else {
  const db = await startDb(t);
  const app = await startApp(t, db, { ANONYMOUS_ROOMS: '0', SIGNUP_RATE_LIMIT_PER_ADDRESS: '1000', LOGIN_RATE_LIMIT_PER_ADDRESS: '1000' });

  // Ann owns the workspace; Bob and Cat are members, Gil a guest.
  const ann = new Agent(app.url);
  await ann.signup({ username: 'ann', displayName: 'Ann' });
  async function invited(username: string, role: 'member' | 'guest'): Promise<Agent> {
    const { invite } = (await ann.post('/api/invites', { maxUses: 1, role })).json<{ invite: { path: string } }>();
    const agent = new Agent(app.url);
    const res = await agent.signup({ username, displayName: username[0].toUpperCase() + username.slice(1), invite: new URL(invite.path, app.url).searchParams.get('invite') ?? '' });
    if (res.status !== 201) throw new Error(`sign-up of ${username}: ${res.status} ${res.text}`);
    return agent;
  }
  const bob = await invited('bob', 'member');
  const cat = await invited('cat', 'member');
  const gil = await invited('gil', 'guest');
  const roomOf = async (who: Agent, kind: 'channel' | 'group', name: string) => (await who.post('/api/rooms', { kind, name })).json<{ room: { id: string } }>().room.id;
  const post = async (who: Agent, room: string, body: string) => (await who.post(`/api/rooms/${room}/messages`, { body })).json<{ message: WireMessage }>().message;

  // A public channel longer than the page the room opens with (its newest 100).
  const long = await roomOf(ann, 'channel', 'long');
  const ids: string[] = [];
  for (let i = 0; i < 160; i++) ids.push((await post(ann, long, `long #${i}`)).id);
  const old = ids[30];
  // A thread on the linked message: its replies stay out of the room.
  await ann.post(`/api/rooms/${long}/messages`, { body: 'a reply in the thread', thread: old });
  const secret = await roomOf(ann, 'group', 'secret plans');
  const secretMessage = await post(ann, secret, 'the secret itself');
  // Cat's and Gil's first rooms: where a link that finds nothing leaves them.
  const cats = await roomOf(cat, 'channel', 'cats');
  await post(cat, cats, 'meow');
  const lobby = await roomOf(ann, 'group', 'lobby');
  await ann.post(`/api/rooms/${lobby}/members`, { userId: (await gil.get('/api/me')).json<{ user: { id: string } }>().user.id });
  await post(ann, lobby, 'welcome, Gil');

  const browser: Browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
  t.teardown(() => browser.close());
  const problems: string[] = [];
  async function pageOf(name: string, agent: Agent): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
    await context.addCookies([{ name: 'sid', value: agent.cookies.get('sid') ?? '', url: app.url }]);
    const page = await context.newPage();
    page.on('pageerror', (e) => problems.push(`${name}: ${e.message}`));
    // The not-found answers are 404s, which Chromium logs; anything else is a problem.
    page.on('console', (m) => {
      if (m.type() === 'error' && !/status of 404/.test(m.text())) problems.push(`${name}: ${m.text()}`);
    });
    return page;
  }
  const link = (room: string, message: string) => `${app.url}/?room=${room}&message=${message}`;
  const bodies = (page: Page) => page.$$eval('#messages .msg .body', (els) => els.map((e) => e.textContent ?? ''));
  const sidebarNames = (page: Page) => page.$$eval('#sidebar .room-name', (els) => els.map((e) => e.textContent ?? ''));

  t.test('a public channel one is not in: a preview at the message, live, and Join', async (t) => {
    const page = await pageOf('bob', bob);
    await page.goto(link(long, old));
    const marked = await page.waitForSelector('#messages .msg.linked');
    t.equal(await marked.getAttribute('data-id'), old, 'the linked message is shown and marked');
    t.equal(await page.textContent('#room-name'), '#long', 'in its channel');
    const shown = await bodies(page);
    const at = shown.indexOf('long #30');
    t.ok(at >= 10, 'shown with what came before it');
    t.same(shown.slice(at - 10, at), Array.from({ length: 10 }, (_, i) => `long #${20 + i}`), 'the ten messages before it, in order');
    t.same(shown.slice(at + 1, at + 11), Array.from({ length: 10 }, (_, i) => `long #${31 + i}`), 'and the ten after it');
    t.ok(await page.isVisible('#join'), 'a Join button');
    t.notOk(await page.isVisible('#compose'), 'no composer');
    t.notOk(await page.isVisible('#room-settings'), 'no settings');
    t.equal(await page.$$eval('#messages .msg .actions [aria-label^="React"]', (els) => els.length), 0, 'nothing to react with: read-only');
    t.notOk((await sidebarNames(page)).some((n) => n.includes('long')), 'not in the sidebar');
    await page.waitForFunction(() => /^1 member\b/.test(document.querySelector('#room-members')?.textContent ?? ''));
    t.pass('the header counts the one member, Ann');
    await page.click('#messages .msg.linked .thread-link');
    await page.waitForSelector('#thread .thread-replies .body:text-is("a reply in the thread")');
    t.notOk(await page.isVisible('#thread form'), "the thread's replies can be read, but there is no reply box");
    t.notOk(await page.isVisible('#thread .thread-follow'), 'and no Follow');
    await page.click('#thread .thread-close');

    await post(ann, long, 'while Bob previews');
    await page.waitForSelector('#messages .msg .body:text-is("while Bob previews")');
    t.pass('a message posted meanwhile arrives live in the preview');

    await page.click('#join');
    await page.waitForSelector('#compose', { state: 'visible' });
    t.notOk(await page.isVisible('#join-bar'), 'joined: the Join button is gone, the composer is there');
    await page.waitForFunction(() => /^2 members\b/.test(document.querySelector('#room-members')?.textContent ?? ''));
    t.pass('the header counts Bob too');
    await page.waitForFunction(() => [...document.querySelectorAll('#sidebar .room-name')].some((e) => e.textContent?.includes('long')));
    t.pass('the channel is in the sidebar');
    t.equal(await page.getAttribute('#messages .msg.linked', 'data-id'), old, 'still at the linked message');
    t.ok(await page.$('#messages .msg .actions [aria-label^="React"]'), 'the messages have their actions');
    await post(ann, long, 'after Bob joined');
    await page.waitForSelector('#messages .msg .body:text-is("after Bob joined")');
    t.pass("Ann's next message arrives live");
    await page.fill('#body', 'hello from Bob');
    await page.press('#body', 'Enter');
    await page.waitForSelector('#messages .msg.mine:not(.pending) .body:text-is("hello from Bob")');
    const newest = (await ann.get(`/api/rooms/${long}/messages?limit=3`)).json<{ messages: WireMessage[] }>().messages;
    t.ok(newest.some((m) => m.body === 'hello from Bob' && typeof m.author === 'object' && m.author.name === 'Bob'), 'and Bob posts there');
    await page.context().close();
  });

  /** What the page shows for a link: the notice, the room it opened, whether one can write. */
  async function answer(page: Page, url: string): Promise<{ notice: string; room: string; composer: boolean; bodies: string[] }> {
    await page.goto(url);
    await page.waitForSelector('#conn[data-state="live"]');
    await page.waitForSelector('#notice:not([hidden])');
    await page.waitForSelector('#messages .msg');
    return { notice: (await page.textContent('#notice')) ?? '', room: (await page.textContent('#room-name')) ?? '', composer: (await page.isVisible('#compose')) && !(await page.isDisabled('#body')), bodies: await bodies(page) };
  }
  const madeUp = () => link(crypto.randomUUID(), crypto.randomUUID());

  t.test('a private group one is not in: not found, as a made-up id', async (t) => {
    const page = await pageOf('cat', cat);
    const group = await answer(page, link(secret, secretMessage.id));
    const none = await answer(page, madeUp());
    const noMessage = await answer(page, link(cats, crypto.randomUUID()));
    t.match(group, { notice: 'That message was not found.', room: '#cats', composer: true }, 'the notice, on the first room, which one can write in');
    t.same(group, none, 'exactly as for a room that does not exist');
    t.same(noMessage, none, 'and as for a message that does not exist in a room of hers');
    t.notOk(group.bodies.some((b) => b.includes('secret')), 'nothing of the group shows');
    t.ok(group.bodies.includes('meow') && !(await page.isVisible('#join')), 'her own room, no Join button');
    const status = async (path: string) => {
      const r = await cat.get(path);
      return { status: r.status, body: r.text };
    };
    t.same(await status(`/api/rooms/${secret}`), await status(`/api/rooms/${crypto.randomUUID()}`), 'the API answers the same for both');
    await page.context().close();
  });

  t.test('a guest and a public channel: not found, as a made-up id', async (t) => {
    const page = await pageOf('gil', gil);
    const channel = await answer(page, link(long, old));
    const none = await answer(page, madeUp());
    t.match(channel, { notice: 'That message was not found.', room: '🔒 lobby', composer: true }, 'the notice, on the room the guest is in');
    t.same(channel, none, 'exactly as for a made-up id');
    t.notOk(channel.bodies.some((b) => b.startsWith('long #')), 'nothing of the channel shows');
    await page.context().close();
  });

  t.test('no script errors', async (t) => {
    t.same(problems, []);
  });
}
