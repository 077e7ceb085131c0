// The schema is ensured at start by several processes at once without failing, serialized by
// a dbCreate lock; a stale lock is broken; `npm run schema` ensures it once.
import t from 'tap';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { r, type Connection } from 'rethinkdb-ts';
import { ensureSchema, isSchemaReady } from '../src/db/schema.js';
import { startDb, testLog, urlOf } from './fixtures/chat.js';

const db = await startDb(t);
const log = testLog();
const connect = async (): Promise<Connection> => {
  const s = db.address.servers[0];
  const conn = await r.connect({ host: s.host, port: s.port, user: db.address.user, password: db.address.password, silent: true });
  t.teardown(() => conn.close());
  return conn;
};
let n = 0;
const freshDb = () => `${db.dbName}_schema_${n++}`;
const dropLater = (conn: Connection, name: string) =>
  t.teardown(() => r.dbDrop(name).run(conn).catch(() => undefined));

t.test('five processes ensuring at once: one runs endex, the rest wait; one table', async (t) => {
  const name = freshDb();
  const conns = await Promise.all(Array.from({ length: 5 }, connect));
  dropLater(conns[0], name);
  t.equal(await isSchemaReady(conns[0], name), false);
  const results = await Promise.all(conns.map((c) => ensureSchema(c, name, { log, staleMs: 30_000, pollMs: 20 })));
  t.equal(results.filter((x) => x === 'ensured').length, 1, 'exactly one ran the schema');
  t.equal(results.filter((x) => x === 'present').length, 4);
  t.same((await r.db(name).tableList().run(conns[0])).filter((x) => x === 'messages'), ['messages']);
  t.equal(await isSchemaReady(conns[0], name), true, 'tables and indexes ready');
  t.notOk((await r.dbList().run(conns[0])).includes(`${name}_schema_lock`), 'the lock is gone');
});

t.test('a stale lock (its holder crashed) is broken after the timeout', async (t) => {
  const name = freshDb();
  const conn = await connect();
  dropLater(conn, name);
  await r.dbCreate(`${name}_schema_lock`).run(conn);
  const started = Date.now();
  t.equal(await ensureSchema(conn, name, { log, staleMs: 300, pollMs: 20 }), 'ensured');
  t.ok(Date.now() - started >= 300, 'waited for the lock first');
  t.equal(await isSchemaReady(conn, name), true);
  t.notOk((await r.dbList().run(conn)).includes(`${name}_schema_lock`));
});

t.test('a live holder is waited for, not broken', async (t) => {
  const name = freshDb();
  const [holder, waiter] = await Promise.all([connect(), connect()]);
  dropLater(holder, name);
  await r.dbCreate(`${name}_schema_lock`).run(holder);
  let done = false;
  const waiting = ensureSchema(waiter, name, { log, staleMs: 10_000, pollMs: 20 }).finally(() => (done = true));
  await new Promise((r) => setTimeout(r, 300));
  t.equal(done, false, 'still waiting while the lock is held');
  t.ok((await r.dbList().run(holder)).includes(`${name}_schema_lock`), 'the lock was not broken');
  t.equal(await isSchemaReady(holder, name), false, 'nothing built behind the holder\'s back');
  await r.dbDrop(`${name}_schema_lock`).run(holder);
  t.equal(await waiting, 'ensured', 'once released, the waiter takes the lock and builds');
});

t.test('npm run schema ensures the schema once (the release phase)', async (t) => {
  const name = freshDb();
  const conn = await connect();
  dropLater(conn, name);
  // Not spawnSync: the embedded database runs in this process and must keep answering.
  const run = () =>
    promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/schema.ts'], {
      env: { ...process.env, RETHINKDB_URL: urlOf(db.address, name), LOG_LEVEL: 'info' },
      encoding: 'utf8',
      timeout: 30_000,
    });
  const first = await run(); // rejects on a non-zero exit
  t.match(first.stdout, /"result":"ensured"/);
  t.equal(await isSchemaReady(conn, name), true);
  const second = await run();
  t.match(second.stdout, /"result":"present"/);
});
