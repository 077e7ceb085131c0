// Joining while others write: history then live with no gap and no duplicate. And resuming
// after a reconnect from the last message seen.
import t, { type Test } from 'tap';
import { r, type Connection } from 'rethinkdb-ts';
import { byRoomOrder, clientFor, resumeOf, sleep, startApp, startDb, type Client, type WireMsg } from './fixtures/chat.js';

const db = await startDb(t);
const { url } = await startApp(t, db, { RATE_LIMIT_BURST: '1000', RATE_LIMIT_PER_SECOND: '1000' });
const s = db.address.servers[0];
const conn: Connection = await r.connect({ host: s.host, port: s.port, user: db.address.user, password: db.address.password, silent: true });
t.teardown(() => conn.close());
const messages = () => r.db(db.dbName).table('messages');

async function roomInDb(room: string): Promise<WireMsg[]> {
  const rows: Array<WireMsg & { sent: Date }> = await messages()
    .between([room, r.minval], [room, r.maxval], { index: 'room_sent' })
    .orderBy({ index: 'room_sent' })
    .run(conn);
  return rows.map((m) => ({ ...m, sent: m.sent.toISOString() }));
}

async function insert(room: string, bodies: string[]): Promise<void> {
  await messages()
    .insert(bodies.map((body) => ({ id: crypto.randomUUID(), room, body, author: { name: 'direct' }, sent: r.now() })))
    .run(conn);
}

/** What a client got is exactly the room from its first message on: no gap, no duplicate. */
function checkContiguous(t: Test, c: Client, all: WireMsg[], who: string): void {
  const got = c.received.map((m) => m.id);
  t.equal(new Set(got).size, got.length, `${who}: no duplicates`);
  const sorted = [...c.received].sort(byRoomOrder).map((m) => m.id);
  const start = sorted.length ? all.findIndex((m) => m.id === sorted[0]) : all.length;
  t.same(sorted, all.slice(start).map((m) => m.id), `${who}: no gap from its first message to the last`);
}

t.test('clients joining while two writers hammer the room miss nothing and get nothing twice', async (t) => {
  const room = 'race';
  const writer = clientFor(t, url);
  await writer.hello();
  let writing = true;
  let n = 0;
  const viaSocket = (async () => {
    while (writing) {
      writer.write({ type: 'createMessage', message: { id: crypto.randomUUID(), room, body: `socket ${n++}`, author: 'w' } });
      await sleep(2);
    }
  })();
  const viaDb = (async () => {
    let i = 0;
    while (writing) {
      await insert(room, [`db ${i++}`, `db ${i++}`]);
    }
  })();

  // The first joiner opens the room's feed; the others join the open room (its window),
  // all while messages are being written.
  const clients: Client[] = [];
  for (let i = 0; i < 16; i++) {
    const c = clientFor(t, url);
    clients.push(c);
    await c.hello();
    c.write({ type: 'joinRoom', room });
    await sleep(20 + Math.random() * 40);
  }
  await sleep(200);
  writing = false;
  await Promise.all([viaSocket, viaDb]);
  // A socket's messages are stored one after another: the room is complete once every one
  // of the writer's sends is answered.
  await writer.until(() => writer.inbox.filter((f) => f.type === 'ack' || f.type === 'error').length >= n || undefined, 'every send answered', 60_000);
  await sleep(300);
  const all = await roomInDb(room);
  t.ok(all.length > 200, `the room got busy (${all.length} messages)`);
  for (const [i, c] of clients.entries()) {
    await c.until(() => c.received.at(-1) && c.received.some((m) => m.id === all.at(-1)?.id), `client ${i} caught up`);
    checkContiguous(t, c, all, `client ${i}`);
    t.ok(c.received.length >= Math.min(100, all.length), `client ${i} got at least the history`);
  }
});

