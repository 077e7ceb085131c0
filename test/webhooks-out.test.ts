// Outgoing webhooks against a real receiver on 127.0.0.1 that checks Slack's signature: the
// target refused while private addresses are not allowed; trigger words and every-message
// hooks; the reply posted back once as the hook's bot; retries with backoff on errors and
// timeouts; given up after the set tries and listed as failed; bots and webhooks never start
// one. (The kill -9 of the process holding a claim: webhooks-kill.test.ts.)
import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import t from 'tap';
import { r } from 'rethinkdb-ts';
import { Agent, scrapeSeries } from './fixtures/http.js';
import { findChromium, signedInPage } from './fixtures/browser.js';
import { sleep, startApp, startDb } from './fixtures/chat.js';

const HOOK_ENV = { OUTGOING_HOOK_TIMEOUT_SECONDS: '1', OUTGOING_HOOK_BACKOFF_SECONDS: '0.2', OUTGOING_HOOK_MAX_ATTEMPTS: '3', OUTGOING_HOOK_POLL_SECONDS: '0.2' };
const db = await startDb(t);
const { url } = await startApp(t, db, { ANONYMOUS_ROOMS: '0', ...HOOK_ENV });
const conn = await r.connect({ ...db.address.servers[0], user: db.address.user, password: db.address.password });
t.teardown(() => conn.close());
const must = (ok: boolean, what: string) => {
  if (!ok) throw new Error(`setup failed: ${what}`);
};

// ---- the receiver --------------------------------------------------------------------------

interface Received {
  path: string;
  fields: Record<string, string>;
  delivery: string;
  attempt: number;
  signatureOk: boolean;
  at: number;
}
const received: Received[] = [];
const secrets = new Map<string, string>(); // path -> signing secret
/** per path: what to answer to the nth request (1-based); 'hold' never answers */
const behaviour = new Map<string, (n: number, r: Received, res: ServerResponse) => void>();
const heldOpen: ServerResponse[] = [];

const receiver = createServer((req: IncomingMessage, res: ServerResponse) => {
  let body = '';
  req.on('data', (c: Buffer) => (body += c.toString()));
  req.on('end', () => {
    const path = req.url ?? '';
    const ts = String(req.headers['x-slack-request-timestamp'] ?? '');
    const secret = secrets.get(path) ?? '';
    const expected = `v0=${createHmac('sha256', secret).update(`v0:${ts}:${body}`).digest('hex')}`;
    const rec: Received = { path, fields: Object.fromEntries(new URLSearchParams(body)), delivery: String(req.headers['x-chatroom-delivery'] ?? ''), attempt: Number(req.headers['x-chatroom-attempt']), signatureOk: secret !== '' && req.headers['x-slack-signature'] === expected && Math.abs(Date.now() / 1000 - Number(ts)) < 300, at: Date.now() };
    received.push(rec);
    const n = received.filter((x) => x.path === path).length;
    const how = behaviour.get(path);
    if (how) return how(n, rec, res);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ text: `pong: ${rec.fields.text}` }));
  });
});
await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
t.teardown(() => {
  for (const res of heldOpen) res.destroy();
  receiver.closeAllConnections();
  receiver.close();
});
const target = `http://127.0.0.1:${(receiver.address() as { port: number }).port}`;

// ---- the workspace ---------------------------------------------------------------------------

const owner = new Agent(url);
must((await owner.signup({ username: 'olive' })).status === 201, 'owner');
const patchWs = async (a: Agent, json: unknown) => a.request('PATCH', '/api/workspace', { json, headers: { 'x-csrf-token': await a.csrf() } });
const newRoom = async (a: Agent, name: string) => (await a.post('/api/rooms', { kind: 'channel', name })).json<{ room: { id: string } }>().room.id;

async function outgoing(a: Agent, roomId: string, path: string, triggerWords: string[] = []) {
  const res = await a.post('/api/hooks', { kind: 'outgoing', roomId, url: target + path, triggerWords });
  must(res.status === 201, `hook: ${res.text}`);
  const made = res.json<{ hook: { id: string; botId: string }; signingSecret: string; token: string }>();
  secrets.set(path, made.signingSecret);
  return made;
}
const say = async (a: Agent, roomId: string, body: string) => {
  const res = await a.post(`/api/rooms/${roomId}/messages`, { body });
  must(res.status === 201, `post: ${res.text}`);
  return res.json<{ message: { id: string } }>().message.id;
};
type Msg = { id: string; body: string; author: { id?: string }; bot?: true };
const history = async (a: Agent, roomId: string) => (await a.get(`/api/rooms/${roomId}/messages`)).json<{ messages: Msg[] }>().messages;
type Row = { id: string; state: string; attempts: number; lastError?: string; replyId?: string; claimedBy: string | null; messageId: string };
const outbox = async (): Promise<Row[]> => r.db(db.dbName).table('outbox').run(conn);
async function until<T>(what: string, check: () => Promise<T | undefined | false>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}
const rowOf = (messageId: string) => until(`the delivery of ${messageId} to settle`, async () => (await outbox()).find((o) => o.messageId === messageId && o.state !== 'pending'));

