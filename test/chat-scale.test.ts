// Joining a room of a big table gets the right history: a busy room its last 100, a quiet
// room (whose few messages are the oldest in the table, the article's worst case) its few, an
// empty one nothing. How fast is for `npm run bench` to say (its join phase); the time is
// printed here only as a comment.
import t from 'tap';
import { r } from 'rethinkdb-ts';
import { clientFor, startApp, startDb } from './fixtures/chat.js';

const ROWS = Number(process.env.CHAT_SCALE_ROWS ?? 100_000);
const db = await startDb(t);
const { url } = await startApp(t, db);
const s = db.address.servers[0];
const conn = await r.connect({ host: s.host, port: s.port, user: db.address.user, password: db.address.password, silent: true });
t.teardown(() => conn.close());

const table = r.db(db.dbName).table('messages');
const base = Date.now() - ROWS - 10_000;
await table
  .insert(['q1', 'q2', 'q3'].map((body, i) => ({ id: crypto.randomUUID(), room: 'quiet', body, author: { name: 'q' }, sent: new Date(base + i) })))
  .run(conn);
for (let i = 0; i < ROWS; i += 5000) {
  await table
    .insert(
      Array.from({ length: 5000 }, (_, j) => ({
        id: crypto.randomUUID(),
        room: (i + j) % 4 === 0 ? `room ${(i + j) % 1000}` : 'busy',
        body: `m${i + j}`,
        author: { name: 'load' },
        sent: new Date(base + 10 + i + j),
      })),
    )
    .run(conn);
}

for (const [room, expected] of [['busy', 100], ['quiet', 3], ['empty', 0]] as const) {
  t.test(`joining ${room} with ${ROWS} messages in the table`, async (t) => {
    const c = clientFor(t, url);
    await c.hello();
    const started = performance.now();
    const { messages } = await c.join(room);
    const ms = performance.now() - started;
    t.equal(messages.length, expected);
    t.same(messages.map((m) => m.room), messages.map(() => room), 'only messages of that room');
    t.comment(`joined ${room} in ${ms.toFixed(1)} ms`);
  });
}
