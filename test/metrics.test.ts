// GET /metrics and the logs: the counters move exactly with what happened (sockets by
// transport, messages stored and delivered, the fan-out latency, log-ins ok and failed), the
// endpoint refuses what it should (a proxied request without a token, a missing or wrong
// token), METRICS_PORT moves it to a listener of its own, and the log lines carry a request
// or socket id and no password, cookie, token or message text.
import { Writable } from 'node:stream';
import t, { type Test } from 'tap';
import { Socket as EioSocket } from 'engine.io-client';
import { ConfigError, loadConfig } from '../src/config.js';
import { createApp } from '../src/server.js';
import { createLogger, errorLine } from '../src/ops/log.js';
import { hashMetricsToken, isLoopback, mayScrape } from '../src/http/metrics.js';
import { Agent, seriesValue as value } from './fixtures/http.js';
import { clientFor, sleep, startDb, type TestDb } from './fixtures/chat.js';

/** Every log line of the apps of this file, parsed. */
const lines: Array<Record<string, unknown> & { raw: string }> = [];
const sink = new Writable({
  write(chunk: Buffer, _enc, done) {
    for (const raw of chunk.toString().split('\n').filter(Boolean)) lines.push({ ...(JSON.parse(raw) as Record<string, unknown>), raw });
    done();
  },
});

async function start(t: Test, db: TestDb, env: Record<string, string> = {}) {
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'debug', ANONYMOUS_ROOMS: '1', RETHINKDB_URL: db.url, ...env });
  if (!config.database) throw new Error('no database');
  const app = createApp({ ...config, database: config.database }, { log: createLogger('debug', sink) });
  const { port, metricsPort } = await app.start();
  t.teardown(() => app.stop());
  return { app, port, metricsPort, url: `http://127.0.0.1:${port}` };
}


async function scrape(url: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string; headers: Headers }> {
  const res = await fetch(`${url}/metrics`, { headers });
  return { status: res.status, text: await res.text(), headers: res.headers };
}

/** Scrapes until `series` has `want` (gauges follow what the sockets do a moment later). */
async function settle(url: string, series: string, want: number): Promise<number | undefined> {
  let got: number | undefined;
  for (let i = 0; i < 50; i++) {
    got = value((await scrape(url)).text, series);
    if (got === want) return got;
    await sleep(100);
  }
  return got;
}

