// Many dynos: two app processes started at the same moment on one database (the embedded
// server in this process, or RETHINKDB_URL's) deliver every message to every client in the
// room, in one order; SIGTERM stops a dyno cleanly.
import t from 'tap';
import { once } from 'node:events';
import { r } from 'rethinkdb-ts';
import { byRoomOrder, clientFor, spawnApp, startDb, type Client } from './fixtures/chat.js';

const db = await startDb(t);
// Both start at once on a database that has no schema yet: they race for the schema lock.
const [one, two] = await Promise.all([spawnApp(t, { RETHINKDB_URL: db.url }), spawnApp(t, { RETHINKDB_URL: db.url })]);

t.test('both dynos started; one schema', async (t) => {
  const s = db.address.servers[0];
  const conn = await r.connect({ host: s.host, port: s.port, user: db.address.user, password: db.address.password, silent: true });
  t.teardown(() => conn.close());
  const tables: string[] = await r.db(db.dbName).tableList().run(conn);
  t.same(tables.filter((x) => x === 'messages'), ['messages']);
  t.equal((one.output().match(/ensuring the database schema/g) ?? []).length + (two.output().match(/ensuring the database schema/g) ?? []).length, 1, 'one of them ran endex');
});

t.test('every client, on either dyno, gets every message once, in the same order', async (t) => {
  const room = 'across';
  const clients: Client[] = [];
  for (const app of [one, two, one, two, one, two]) clients.push(clientFor(t, app.url));
  await Promise.all(clients.map((c) => c.hello()));
  await Promise.all(clients.map((c) => c.join(room)));
  // An article (protocol 1) client too.
  const old = clientFor(t, two.url);
  await old.opened();
  old.write({ type: 'joinRoom', room });
  await new Promise((r) => setTimeout(r, 300));

  const perClient = 15;
  const replies = await Promise.all(
    clients.map(async (c, i) => {
      const types: string[] = [];
      for (let k = 0; k < perClient; k++) types.push((await c.send(room, `client ${i} says ${k}`)).type);
      return types;
    }),
  );
  t.ok(replies.flat().every((x) => x === 'ack'), 'every message acknowledged');
  const total = clients.length * perClient;
  await Promise.all([...clients, old].map((c) => c.receivedCount(total)));
  await new Promise((r) => setTimeout(r, 300));

  const reference = [...clients[0].received].sort(byRoomOrder).map((m) => m.id);
  t.equal(reference.length, total);
  for (const [i, c] of [...clients, old].entries()) {
    const ids = c.received.map((m) => m.id);
    t.equal(new Set(ids).size, total, `client ${i}: every message once`);
    t.same([...c.received].sort(byRoomOrder).map((m) => m.id), reference, `client ${i}: the same order`);
  }

  // A late joiner on either dyno sees the room's last 100 in that same order.
  for (const app of [one, two]) {
    const late = clientFor(t, app.url);
    await late.hello();
    const { messages } = await late.join(room);
    t.same(messages.map((m) => m.id), reference.slice(-100), `history on ${app.port}`);
  }
});

t.test('SIGTERM: clients are told to reconnect, the dyno exits 0 within 10 s', async (t) => {
  const c = clientFor(t, one.url);
  await c.hello();
  await c.join('leaving');
  let scheduled = false;
  let ended = false;
  c.sock.on('reconnect scheduled', () => (scheduled = true));
  c.sock.on('end', () => (ended = true));
  const started = Date.now();
  one.child.kill('SIGTERM');
  const [code] = (await once(one.child, 'exit')) as [number | null];
  const took = Date.now() - started;
  t.equal(code, 0, 'exit code 0');
  t.ok(took < 10_000, `exited in ${took} ms`);
  await c.until(() => scheduled || undefined, 'reconnect scheduled');
  t.notOk(ended, 'the client was not told to go away');
  c.close();

  // The other dyno is unaffected.
  const d = clientFor(t, two.url);
  await d.hello();
  await d.join('leaving');
  t.equal((await d.send('leaving', 'still here')).type, 'ack');
});