t.test('a loopback target is refused unless the workspace allows it', async (t) => {
  const roomId = await newRoom(owner, 'refused');
  await outgoing(owner, roomId, '/refused');
  const id = await say(owner, roomId, 'anyone there?');
  const row = await rowOf(id);
  t.equal(row.state, 'failed');
  t.equal(row.attempts, 3, 'tried the set number of times');
  t.match(row.lastError, /refused: 127\.0\.0\.1 is a private or loopback address/);
  t.notOk(received.some((x) => x.path === '/refused'), 'the receiver never heard of it');
  const listed = (await owner.get('/api/hooks')).json<{ failed: Array<{ id: string; lastError: string }> }>();
  t.ok(listed.failed.some((f) => f.id === row.id && /private or loopback/.test(f.lastError)), 'the admin sees it failed');
  t.equal((await patchWs(owner, { allowPrivateHookTargets: true })).status, 200, 'the tests turn it on');
});

t.test('trigger words: a signed POST in Slack\'s format, the reply posted once as the bot', async (t) => {
  const roomId = await newRoom(owner, 'ops');
  const hook = await outgoing(owner, roomId, '/ops', ['deploy', 'status']);
  const quiet = await say(owner, roomId, 'hello, no trigger here');
  const midWord = await say(owner, roomId, 'deployment is not a word of its own');
  const id = await say(owner, roomId, 'deploy api to production');
  const row = await rowOf(id);
  t.equal(row.state, 'done');
  const rows = await outbox();
  t.notOk(rows.some((o) => o.messageId === quiet || o.messageId === midWord), 'no delivery without a trigger word');
  const got = received.filter((x) => x.path === '/ops');
  t.equal(got.length, 1);
  const g = got[0];
  t.ok(g.signatureOk, 'HMAC-SHA256 over v0:timestamp:body with the signing secret');
  const me = (await owner.get('/api/me')).json<{ user: { id: string } }>().user.id;
  t.same(g.fields, { token: hook.token, team_id: g.fields.team_id, channel_id: roomId, channel_name: 'ops', timestamp: g.fields.timestamp, user_id: me, user_name: 'olive', text: 'deploy api to production', trigger_word: 'deploy' });
  t.match(g.fields.timestamp, /^\d{10}\.\d{6}$/);
  const replies = (await history(owner, roomId)).filter((m) => m.body === 'pong: deploy api to production');
  t.equal(replies.length, 1, 'the reply is in the room once');
  t.equal(replies[0].author.id, hook.hook.botId, "as the hook's bot");
  t.equal(replies[0].bot, true);
  t.equal(row.replyId, replies[0].id);
  t.notOk((await outbox()).some((o) => o.messageId === replies[0].id), 'the bot\'s reply starts nothing (no loop)');
});

t.test('every message; bots and webhooks never start one', async (t) => {
  const roomId = await newRoom(owner, 'everything');
  await outgoing(owner, roomId, '/all');
  const id = await say(owner, roomId, 'any message at all');
  t.equal((await rowOf(id)).state, 'done');
  t.equal(received.filter((x) => x.path === '/all')[0]?.fields.trigger_word, '');
  // An incoming webhook's message, and a bot's by its token, in the same room.
  const incoming = (await owner.post('/api/hooks', { kind: 'incoming', roomId })).json<{ url: string }>();
  t.equal((await fetch(incoming.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text: 'from CI' }) })).status, 200);
  const bot = (await owner.post('/api/bots', { username: 'helper-bot' })).json<{ bot: { id: string } }>().bot;
  await owner.post(`/api/rooms/${roomId}/members`, { userId: bot.id });
  const token = (await owner.post(`/api/bots/${bot.id}/tokens`, { name: 't', scopes: ['post', 'read'] })).json<{ token: string }>().token;
  const byBot = await fetch(`${url}/api/rooms/${roomId}/messages`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ body: 'a bot speaks' }) });
  t.equal(byBot.status, 201);
  const last = await say(owner, roomId, 'and a person again');
  await rowOf(last);
  const msgs = await history(owner, roomId);
  const botMsgs = msgs.filter((m) => m.bot);
  t.ok(botMsgs.some((m) => m.body === 'from CI') && botMsgs.some((m) => m.body === 'a bot speaks'));
  const rows = await outbox();
  t.notOk(rows.some((o) => botMsgs.some((m) => m.id === o.messageId)), 'no delivery for a bot or webhook message');
  t.same(received.filter((x) => x.path === '/all').map((x) => x.fields.text), ['any message at all', 'and a person again']);
});

