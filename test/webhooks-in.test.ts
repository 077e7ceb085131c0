// Incoming webhooks, Slack-compatible: Slack's own client (@slack/webhook) posts unchanged; a
// form's payload=; the channel override, limited to the rooms the hook may post to; the
// attachments made safe; every answer Slack gives (200 ok, 400 invalid_payload / no_text, 403
// revoked, 404 no_service / channel_not_found, 429 with Retry-After); who may make one; only
// the secret's sha256 stored; `npm run admin -- create-webhook ROOM`.
import { createHash } from 'node:crypto';
import t from 'tap';
import { runAdmin } from './fixtures/admin.js';
import { IncomingWebhook } from '@slack/webhook';
import { r } from 'rethinkdb-ts';
import { Agent, scrapeSeries } from './fixtures/http.js';
import { findChromium, signedInPage } from './fixtures/browser.js';
import { startApp, startDb } from './fixtures/chat.js';

const db = await startDb(t);
const { url } = await startApp(t, db, { ANONYMOUS_ROOMS: '0', INCOMING_HOOK_PER_MINUTE: '1000' });
const must = (ok: boolean, what: string) => {
  if (!ok) throw new Error(`setup failed: ${what}`);
};

const owner = new Agent(url);
must((await owner.signup({ username: 'olive' })).status === 201, 'owner');
must((await owner.request('PATCH', '/api/workspace', { json: { registration: 'open' }, headers: { 'x-csrf-token': await owner.csrf() } })).status === 200, 'open');
const member = new Agent(url);
must((await member.signup({ username: 'mona' })).status === 201, 'member');
const room = async (a: Agent, kind: 'channel' | 'group', name: string) => (await a.post('/api/rooms', { kind, name })).json<{ room: { id: string } }>().room.id;
const deploys = await room(owner, 'channel', 'deploys');
const alerts = await room(owner, 'channel', 'alerts');
const ops = await room(owner, 'group', 'private-ops');
const monasRoom = await room(member, 'channel', 'monas-corner');

type Msg = { id: string; body: string; author: { id?: string; name: string }; bot?: true; display?: Record<string, string>; attachments?: Array<Record<string, unknown>> };
const history = async (roomId: string) => (await owner.get(`/api/rooms/${roomId}/messages`)).json<{ messages: Msg[] }>().messages;
const last = async (roomId: string) => (await history(roomId)).at(-1);

async function makeHook(a: Agent, body: Record<string, unknown>) {
  return a.post('/api/hooks', { kind: 'incoming', ...body });
}
const made = await makeHook(owner, { roomId: deploys, rooms: [alerts], name: 'CI' });
must(made.status === 201, `hook: ${made.text}`);
const hook = made.json<{ url: string; hook: { id: string; botId: string } }>();

const post = (target: string, body: string, type: string) => fetch(target, { method: 'POST', headers: { 'content-type': type }, body });
const postJson = (target: string, json: unknown) => post(target, JSON.stringify(json), 'application/json');

t.test("Slack's own client posts unchanged", async (t) => {
  t.match(hook.url, new RegExp(`^${url}/hooks/[A-Za-z0-9_-]{32}$`));
  const slack = new IncomingWebhook(hook.url);
  const res = await slack.send({ text: 'Deploy of *api* finished', username: 'Deployer', icon_emoji: ':rocket:', icon_url: 'https://example.test/i.png' });
  t.same(res, { text: 'ok' });
  const m = await last(deploys);
  t.equal(m?.body, 'Deploy of *api* finished');
  t.equal(m?.bot, true);
  t.equal(m?.author.id, hook.hook.botId, "posted as the hook's bot");
  t.same(m?.display, { username: 'Deployer', iconUrl: 'https://example.test/i.png', iconEmoji: ':rocket:' });
  const plain = await new IncomingWebhook(hook.url).send('just text');
  t.same(plain, { text: 'ok' });
  t.same((await last(deploys))?.display, { username: 'CI' }, "without a username, the hook's name shows");
  await t.rejects(new IncomingWebhook(`${url}/hooks/not-a-hook`).send('x'), { code: 'slack_webhook_http_error' }, 'the client sees an error for an unknown hook');
});

t.test("a form's payload=", async (t) => {
  const res = await post(hook.url, new URLSearchParams({ payload: JSON.stringify({ text: 'from curl -d payload=' }) }).toString(), 'application/x-www-form-urlencoded');
  t.equal(res.status, 200);
  t.equal(await res.text(), 'ok');
  t.equal((await last(deploys))?.body, 'from curl -d payload=');
  const bad = await post(hook.url, new URLSearchParams({ payload: '{not json' }).toString(), 'application/x-www-form-urlencoded');
  t.equal(bad.status, 400);
  t.equal(await bad.text(), 'invalid_payload');
});

