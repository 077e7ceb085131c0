// The HTTP side: page, assets, headers, health and readiness; and stopping in-process.
import t from 'tap';
import { clientFor, startApp, startDb, urlOf } from './fixtures/chat.js';
import { startTcpProxy } from './fixtures/tcp-proxy.js';

const db = await startDb(t);
const { url } = await startApp(t, db);

t.test('the page: Pug-rendered, strict CSP, nothing from elsewhere', async (t) => {
  const res = await fetch(`${url}/`);
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /text\/html/);
  const csp = res.headers.get('content-security-policy') ?? '';
  t.match(csp, /default-src 'self'/);
  t.match(csp, /script-src 'self'/);
  t.notMatch(csp, /unsafe-inline|unsafe-eval/);
  t.equal(res.headers.get('x-content-type-options'), 'nosniff');
  const html = await res.text();
  t.match(html, /<script src="\/vendor\/primus\.js"><\/script>/);
  t.notMatch(html, /(src|href)="(https?:)?\/\//, 'no asset from another origin');
  t.match(html, /id="room"/);
  t.match(html, /id="name"/);
  t.match(html, /id="messages"/);
  t.match(html, /name="viewport"/);
});

t.test('a room in the link is prefilled, escaped', async (t) => {
  const evil = '"><script>alert(1)</script>';
  const res = await fetch(`${url}/?room=${encodeURIComponent(evil)}`);
  t.equal(res.status, 200);
  const html = await res.text();
  t.notMatch(html, /<script>alert/);
  t.match(html, /value="&quot;&gt;&lt;script&gt;alert\(1\)&lt;\/script&gt;"/);
});

t.test('a room name that is not allowed is refused', async (t) => {
  const res = await fetch(`${url}/?room=${'x'.repeat(101)}`);
  t.equal(res.status, 400);
  t.match(await res.text(), /not allowed/);
});

t.test('assets and the Primus client library are served here', async (t) => {
  for (const [path, type] of [
    ['/vendor/primus.js', /javascript/],
    ['/app.js', /javascript/],
    ['/style.css', /css/],
  ] as const) {
    const res = await fetch(`${url}${path}`);
    t.equal(res.status, 200, path);
    t.match(res.headers.get('content-type'), type, path);
  }
  t.equal((await fetch(`${url}/nope`)).status, 404);
});

t.test('healthz and readyz', async (t) => {
  t.same(await (await fetch(`${url}/healthz`)).json(), { status: 'ok' });
  const ready = await fetch(`${url}/readyz`);
  t.equal(ready.status, 200);
  t.same(await ready.json(), { status: 'ready' });
});

t.test('readyz says not ready while the database is unreachable, and recovers', async (t) => {
  const proxy = await startTcpProxy(db.address.servers[0]);
  t.teardown(() => proxy.close());
  const app = await startApp(t, urlOf({ ...db.address, servers: [{ host: '127.0.0.1', port: proxy.port }] }, db.dbName));
  t.equal((await fetch(`${app.url}/readyz`)).status, 200);
  proxy.cut();
  let down = await fetch(`${app.url}/readyz`);
  for (let i = 0; i < 50 && down.status === 200; i++) {
    await new Promise((r) => setTimeout(r, 100));
    down = await fetch(`${app.url}/readyz`);
  }
  t.equal(down.status, 503);
  t.same(await down.json(), { status: 'not ready' }, 'no internal reason is shown to whoever asks (it goes to the log)');
  t.equal((await fetch(`${app.url}/healthz`)).status, 200, 'still alive');
  proxy.restore();
  let status = 0;
  for (let i = 0; i < 100 && status !== 200; i++) {
    await new Promise((r) => setTimeout(r, 100));
    status = (await fetch(`${app.url}/readyz`)).status;
  }
  t.equal(status, 200, 'ready again');
});

t.test('stop(): sockets are told to reconnect, not to go away', async (t) => {
  const app = await startApp(t, db);
  const c = clientFor(t, app.url);
  await c.hello();
  await c.join('stopping');
  let scheduled = false;
  let ended = false;
  c.sock.on('reconnect scheduled', () => (scheduled = true));
  c.sock.on('end', () => (ended = true));
  const started = Date.now();
  await app.app.stop();
  t.ok(Date.now() - started < 5000, 'stopped promptly');
  await c.until(() => scheduled || undefined, 'a reconnect scheduled');
  t.notOk(ended, 'the client did not give up');
  t.same(app.app.stats(), { sockets: 0, rooms: 0, subscribers: 0, openFeeds: 0, lateBeyondWindow: 0 });
  await t.rejects(fetch(`${app.url}/healthz`), 'no longer accepting');
});
