// A gap in the membership feed: the process is cut off from the database while the user is
// added to one room and removed from another (by another process). When the feed is back,
// the watching socket is told of both, and follows the new room's messages.
import { randomUUID } from 'node:crypto';
import t from 'tap';
import { r } from 'rethinkdb-ts';
import { Agent } from './fixtures/http.js';
import { clientFor, startApp, startDb, urlOf } from './fixtures/chat.js';
import { startTcpProxy } from './fixtures/tcp-proxy.js';

t.test('after a gap, removed rooms are dropped and added ones followed', async (t) => {
  const db = await startDb(t);
  const target = db.address.servers[0];
  const proxy = await startTcpProxy(target);
  t.teardown(() => proxy.close());
  const { url } = await startApp(t, urlOf({ ...db.address, servers: [{ host: '127.0.0.1', port: proxy.port }] }, db.dbName), { ANONYMOUS_ROOMS: '0' });
  const conn = await r.connect({ host: target.host, port: target.port, user: db.address.user, password: db.address.password, silent: true });
  t.teardown(() => conn.close());
  const table = (name: string) => r.db(db.dbName).table(name);

  const olive = new Agent(url);
  t.equal((await olive.signup({ username: 'olive' })).status, 201);
  const me = (await olive.get('/api/me')).json<{ user: { id: string } }>().user.id;
  const kept = (await olive.post('/api/rooms', { kind: 'group', name: 'kept' })).json<{ room: { id: string } }>().room.id;
  const dropped = (await olive.post('/api/rooms', { kind: 'group', name: 'dropped' })).json<{ room: { id: string } }>().room.id;

  const sock = clientFor(t, url, { transport: { extraHeaders: { cookie: `sid=${olive.cookies.get('sid')}` } } });
  await sock.hello();
  sock.write({ type: 'watch' });
  const first = await sock.take((f) => f.type === 'rooms', 'the first snapshot');
  t.same((first.rooms as Array<{ id: string }>).map((x) => x.id).sort(), [kept, dropped].sort());

  proxy.cut();
  // Meanwhile, elsewhere: olive is put in a new group and taken out of another.
  const fresh = randomUUID();
  await table('rooms').insert({ id: fresh, kind: 'group', name: 'fresh', topic: '', ownerId: me, createdAt: new Date(), archived: false, announcement: false, isDefault: false }).run(conn);
  await table('members').insert({ id: `${fresh}/${me}`, roomId: fresh, userId: me, joinedAt: new Date() }).run(conn);
  await table('members').get(`${dropped}/${me}`).delete().run(conn);
  await new Promise((resolve) => setTimeout(resolve, 300));
  proxy.restore();

  await sock.take((f) => f.type === 'roomRemoved' && f.room === dropped, 'the room left during the gap', 20_000);
  const again = await sock.take((f) => f.type === 'rooms', 'a fresh snapshot', 20_000);
  t.same((again.rooms as Array<{ id: string }>).map((x) => x.id).sort(), [kept, fresh].sort(), 'the rooms as they are now');

  // The new room's messages come; the dropped room's do not.
  const inFresh = randomUUID();
  const inDropped = randomUUID();
  await table('messages').insert([
    { id: inDropped, room: dropped, body: 'not for olive any more', author: { name: 'x' }, sent: r.now() },
    { id: inFresh, room: fresh, body: 'welcome', author: { name: 'x' }, sent: r.now() },
  ]).run(conn);
  await sock.until(() => sock.received.some((m) => m.id === inFresh), 'the new room\'s message', 10_000);
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.notOk(sock.received.some((m) => m.id === inDropped), 'nothing of the room left during the gap');
});
