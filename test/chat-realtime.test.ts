// Protocol flows with real Primus clients against the app on an ephemeral port.
import t from 'tap';
import { byRoomOrder, clientFor, startApp, startDb, type WireMsg } from './fixtures/chat.js';

const db = await startDb(t);
const { url, app } = await startApp(t, db, { RATE_LIMIT_BURST: '400', RATE_LIMIT_PER_SECOND: '200' });

t.test("the article's client frames work unchanged", async (t) => {
  const a = clientFor(t, url);
  const b = clientFor(t, url);
  await Promise.all([a.opened(), b.opened()]);
  // The article's client joins the lobby first, then a room as the user types.
  a.write({ type: 'joinRoom', room: '' });
  a.write({ type: 'joinRoom', room: 'article' });
  b.write({ type: 'joinRoom', room: 'article' });
  await t.resolves(new Promise((r) => setTimeout(r, 300)));
  a.write({ type: 'createMessage', message: { body: 'hello from 2015', room: 'article', author: 'Anonymous' } });
  const fa = await a.take((f) => f.type === 'deliverMessage', 'delivery to a');
  const fb = await b.take((f) => f.type === 'deliverMessage', 'delivery to b');
  for (const f of [fa, fb]) {
    const m = f.message as WireMsg;
    t.equal(m.body, 'hello from 2015');
    t.equal(m.room, 'article');
    t.equal(m.author, 'Anonymous', 'protocol 1 sees the author as text');
    t.match(m.id, /^[0-9a-f-]{36}$/, 'the server gave it an id');
    t.ok(!Number.isNaN(Date.parse(m.sent)), 'and a server timestamp');
  }
  t.notOk(a.inbox.some((f) => f.type === 'ack' || f.type === 'joined'), 'no protocol-2 frames for a protocol-1 client');

  // A later joiner gets the history as deliverMessage frames, oldest first.
  a.write({ type: 'createMessage', message: { body: 'second', room: 'article', author: 'Anonymous' } });
  await b.take((f) => f.type === 'deliverMessage', 'second delivery');
  const c = clientFor(t, url);
  await c.opened();
  c.write({ type: 'joinRoom', room: 'article' });
  const h1 = await c.take((f) => f.type === 'deliverMessage', 'history 1');
  const h2 = await c.take((f) => f.type === 'deliverMessage', 'history 2');
  t.same([(h1.message as WireMsg).body, (h2.message as WireMsg).body], ['hello from 2015', 'second']);

  // An unknown type gets the article's error reply.
  a.write({ type: 'dance' });
  const err = await a.take((f) => f.type === 'error', 'error');
  t.equal(err.code, 'unknown_type');
});

t.test('protocol 2: history, ack with the server id and time, author object', async (t) => {
  const a = clientFor(t, url);
  const b = clientFor(t, url);
  await Promise.all([a.hello(), b.hello()]);
  t.same((await a.join('v2')).messages, [], 'a new room is empty');
  await b.join('v2');
  const id = crypto.randomUUID();
  const ack = await a.send('v2', 'hi <b>there</b>', id, 'Ada');
  t.equal(ack.type, 'ack');
  t.equal(ack.clientId, id);
  t.equal(ack.id, id, 'the client id is the message id');
  t.equal(ack.room, 'v2');
  const got = await b.take((f) => f.type === 'deliverMessage', 'delivery');
  t.same(got.message, { id, room: 'v2', body: 'hi <b>there</b>', author: { name: 'Ada' }, sent: ack.sent });
});

t.test('a delivery is encoded once per protocol and reads the same on WebSocket and long-polling', async (t) => {
  const ws1 = clientFor(t, url);
  const ws2 = clientFor(t, url);
  const poll2 = clientFor(t, url, { websockets: false });
  const sender = clientFor(t, url);
  await Promise.all([ws1.opened(), ws2.hello(), poll2.hello(), sender.hello()]);
  await Promise.all([ws1, ws2].map((c) => c.until(() => c.transport() === 'websocket', 'the upgrade to WebSocket')));
  t.equal(poll2.transport(), 'polling', 'one client stays on long-polling');
  ws1.write({ type: 'joinRoom', room: 'prepared' });
  await Promise.all([ws2.join('prepared'), poll2.join('prepared'), sender.join('prepared')]);
  // Line and paragraph separators (which Primus escapes), non-ASCII and a body past 125 bytes
  // (a longer WebSocket length field).
  const bodies = ['a\u2028b\u2029c', 'grüße 🦉 '.repeat(20), 'x'];
  const acks = [];
  for (const body of bodies) acks.push(await sender.send('prepared', body, undefined, 'Ada'));
  const v2 = acks.map((a, i) => ({ id: a.id, room: 'prepared', body: bodies[i], author: { name: 'Ada' }, sent: a.sent }));
  for (const c of [ws2, poll2, sender]) {
    t.same(await c.receivedCount(3), v2, `protocol 2 over ${c.transport()}: every message whole, in order`);
  }
  t.same(
    await ws1.receivedCount(3),
    v2.map((m) => ({ ...m, author: 'Ada' })),
    'protocol 1 over websocket: the author as text',
  );
  // Replies that are not deliveries still come in order with them on the same socket.
  poll2.write({ type: 'nope' });
  t.equal((await poll2.take((f) => f.type === 'error', 'the error reply')).code, 'unknown_type');
});