t.test('every answer Slack gives', async (t) => {
  const cases: Array<[string, Promise<Response>, number, string]> = [
    ['a body that is not JSON', post(hook.url, '{"text": ', 'application/json'), 400, 'invalid_payload'],
    ['a JSON array', postJson(hook.url, [{ text: 'x' }]), 400, 'invalid_payload'],
    ['attachments that are not a list', postJson(hook.url, { text: 'x', attachments: 'nope' }), 400, 'invalid_payload'],
    ['no text and no attachments', postJson(hook.url, { username: 'x' }), 400, 'no_text'],
    ['an unknown hook', postJson(`${url}/hooks/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA`, { text: 'x' }), 404, 'no_service'],
    ['a channel it may not post to', postJson(hook.url, { text: 'x', channel: '#private-ops' }), 404, 'channel_not_found'],
    ['a channel that does not exist', postJson(hook.url, { text: 'x', channel: '#nowhere' }), 404, 'channel_not_found'],
  ];
  for (const [what, p, status, text] of cases) {
    const res = await p;
    t.equal(res.status, status, what);
    t.equal(await res.text(), text, what);
  }
  t.notOk((await history(ops)).some((m) => m.bot), 'nothing reached the private group');

  const other = (await makeHook(owner, { roomId: alerts, name: 'gone' })).json<{ url: string; hook: { id: string } }>();
  t.equal((await postJson(other.url, { text: 'before' })).status, 200);
  t.equal((await owner.request('DELETE', `/api/hooks/${other.hook.id}`, { headers: { 'x-csrf-token': await owner.csrf() } })).status, 204);
  const revoked = await postJson(other.url, { text: 'after' });
  t.equal(revoked.status, 403, 'a revoked hook');
  t.equal(await revoked.text(), 'invalid_token');
});

t.test('/metrics counts every post: stored or refused', async (t) => {
  const series = (outcome: string) => `chat_webhook_deliveries_total{kind="incoming",outcome="${outcome}"}`;
  const counts = () => scrapeSeries(url, { ok: series('ok'), failed: series('failed') });
  const before = await counts();
  t.ok(Number.isInteger(before.ok) && Number.isInteger(before.failed), 'both series are there');
  t.equal((await postJson(hook.url, { text: 'counted 1' })).status, 200);
  t.equal((await postJson(hook.url, { text: 'counted 2' })).status, 200);
  t.equal((await postJson(hook.url, { text: '' })).status, 400, 'no_text');
  t.equal((await post(hook.url, '{not json', 'application/json')).status, 400, 'a body that is not JSON');
  t.equal((await postJson(`${url}/hooks/not-a-hook`, { text: 'x' })).status, 404, 'no_service');
  const after = await counts();
  t.same({ ok: after.ok - before.ok, failed: after.failed - before.failed }, { ok: 2, failed: 3 });
});

t.test('the channel override, limited to the rooms the hook may post to', async (t) => {
  for (const channel of ['#alerts', 'alerts', alerts]) {
    const res = await postJson(hook.url, { text: `to ${channel}`, channel });
    t.equal(res.status, 200, channel);
    t.equal((await last(alerts))?.body, `to ${channel}`);
  }
  t.equal((await postJson(hook.url, { text: 'x', channel: '#monas-corner' })).status, 404, 'a channel the hook was not given');
  t.notOk((await (await member.get(`/api/rooms/${monasRoom}/messages`)).json<{ messages: Msg[] }>()).messages.some((m) => m.bot));
});

