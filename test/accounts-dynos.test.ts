// Accounts across two app processes on one database: sign-ups racing through both on an
// empty workspace make exactly one owner, and a session that ends on one process closes its
// sockets on the other within a second. Log-in limits are the workspace's, not a process's.
import t from 'tap';
import { r } from 'rethinkdb-ts';
import { Agent } from './fixtures/http.js';
import { clientFor, spawnApp, startDb } from './fixtures/chat.js';

const db = await startDb(t);
const env = { RETHINKDB_URL: db.url, SIGNUP_RATE_LIMIT_PER_ADDRESS: '1000', LOGIN_RATE_LIMIT_PER_ACCOUNT: '4' };
const [one, two] = await Promise.all([spawnApp(t, { ...env, DYNO: 'web.1' }), spawnApp(t, { ...env, DYNO: 'web.2' })]);

t.test('eight first sign-ups racing through two processes: exactly one owner', async (t) => {
  const agents = Array.from({ length: 8 }, (_, i) => new Agent(i % 2 ? two.url : one.url));
  // Tokens first, so that the sign-ups themselves go out together.
  const tokens = await Promise.all(agents.map((a) => a.csrf()));
  const replies = await Promise.all(
    agents.map((a, i) =>
      a.request('POST', '/api/auth/signup', {
        json: { username: `racer${i}`, displayName: `Racer ${i}`, email: `racer${i}@example.test`, password: 'correct horse battery' },
        headers: { 'x-csrf-token': tokens[i] },
      }),
    ),
  );
  const roles = replies.filter((x) => x.status === 201).map((x) => x.json<{ user: { role: string } }>().user.role);
  t.comment(`answers: ${replies.map((x) => x.status).join(' ')}; roles: ${roles.join(' ')}`);
  t.equal(roles.filter((x) => x === 'owner').length, 1, 'exactly one of them owns the workspace');
  const s = db.address.servers[0];
  const conn = await r.connect({ host: s.host, port: s.port, user: db.address.user, password: db.address.password, silent: true });
  t.teardown(() => conn.close());
  t.equal(await r.db(db.dbName).table('users').filter({ role: 'owner' }).count().run(conn), 1, 'and the database agrees');
  for (const x of replies) t.ok(x.status === 201 || x.status === 403, `every sign-up is answered: created, or refused for want of an invitation (${x.status})`);
});

t.test('log-out everywhere on one process closes the user\'s sockets on both within a second', async (t) => {
  const a = new Agent(one.url);
  const login = await a.login('racer0');
  t.equal(login.status, 200);
  const cookie = `sid=${a.cookies.get('sid')}`;
  const onOne = clientFor(t, one.url, { transport: { extraHeaders: { cookie } } });
  const onTwo = clientFor(t, two.url, { transport: { extraHeaders: { cookie } } });
  const stranger = clientFor(t, two.url);
  await Promise.all([onOne.hello(), onTwo.hello(), stranger.hello()]);
  const started = performance.now();
  t.equal((await a.post('/api/auth/logout-everywhere')).status, 204);
  await Promise.all(
    [onOne, onTwo].map((c, i) => c.take((f) => f.type === 'error' && f.code === 'unauthenticated', `the socket on process ${i + 1} told`, 3000)),
  );
  const took = performance.now() - started;
  t.comment(`both sockets told and closed ${took.toFixed(0)} ms after the log-out`);
  await onTwo.until(() => onTwo.sock.readyState !== 3 || undefined, 'the other process closed it', 3000);
  await onOne.until(() => onOne.sock.readyState !== 3 || undefined, 'this process closed it', 3000);
  stranger.write({ type: 'hello', protocol: 2 });
  await stranger.take((f) => f.type === 'hello', 'the other sockets carry on');
  t.pass('sockets of other sessions are untouched');
});

t.test('the log-in limit per account holds across processes', async (t) => {
  // Wrong passwords for racer1, alternating between the two processes: four in all are
  // answered, the fifth is refused wherever it goes, and so is the right password then.
  const statuses: number[] = [];
  for (let i = 0; i < 6; i++) statuses.push((await new Agent(i % 2 ? two.url : one.url).login('racer1', `wrong guess ${i}`)).status);
  t.same(statuses, [401, 401, 401, 401, 429, 429], 'four tries in all, not four per process');
  const refused = await new Agent(one.url).login('racer1');
  t.equal(refused.status, 429, 'the right password waits too');
  t.ok(Number(refused.headers.get('retry-after')) > 0, 'with Retry-After');
  const s = db.address.servers[0];
  const conn = await r.connect({ host: s.host, port: s.port, user: db.address.user, password: db.address.password, silent: true });
  t.teardown(() => conn.close());
  const rows: Array<{ id: string }> = await r.db(db.dbName).table('rate_limits').run(conn);
  t.ok(rows.length > 0, 'the limits are rows of the database');
  t.notOk(rows.some((x) => x.id.includes('racer1') || x.id.includes('127.0.0.1')), 'keyed by a hash: no account name or address in them');
});
