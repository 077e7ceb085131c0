// Writes while the database will not take them, as while a RethinkDB cluster elects a new
// primary: the embedded server refuses every write for a while (refuseWrites). Sends wait
// and are tried again with their ids, so each is stored once and in the order sent; past
// SEND_RETRY_SECONDS the sender is told, clearly, and a resend with the same id lands once.
import t from 'tap';
import { r } from 'rethinkdb-ts';
import { clientFor, sleep, startApp, startDb, type Frame } from './fixtures/chat.js';

const db = await startDb(t);
const skip = db.reql ? false : 'needs the embedded server (refuseWrites): a real node cannot be told to refuse writes';

async function stored(room: string): Promise<string[]> {
  const s = db.address.servers[0];
  const conn = await r.connect({ host: s.host, port: s.port, user: db.address.user, password: db.address.password, silent: true });
  try {
    return await r.db(db.dbName).table('messages').between([room, r.minval], [room, r.maxval], { index: 'room_sent' }).orderBy({ index: 'room_sent' })('id').run(conn);
  } finally {
    await conn.close();
  }
}

t.test('writes refused for 3 s: every send waits, then lands once, in order', { skip }, async (t) => {
  const { url } = await startApp(t, db);
  const c = clientFor(t, url);
  await c.hello();
  await c.join('refused');
  db.reql!.refuseWrites(3000);
  const refusedAt = Date.now();
  const ids = Array.from({ length: 5 }, () => crypto.randomUUID());
  const acks = await Promise.all(ids.map((id, i) => c.send('refused', `sent while refused ${i}`, id)));
  const waited = Date.now() - refusedAt;
  t.comment(`acknowledged ${waited} ms after the refusal began`);
  t.ok(acks.every((a) => a.type === 'ack'), 'every send is acknowledged in the end');
  t.ok(waited >= 2500, 'after the database came back, not before');
  t.same(await stored('refused'), ids, 'each stored once, in the order sent');
  await c.receivedCount(5);
  await sleep(200);
  t.same(c.received.map((m) => m.id), ids, 'and delivered once each, in that order');
});

t.test('refused longer than SEND_RETRY_SECONDS: the sender is told; a resend with the same id lands once', { skip }, async (t) => {
  const { url } = await startApp(t, db, { SEND_RETRY_SECONDS: '1' });
  const c = clientFor(t, url);
  await c.hello();
  await c.join('too long');
  db.reql!.refuseWrites(2500);
  const id = crypto.randomUUID();
  const failed: Frame = await c.send('too long', 'will have to wait', id);
  t.match(failed, { type: 'error', code: 'unavailable', clientId: id, message: /did not take it for 1 s\); send it again/ });
  await sleep(1800);
  const ack = await c.send('too long', 'will have to wait', id);
  t.match(ack, { type: 'ack', clientId: id });
  t.same(await stored('too long'), [id], 'stored once');
});
