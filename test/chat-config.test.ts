// The environment is validated at start; a wrong value names its setting.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { formatRethinkdbUrl, loadConfig, parseRethinkdbUrl } from '../src/config.js';

t.test('defaults', async (t) => {
  const c = loadConfig({});
  t.match(c, { port: 5000, host: '127.0.0.1', database: undefined, dbName: 'chat', dataDir: './data', logLevel: 'info', historyLimit: 100 });
  t.same(c.rateLimit, { burst: 30, perSecond: 5 });
  t.equal(c.schemaLockStaleMs, 60_000);
});

t.test('on a dyno the app listens on every interface unless HOST says otherwise', async (t) => {
  t.equal(loadConfig({ DYNO: 'web.1' }).host, '0.0.0.0');
  t.equal(loadConfig({ DYNO: 'web.1', HOST: '127.0.0.1' }).host, '127.0.0.1');
});

t.test('an empty variable counts as unset', async (t) => {
  t.equal(loadConfig({ PORT: '', RETHINKDB_URL: '' }).port, 5000);
  t.equal(loadConfig({ RETHINKDB_URL: '' }).database, undefined);
});

t.test('values are parsed', async (t) => {
  const c = loadConfig({ PORT: '8080', HISTORY_LIMIT: '50', RATE_LIMIT_PER_SECOND: '0.5', LOG_LEVEL: 'debug', DATA_DIR: '/var/lib/chat' });
  t.match(c, { port: 8080, historyLimit: 50, logLevel: 'debug', dataDir: '/var/lib/chat', rateLimit: { perSecond: 0.5 } });
});

const wrong: Array<[Record<string, string>, RegExp]> = [
  [{ PORT: 'abc' }, /PORT: .*"abc"/],
  [{ PORT: '70000' }, /PORT: must be at most 65535/],
  [{ PORT: '80.5' }, /PORT: must be a whole number/],
  [{ HISTORY_LIMIT: '0' }, /HISTORY_LIMIT: must be at least 1/],
  [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL: /],
  [{ RATE_LIMIT_PER_SECOND: '0' }, /RATE_LIMIT_PER_SECOND: must be more than 0/],
  [{ RETHINKDB_URL: 'http://localhost:28015' }, /RETHINKDB_URL: must look like rethinkdb:\/\//],
  [{ RETHINKDB_URL: 'rethinkdb://h:99999' }, /RETHINKDB_URL: has a bad port/],
  [{ RETHINKDB_URL: 'rethinkdb://h:1/bad-name' }, /RETHINKDB_URL: names database "bad-name"/],
];
for (const [env, message] of wrong) {
  t.test(`rejects ${JSON.stringify(env)}`, async (t) => {
    t.throws(() => loadConfig(env), { name: 'ConfigError', message });
  });
}

t.test('every wrong setting is reported at once', async (t) => {
  t.throws(() => loadConfig({ PORT: 'x', HISTORY_LIMIT: '-1' }), { message: /PORT[\s\S]*HISTORY_LIMIT/ });
});

t.test('a password in RETHINKDB_URL is never echoed', async (t) => {
  try {
    loadConfig({ RETHINKDB_URL: 'rethinkdb://admin:s3cret@h:notaport' });
    t.fail('should throw');
  } catch (e) {
    t.notMatch((e as Error).message, /s3cret/);
  }
});

t.test('RETHINKDB_URL forms', async (t) => {
  t.same(parseRethinkdbUrl('rethinkdb://localhost:28015'), {
    address: { servers: [{ host: 'localhost', port: 28015 }], user: 'admin', password: '' },
    db: 'chat',
  });
  t.same(parseRethinkdbUrl('rethinkdb://bob:p%40ss@a:1,b:2,c/team_chat'), {
    address: { servers: [{ host: 'a', port: 1 }, { host: 'b', port: 2 }, { host: 'c', port: 28015 }], user: 'bob', password: 'p@ss' },
    db: 'team_chat',
  });
  t.same(parseRethinkdbUrl('rethinkdb://[::1]:28016/x').address.servers, [{ host: '::1', port: 28016 }]);
});

t.test('the server refuses to start on a wrong value and names it', async (t) => {
  const res = spawnSync(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    env: { ...process.env, PORT: 'eighty', RETHINKDB_URL: '' },
    encoding: 'utf8',
    timeout: 30_000,
  });
  t.equal(res.status, 1, 'exit code 1');
  t.match(res.stderr, /invalid configuration:\n\s+PORT: .*"eighty"/);
});

t.test('formatRethinkdbUrl is the inverse of parseRethinkdbUrl', async (t) => {
  for (const url of ['rethinkdb://bob:p%40ss@a:1,b:2,c:28015/team_chat', 'rethinkdb://[::1]:28016/x', 'rethinkdb://127.0.0.1:28015/chat']) {
    const { address, db } = parseRethinkdbUrl(url);
    t.equal(formatRethinkdbUrl(address, db), url, url);
  }
});