t.test('who may scrape: loopback without a proxy, or the token', async (t) => {
  for (const a of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1', '::FFFF:127.0.0.9']) t.ok(isLoopback(a), `${a} is loopback`);
  for (const a of [undefined, '', '10.0.0.1', '::ffff:10.0.0.1', '192.168.1.10', '::', '::2', '1270.0.0.1', '128.0.0.1', 'fe80::1']) t.notOk(isLoopback(a), `${String(a)} is not`);
  const req = (remoteAddress: string, headers: Record<string, string> = {}) => ({ socket: { remoteAddress }, headers });
  t.match(mayScrape(req('10.0.0.1'), undefined), { ok: false, status: 403 }, 'from elsewhere, no token: refused');
  t.match(mayScrape(req('127.0.0.1'), undefined), { ok: true }, 'from this machine: allowed');
  for (const h of ['x-forwarded-for', 'forwarded', 'x-real-ip']) t.match(mayScrape(req('127.0.0.1', { [h]: '203.0.113.9' }), undefined), { ok: false, status: 403 }, `through a local proxy (${h}): refused`);
  const hash = hashMetricsToken('a-long-enough-metrics-token');
  t.match(mayScrape(req('10.0.0.1', { authorization: 'Bearer a-long-enough-metrics-token' }), hash), { ok: true }, 'the token from anywhere');
  t.match(mayScrape(req('127.0.0.1'), hash), { ok: false, status: 401 }, 'with a token set, even loopback needs it');
  t.match(mayScrape(req('127.0.0.1', { authorization: 'Bearer a-long-enough-metrics-tokeN' }), hash), { ok: false, status: 403 }, 'a wrong one');
  t.match(mayScrape(req('127.0.0.1', { authorization: 'Basic a-long-enough-metrics-token' }), hash), { ok: false, status: 401 }, 'not a bearer');
});

t.test('config: METRICS_TOKEN is never echoed, METRICS_PORT is not PORT', async (t) => {
  const base = { RETHINKDB_URL: 'rethinkdb://127.0.0.1:28015' };
  const refused = (() => {
    try {
      loadConfig({ ...base, METRICS_TOKEN: 'shortsecret' });
    } catch (e) {
      return e;
    }
  })();
  t.ok(refused instanceof ConfigError);
  t.match((refused as Error).message, /METRICS_TOKEN: must be at least 16 characters/);
  t.notOk((refused as Error).message.includes('shortsecret'), 'the token is not in the message');
  t.throws(() => loadConfig({ ...base, PORT: '5000', METRICS_PORT: '5000' }), ConfigError);
  const c = loadConfig({ ...base, METRICS_TOKEN: 'a-long-enough-metrics-token', METRICS_PORT: '9100' });
  t.same(c.metrics, { port: 9100, tokenHash: hashMetricsToken('a-long-enough-metrics-token') }, 'only the hash is kept');
  t.notOk(JSON.stringify(c).includes('a-long-enough-metrics-token'));
});

t.test('an error is logged as its first line (a driver error carries its query after it)', async (t) => {
  t.equal(errorLine('ReqlOpFailedError: Cannot perform write: no primary in:\nr.db("chat").table("messages").insert({ body: "secret" })'), 'ReqlOpFailedError: Cannot perform write: no primary in:');
  t.equal(errorLine(new Error('two\nlines')), 'Error: two');
  t.equal(errorLine('one line'), 'one line');
});

const db = await startDb(t);

t.test('the counters move with what happens', async (t) => {
  const { url } = await start(t, db);
  const before = await scrape(url);
  t.equal(before.status, 200);
  t.match(before.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  for (const s of ['chat_messages_stored_total', 'chat_messages_delivered_total', 'chat_message_fanout_seconds_count', 'chat_logins_total{result="ok"}', 'chat_logins_total{result="failed"}', 'chat_sockets{transport="websocket"}', 'chat_sockets{transport="polling"}', 'chat_room_feeds_open']) {
    t.equal(value(before.text, s), 0, `${s} starts at 0`);
  }
  for (const s of ['process_resident_memory_bytes', 'nodejs_eventloop_lag_p99_seconds', 'nodejs_heap_size_used_bytes', 'chat_db_connections_open', 'chat_db_connections_configured']) {
    t.type(value(before.text, s), 'number', `${s} is reported`);
  }

  const ann = new Agent(url);
  t.equal((await ann.signup({ username: 'ann' })).status, 201);
  const login = new Agent(url);
  t.equal((await login.login('ann', 'not the password at all')).status, 401);
  t.equal((await login.login('ann')).status, 200);

  const ws1 = clientFor(t, url);
  const ws2 = clientFor(t, url);
  const poll = clientFor(t, url, { websockets: false });
  await Promise.all([ws1, ws2].map((c) => c.until(() => c.transport() === 'websocket', 'the upgrade to WebSocket')));
  for (const c of [ws1, ws2, poll]) await c.hello();
  for (const c of [ws1, ws2, poll]) t.same((await c.join('metrics-room')).messages, []);
  for (let i = 0; i < 3; i++) t.match(await ws1.send('metrics-room', `a body for the metrics test ${i}`), { type: 'ack' });
  await Promise.all([ws1, ws2, poll].map((c) => c.receivedCount(3)));

  t.equal(await settle(url, 'chat_sockets{transport="websocket"}', 2), 2, 'two sockets on WebSocket');
  t.equal(await settle(url, 'chat_sockets{transport="polling"}', 1), 1, 'one on long-polling');
  const after = await scrape(url);
  t.equal(value(after.text, 'chat_messages_stored_total'), 3, 'three messages stored');
  t.equal(value(after.text, 'chat_messages_delivered_total'), 9, 'each to three sockets');
  t.equal(value(after.text, 'chat_message_fanout_seconds_count'), 3, 'one latency per message, not per socket');
  t.ok((value(after.text, 'chat_message_fanout_seconds_sum') ?? -1) >= 0);
  t.equal(value(after.text, 'chat_message_fanout_seconds_bucket{le="+Inf"}'), 3);
  t.equal(value(after.text, 'chat_logins_total{result="ok"}'), 1, 'one log-in');
  t.equal(value(after.text, 'chat_logins_total{result="failed"}'), 1, 'one failed');
  t.equal(value(after.text, 'chat_logins_total{result="rate_limited"}'), 0);
  t.equal(value(after.text, 'chat_room_feeds_open'), 1, 'one feed for the room');
  t.equal(value(after.text, 'chat_room_subscribers'), 3);
  t.equal(value(after.text, 'chat_room_feed_reopens_total{outcome="backfilled"}'), 0);
  t.ok((value(after.text, 'chat_db_query_duration_seconds_count{outcome="ok"}') ?? 0) > 0, 'queries are timed');
  t.ok((value(after.text, 'chat_db_connections_open') ?? 0) >= 1);

  const proxied = await scrape(url, { 'x-forwarded-for': '203.0.113.9' });
  t.equal(proxied.status, 403, 'a request through a proxy on this machine is not local');
  t.notOk(proxied.text.includes('chat_'));

  // A socket's lines carry its id: a frame that is not JSON is logged (debug) by the socket.
  const raw = new EioSocket(url, { path: '/primus', transports: ['websocket'] });
  t.teardown(() => raw.close());
  await new Promise<void>((resolve) => raw.once('open', () => resolve()));
  raw.send('{not json');
  for (let i = 0; i < 50 && !lines.some((l) => l.msg === 'socket error'); i++) await sleep(20);
  const socketLine = lines.find((l) => l.msg === 'socket error');
  t.type(socketLine?.socket, 'string', 'a socket line names its socket');

  // Every request's line has an id, the one sent back.
  const seen = await fetch(`${url}/healthz?invite=do-not-log-me`);
  const id = seen.headers.get('x-request-id');
  t.match(id, /^[0-9a-f-]{36}$/);
  await sleep(50);
  t.match(lines.find((l) => l.msg === 'request' && l.req === id), { method: 'GET', path: '/healthz', status: 200 }, 'its line, by id, without the query');
  const requests = lines.filter((l) => l.msg === 'request');
  t.ok(requests.length > 5 && requests.every((l) => typeof l.req === 'string'), 'every request line has an id');
  t.ok(requests.some((l) => l.path === '/api/auth/login' && l.status === 401));

  const all = lines.map((l) => l.raw).join('\n');
  t.notOk(all.includes('not the password at all') || all.includes('correct horse battery'), 'no password in the logs');
  t.notOk(all.includes('a body for the metrics test'), 'no message text');
  t.notOk(all.includes('do-not-log-me'), 'no query string');
  for (const cookie of [...ann.cookies.values(), ...login.cookies.values()]) t.notOk(all.includes(cookie), 'no cookie value');
});

t.test('METRICS_TOKEN: a bearer token, from anywhere', async (t) => {
  const token = 'the-metrics-token-of-this-test';
  const { url } = await start(t, db, { METRICS_TOKEN: token });
  const none = await scrape(url);
  t.equal(none.status, 401, 'none: 401');
  t.equal(none.headers.get('www-authenticate'), 'Bearer');
  t.equal((await scrape(url, { authorization: 'Bearer the-metrics-token-of-this-tesT' })).status, 403, 'a wrong one: 403');
  const ok = await scrape(url, { authorization: `Bearer ${token}`, 'x-forwarded-for': '203.0.113.9' });
  t.equal(ok.status, 200, 'the right one: 200, through a proxy too');
  t.match(ok.text, /^chat_sockets\{transport="websocket"\} 0$/m);
  t.notOk(lines.some((l) => l.raw.includes(token)), 'the token is not logged');
});

t.test('METRICS_PORT: /metrics on its own port, not on the app\'s', async (t) => {
  const { url, metricsPort } = await start(t, db, { METRICS_PORT: '0' });
  t.type(metricsPort, 'number');
  const own = `http://127.0.0.1:${metricsPort}`;
  const there = await scrape(own);
  t.equal(there.status, 200);
  t.match(there.text, /^chat_messages_stored_total 0$/m);
  t.equal((await fetch(`${own}/`)).status, 404, 'nothing else on that port');
  t.equal((await scrape(url)).status, 404, 'the app port does not serve it');
});