t.test('attachments are made safe', async (t) => {
  const res = await postJson(hook.url, {
    attachments: [
      { fallback: 'Build 42 failed', pretext: '<b>heads up</b>', title: 'Build 42', title_link: 'javascript:alert(1)', text: '<script>alert(1)</script>', color: 'danger', fields: [{ title: 'Branch', value: 'main', short: true }, { title: 'Took', value: 42 }] },
      { title: 'Docs', title_link: 'https://example.test/docs?a=1', color: '#ABC' },
      { text: 'odd colour', color: 'red;background:url(x)' },
    ],
  });
  t.equal(res.status, 200);
  const m = await last(deploys);
  t.equal(m?.body, 'Build 42 failed\nDocs\nodd colour', "without text, the attachments' fallbacks (or titles, or texts) are the message's text");
  t.same(m?.attachments, [
    { fallback: 'Build 42 failed', pretext: '<b>heads up</b>', title: 'Build 42', text: '<script>alert(1)</script>', color: '#a30200', fields: [{ title: 'Branch', value: 'main', short: true }, { title: 'Took', value: '42', short: false }] },
    { title: 'Docs', title_link: 'https://example.test/docs?a=1', color: '#aabbcc' },
    { text: 'odd colour' },
  ], 'a javascript: link is dropped, colours are #rrggbb or nothing, text stays text');

  const executablePath = findChromium();
  if (!executablePath) return void t.test('the page in Chromium', { skip: 'no Chromium' }, () => undefined);
  const { page, problems } = await signedInPage(t, executablePath, url, owner.cookies);
  page.on('dialog', (d) => {
    problems.push(`a dialog opened: ${d.message()}`);
    void d.dismiss();
  });
  await page.goto(`${url}/?room=${deploys}`);
  const box = page.locator('.msg.bot .attachment').filter({ hasText: 'Build 42' });
  await box.waitFor();
  t.equal(await box.locator('.text').textContent(), '<script>alert(1)</script>', 'the text is shown as text');
  t.equal(await box.locator('.pretext').textContent(), '<b>heads up</b>');
  t.equal(await page.locator('#messages script, .attachments script, .attachments b').count(), 0, 'no markup from the payload');
  t.equal(await box.locator('a').count(), 0, 'the javascript: link is not a link');
  t.equal(await box.evaluate((e) => getComputedStyle(e).borderLeftColor), 'rgb(163, 2, 0)', "Slack's danger colour");
  t.same(await box.locator('dt').allTextContents(), ['Branch', 'Took']);
  const docs = page.locator('.attachment a').filter({ hasText: 'Docs' }).last();
  t.equal(await docs.getAttribute('href'), 'https://example.test/docs?a=1');
  t.equal(await docs.getAttribute('rel'), 'noopener noreferrer nofollow');
  t.ok((await page.locator('.msg.bot .bot-mark').count()) > 0, 'bot messages are marked');
  t.same(problems, []);
});

t.test('rate limit: 429 with Retry-After', async (t) => {
  const slow = (await makeHook(owner, { roomId: alerts, name: 'chatty', perMinute: 3 })).json<{ url: string }>();
  for (let i = 0; i < 3; i++) t.equal((await postJson(slow.url, { text: `n${i}` })).status, 200);
  const res = await postJson(slow.url, { text: 'one too many' });
  t.equal(res.status, 429);
  t.equal(await res.text(), 'rate_limited');
  const after = Number(res.headers.get('retry-after'));
  t.ok(Number.isInteger(after) && after >= 1 && after <= 60, `Retry-After: ${after}`);
  t.equal((await postJson(hook.url, { text: 'another hook is not limited' })).status, 200);
});

t.test('who may make one; the secret is stored as its sha256', async (t) => {
  t.equal((await makeHook(member, { roomId: monasRoom })).status, 403, 'a room owner, unless the workspace allows it');
  t.equal((await makeHook(member, { roomId: ops })).status, 404, 'a private group they are not in is no room');
  t.equal((await owner.request('PATCH', '/api/workspace', { json: { ownersMayCreateHooks: true }, headers: { 'x-csrf-token': await owner.csrf() } })).status, 200);
  const mine = await makeHook(member, { roomId: monasRoom });
  t.equal(mine.status, 201, 'allowed: the owner of the room');
  t.equal((await makeHook(member, { roomId: deploys })).status, 403, "not someone else's room");
  const secret = hook.url.split('/').at(-1)!;
  const conn = await r.connect({ ...db.address.servers[0], user: db.address.user, password: db.address.password });
  t.teardown(() => conn.close());
  const rows = await r.db(db.dbName).table('hooks').run(conn);
  t.ok(rows.some((h: { secretHash?: string }) => h.secretHash === createHash('sha256').update(secret).digest('hex')));
  t.notOk(JSON.stringify(rows).includes(secret), 'the secret is nowhere in the database');
  t.notOk((await owner.get('/api/hooks')).text.includes(secret), 'nor in the list');
});

t.test('npm run admin -- create-webhook ROOM prints its URL', async (t) => {
  const out = await runAdmin(['create-webhook', '#deploys'], { RETHINKDB_URL: db.url, PUBLIC_URL: url });

  t.equal(out.code, 0, out.err);
  const printed = out.out.trim();
  t.match(printed, new RegExp(`^${url}/hooks/[A-Za-z0-9_-]{32}$`));
  t.same(await new IncomingWebhook(printed).send('from the command line'), { text: 'ok' });
  t.equal((await last(deploys))?.body, 'from the command line');
});
