// The search box in headless Chromium: type a prefix, see the result with its word marked, its
// room and author; click it and land on the message in its room (the permalink); a reply kept
// in its thread opens its thread.
import t from 'tap';
import { chromium, type Browser } from 'playwright-core';
import { findChromium, CHROMIUM_ARGS } from './fixtures/browser.js';
import { startApp, startDb } from './fixtures/chat.js';
import { Agent } from './fixtures/http.js';
import type { WireMessage } from '../src/chat/wire.js';

const executablePath = findChromium();

if (!executablePath) {
  t.skip('the search box in a browser, because no Chromium was found (apt-get install chromium)', () => {});
} else {
  const db = await startDb(t);
  const app = await startApp(t, db, { ANONYMOUS_ROOMS: '0', SIGNUP_RATE_LIMIT_PER_ADDRESS: '1000', LOGIN_RATE_LIMIT_PER_ADDRESS: '1000' });
  const ann = new Agent(app.url);
  await ann.signup({ username: 'ann', displayName: 'Ann' });
  const other = (await ann.post('/api/rooms', { kind: 'channel', name: 'aaa-first' })).json<{ room: { id: string } }>().room.id;
  const ops = (await ann.post('/api/rooms', { kind: 'channel', name: 'ops' })).json<{ room: { id: string } }>().room.id;
  const post = async (room: string, body: string, extra: { thread?: string } = {}) => (await ann.post(`/api/rooms/${room}/messages`, { body, ...extra })).json<{ message: WireMessage }>().message;
  await post(other, 'nothing here');
  for (let i = 0; i < 5; i++) await post(ops, `filler before ${i}`);
  const target = await post(ops, 'The deployment of the café service is done');
  for (let i = 0; i < 60; i++) await post(ops, `filler after ${i}`);
  const start = await post(ops, 'numbers for the quarter');
  const reply = await post(ops, 'a quarterly budgetary review', { thread: start.id });

  const browser: Browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
  t.teardown(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  await context.addCookies([{ name: 'sid', value: ann.cookies.get('sid') ?? '', url: app.url }]);
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('response', (res) => {
    if (res.status() >= 404 && !new URL(res.url()).pathname.endsWith('favicon.ico')) problems.push(`${res.status()} ${new URL(res.url()).pathname}`);
  });
  page.on('console', (m) => {
    // The page's own requests are checked below; the browser's favicon.ico is none of them.
    if (m.type() === 'error' && !/status of (400|404)/.test(m.text())) problems.push(m.text());
  });
  // The sidebar's first room is another one: the click must open the result's room.
  await page.goto(app.url);
  await page.waitForSelector('#conn[data-state="live"]');

  t.test('type, see the marked result, click, land on the message', async (t) => {
    await page.fill('#search-q', 'deplo cafe');
    await page.press('#search-q', 'Enter');
    await page.waitForSelector('#search-results .search-result mark');
    t.same(await page.$$eval('#search-results .search-result mark', (els) => els.map((e) => e.textContent)), ['deployment', 'café']);
    t.equal(await page.textContent('#search-results .search-room'), '#ops');
    t.equal(await page.textContent('#search-results .search-author'), 'Ann');
    t.match(await page.textContent('#search-results .search-status'), /1 result/);
    await page.click('#search-results .search-link');
    await page.waitForURL((u) => u.searchParams.get('message') === target.id);
    const linked = await page.waitForSelector('#messages .msg.linked');
    t.equal(await linked.getAttribute('data-id'), target.id, 'the message is shown, marked, in its room');
    t.match(await page.textContent('#room-name'), /ops/);
  });

  t.test('a reply kept in its thread opens in its thread', async (t) => {
    await page.fill('#search-q', 'budget');
    await page.press('#search-q', 'Enter');
    await page.waitForFunction(() => document.querySelector('#search-results .search-body')?.textContent?.includes('budgetary') ?? false);
    t.match(await page.textContent('#search-results .search-result'), /in a thread/);
    await page.click('#search-results .search-link');
    await page.waitForURL((u) => u.searchParams.get('reply') === reply.id);
    await page.waitForFunction(() => {
      const pane = document.querySelector<HTMLElement>('#thread');
      return Boolean(pane && !pane.hidden && pane.textContent?.includes('a quarterly budgetary review'));
    });
    t.match(await page.textContent('#thread .thread-start'), /numbers for the quarter/);
  });

  t.test('a bad query says why, nothing found says so', async (t) => {
    await page.fill('#search-q', 'has:cake');
    await page.press('#search-q', 'Enter');
    await page.waitForFunction(() => /has: takes file or link/.test(document.querySelector('#search-results .search-status')?.textContent ?? ''));
    await page.fill('#search-q', 'zzzqqq');
    await page.press('#search-q', 'Enter');
    await page.waitForFunction(() => /Nothing found/.test(document.querySelector('#search-results .search-status')?.textContent ?? ''));
    t.equal(await page.$$eval('#search-results .search-result', (els) => els.length), 0);
    t.same(problems, [], 'no errors in the page, no request failed but the bad query');
  });
}