/** chat_webhook_deliveries_total{kind="outgoing"} by outcome, from the app's /metrics */
const series = (outcome: string) => `chat_webhook_deliveries_total{kind="outgoing",outcome="${outcome}"}`;
const outgoingCounts = () => scrapeSeries(url, { ok: series('ok'), failed: series('failed'), gave_up: series('gave_up') });

t.test('retries with backoff on errors and timeouts; given up after the set tries', async (t) => {
  const before = await outgoingCounts();
  t.ok(Object.values(before).every(Number.isInteger), 'every outcome is a series of /metrics');
  const roomId = await newRoom(owner, 'flaky');
  await outgoing(owner, roomId, '/flaky');
  behaviour.set('/flaky', (n, rec, res) => {
    if (n < 3) return void res.writeHead(503).end('busy');
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ text: `third time: ${rec.fields.text}` }));
  });
  const id = await say(owner, roomId, 'try hard');
  const row = await rowOf(id);
  t.equal(row.state, 'done');
  t.equal(row.attempts, 3);
  const tries = received.filter((x) => x.path === '/flaky');
  t.same(tries.map((x) => x.attempt), [1, 2, 3]);
  t.equal(new Set(tries.map((x) => x.delivery)).size, 1, 'one delivery id on every try');
  t.ok(tries.every((x) => x.signatureOk));
  t.equal((await history(owner, roomId)).filter((m) => m.body === 'third time: try hard').length, 1);

  const slowRoom = await newRoom(owner, 'slow');
  await outgoing(owner, slowRoom, '/slow');
  behaviour.set('/slow', (_n, _rec, res) => void heldOpen.push(res));
  const slowId = await say(owner, slowRoom, 'are you there');
  const slow = await rowOf(slowId);
  t.equal(slow.state, 'failed', 'a target that never answers is given up on');
  t.equal(slow.attempts, 3);
  t.match(slow.lastError, /no answer within 1000 ms/);

  const downRoom = await newRoom(owner, 'down');
  await outgoing(owner, downRoom, '/down');
  behaviour.set('/down', (_n, _rec, res) => void res.writeHead(500).end());
  const downId = await say(owner, downRoom, 'hello?');
  const down = await rowOf(downId);
  t.equal(down.state, 'failed');
  t.match(down.lastError, /answered 500/);
  const failedList = (await owner.get('/api/hooks')).json<{ failed: Array<{ id: string; attempts: number }> }>().failed;
  t.ok(failedList.some((f) => f.id === down.id && f.attempts === 3) && failedList.some((f) => f.id === slow.id), 'both listed as failed');
  const after = await outgoingCounts();
  const delta = { ok: after.ok - before.ok, failed: after.failed - before.failed, gave_up: after.gave_up - before.gave_up };
  t.same(delta, { ok: 1, failed: 6, gave_up: 2 }, '/metrics counted one delivery done, six tries failed (two of each) and two given up on');
});

t.test('the admin page lists the hooks and the failed deliveries', async (t) => {
  const executablePath = findChromium();
  if (!executablePath) return void t.test('the admin page in Chromium', { skip: 'no Chromium' }, () => undefined);
  const failed = (await owner.get('/api/hooks')).json<{ failed: Array<{ id: string; lastError: string }> }>().failed;
  const down = failed.find((f) => /answered 500/.test(f.lastError));
  t.ok(down, 'a failed delivery to look for');
  const { page, problems } = await signedInPage(t, executablePath, url, owner.cookies);
  await page.goto(`${url}/admin`);
  const row = page.locator(`#deliveries tr[data-delivery="${down!.id}"]`);
  await row.waitFor();
  t.match(await row.textContent(), /down.*3.*the target answered 500/);
  t.ok((await page.locator('#hooks tbody tr').count()) >= 5, 'every hook listed');
  t.ok(await page.locator('#no-failed').isHidden());
  t.same(problems, []);
});