t.test('a message written right after the join request arrives exactly once', async (t) => {
  // The article's code read history, then opened a feed; a message in between was lost.
  for (let round = 0; round < 10; round++) {
    const room = `between-${round}`;
    await insert(room, ['old 1', 'old 2']);
    const c = clientFor(t, url);
    await c.hello();
    c.write({ type: 'joinRoom', room });
    await sleep(round); // anywhere from "at once" to "during the feed's start"
    await insert(room, ['right after']);
    await c.receivedCount(3);
    await sleep(50);
    // (one insert of two shares a millisecond; the room's order then goes by id)
    t.same(c.received.map((m) => m.id), (await roomInDb(room)).map((m) => m.id), `round ${round}`);
    t.equal(c.received.at(-1)?.body, 'right after');
    c.close();
  }
});

t.test('resume from the last message seen: exactly what was missed', async (t) => {
  const room = 'resume';
  const a = clientFor(t, url);
  await a.hello();
  await a.join(room);
  for (let i = 0; i < 5; i++) await a.send(room, `seen ${i}`);
  await a.receivedCount(5);
  const held = [...a.received];
  a.close();

  // Missed: a few, within the window (served from memory).
  await insert(room, ['missed 1', 'missed 2']);
  const b = clientFor(t, url);
  await b.hello();
  const resumed = await b.join(room, resumeOf(held));
  t.equal(resumed.resumed, true);
  const heldIds = new Set(held.map((m) => m.id));
  const notHeld = (await roomInDb(room)).filter((m) => !heldIds.has(m.id)).map((m) => m.id);
  t.equal(notHeld.length, 2);
  t.same(resumed.messages.map((m) => m.id), notHeld, 'the two missed');
  // A client that names only the newest message it holds gets the reorder window before it
  // too (a message may commit that much later than its timestamp); it drops what it holds.
  const bare = clientFor(t, url);
  await bare.hello();
  const overlap = await bare.join(room, resumeOf(held).since);
  const since = resumeOf(held).since;
  const allButSince = (await roomInDb(room)).map((m) => m.id).filter((id) => id !== since);
  t.same(overlap.messages.map((m) => m.id), allButSince, 'without `have`: the window before the newest held (all of it here), and the two missed');
  bare.close();
  await insert(room, ['live after resume']);
  await b.receivedCount(3);
  t.equal(b.received.at(-1)?.body, 'live after resume');

  // Missed: more than the window of 100 (read by index from the database) while live
  // messages keep coming.
  const mark = b.received.at(-1)!;
  const heldByB = [...held, ...b.received];
  b.close();
  await insert(room, Array.from({ length: 150 }, (_, i) => `far ${i}`));
  const c = clientFor(t, url);
  await c.hello();
  let writing = true;
  const live = (async () => {
    let i = 0;
    while (writing) {
      await insert(room, [`during resume ${i++}`]);
      await sleep(3);
    }
  })();
  c.write({ type: 'joinRoom', room, ...resumeOf(heldByB) });
  const joined = await c.take((f) => f.type === 'joined', 'joined');
  t.equal(joined.resumed, true, 'resumed from the database');
  await sleep(100);
  writing = false;
  await live;
  await sleep(200);
  const all = await roomInDb(room);
  const after = all.slice(all.findIndex((m) => m.id === mark.id) + 1);
  const got = c.received.map((m) => m.id);
  t.equal(new Set(got).size, got.length, 'no duplicates');
  t.same([...c.received].sort(byRoomOrder).map((m) => m.id), after.map((m) => m.id), 'everything after the mark, once');
});

t.test('resume from an unknown id or from too far back: fresh history, marked not resumed', async (t) => {
  const room = 'resume-far';
  await insert(room, ['first']);
  const first = (await roomInDb(room))[0];
  await insert(room, Array.from({ length: 1001 }, (_, i) => `bulk ${i}`));
  const c = clientFor(t, url);
  await c.hello();
  const unknown = await c.join(room, crypto.randomUUID());
  t.equal(unknown.resumed, false);
  t.equal(unknown.messages.length, 100);
  const far = await c.join(room, first.id);
  t.equal(far.resumed, false, 'more than 1000 behind: start again');
  t.equal(far.messages.length, 100);
  const otherRoom = await c.join('resume-elsewhere', first.id);
  t.equal(otherRoom.resumed, false, 'an id from another room is not an anchor');
});