t.test('a resent message (same client id) is stored and delivered once', async (t) => {
  const a = clientFor(t, url);
  const watcher = clientFor(t, url);
  await Promise.all([a.hello(), watcher.hello()]);
  await watcher.join('resend');
  const id = crypto.randomUUID();
  const first = await a.send('resend', 'only once', id);
  const second = await a.send('resend', 'only once', id);
  t.equal(second.type, 'ack', 'the resend is acknowledged');
  t.equal(second.sent, first.sent, 'with the stored message');
  await watcher.receivedCount(1);
  await new Promise((r) => setTimeout(r, 300));
  t.equal(watcher.received.filter((m) => m.id === id).length, 1, 'delivered once');
  const later = clientFor(t, url);
  await later.hello();
  t.equal((await later.join('resend')).messages.length, 1, 'stored once');

  // The same id in another room is someone else's message, not a resend.
  const clash = await a.send('elsewhere', 'only once', id);
  t.equal(clash.type, 'error');
  t.equal(clash.code, 'id_conflict');
});

t.test('joining delivers the last 100 messages, oldest first, then live', async (t) => {
  const w = clientFor(t, url);
  await w.hello();
  for (let i = 0; i < 130; i++) {
    w.write({ type: 'createMessage', message: { id: crypto.randomUUID(), room: 'busy', body: `m${i}`, author: 'w' } });
  }
  await w.until(() => w.inbox.filter((f) => f.type === 'ack').length >= 130 || undefined, '130 acks');
  // Sent at once, many share a millisecond: the room's order is (server time, id).
  const stored = w.inbox
    .filter((f) => f.type === 'ack')
    .map((f) => ({ id: f.id, sent: f.sent }) as WireMsg)
    .sort(byRoomOrder);
  const c = clientFor(t, url);
  await c.hello();
  const { messages } = await c.join('busy');
  t.equal(messages.length, 100);
  t.same(
    messages.map((m) => m.id),
    stored.slice(-100).map((m) => m.id),
    'the newest 100 of the room',
  );
  t.same([...messages].sort(byRoomOrder), messages, 'in room order');
  await w.send('busy', 'live one');
  const live = await c.take((f) => f.type === 'deliverMessage', 'live');
  t.equal((live.message as WireMsg).body, 'live one');
});

t.test('rooms are separate; switching rooms stops the old one', async (t) => {
  const a = clientFor(t, url);
  const w = clientFor(t, url);
  await Promise.all([a.hello(), w.hello()]);
  await a.join('left');
  await a.join('right');
  await w.send('left', 'not for a');
  await w.send('right', 'for a');
  const f = await a.take((f) => f.type === 'deliverMessage', 'delivery');
  t.equal((f.message as WireMsg).body, 'for a');
  await new Promise((r) => setTimeout(r, 200));
  t.notOk(a.inbox.some((f) => f.type === 'deliverMessage'), 'nothing from the room it left');
  a.write({ type: 'leaveRoom' });
  await new Promise((r) => setTimeout(r, 100));
  await w.send('right', 'after leaving');
  await new Promise((r) => setTimeout(r, 200));
  t.notOk(a.inbox.some((f) => f.type === 'deliverMessage'), 'nothing after leaveRoom');
});

t.test('room names with any characters work and stay apart', async (t) => {
  const a = clientFor(t, url);
  await a.hello();
  const names = ['Ünïcödé 🚀', 'with space', 'a/b?c#d', '<script>', ''];
  for (const room of names) {
    await a.join(room);
    await a.send(room, `in ${room}`);
  }
  for (const room of names) {
    const { messages } = await a.join(room);
    t.same(messages.map((m) => m.body), [`in ${room}`], `room ${JSON.stringify(room)}`);
  }
});

t.test('stats: sockets and rooms are counted and released', async (t) => {
  const a = clientFor(t, url);
  await a.opened();
  // The earlier tests' sockets close as their tests end.
  await a.until(() => app.stats().sockets === 1 || undefined, 'only this socket');
  t.equal(app.stats().rooms, 0);
  await a.hello();
  await a.join('counted');
  t.same(app.stats(), { sockets: 1, rooms: 1, subscribers: 1, openFeeds: 1, lateBeyondWindow: 0 });
  a.close();
  await a.until(() => app.stats().rooms === 0 || undefined, 'room released');
  t.pass('the room closed when its last socket left');
});

t.test('joining the same room again (the article client does, per keystroke) resends history', async (t) => {
  const a = clientFor(t, url);
  const w = clientFor(t, url);
  await Promise.all([a.opened(), w.hello()]);
  await w.join('again');
  await w.send('again', 'first');
  a.write({ type: 'joinRoom', room: 'again' });
  await a.take((f) => f.type === 'deliverMessage', 'history');
  const roomsBefore = app.stats().rooms;
  a.write({ type: 'joinRoom', room: 'again' });
  const again = await a.take((f) => f.type === 'deliverMessage', 'history again');
  t.equal((again.message as WireMsg).body, 'first');
  t.equal(app.stats().rooms, roomsBefore, 'the room stayed open');
  await w.send('again', 'second');
  const live = await a.take((f) => f.type === 'deliverMessage', 'live');
  t.equal((live.message as WireMsg).body, 'second');
  await new Promise((r) => setTimeout(r, 200));
  t.notOk(a.inbox.some((f) => f.type === 'deliverMessage'), 'and only once');
});
