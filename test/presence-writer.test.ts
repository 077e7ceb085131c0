// The presence writer (src/realtime/presence.ts) against a slow database: a page that reloads
// closes its socket and opens a new one while the old one's row is still being deleted; the
// user must stay online, and their row must be there once the writes settle.
import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { r } from 'rethinkdb-ts';
import type { Pool } from '../src/db/pool.js';
import { createPresence } from '../src/realtime/presence.js';
import { schemaAndPool, startDb } from './fixtures/chat.js';

const db = await startDb(t);
const { conn, pool, log } = await schemaAndPool(t, db);

/** every query answered 150 ms late, as from a database far away */
const slow: Pick<Pool, 'run'> = { run: async (q) => (await sleep(150), pool.run(q)) };
const presence = createPresence({ pool: slow, db: db.dbName, log, procId: 'proc-a', checkEveryMs: 200 });
t.teardown(() => presence.stop());
await presence.ready;

async function settle(userId: string, want: string, ms = 5000): Promise<string> {
  const until = Date.now() + ms;
  while (presence.stateOf(userId) !== want && Date.now() < until) await sleep(25);
  return presence.stateOf(userId);
}
const rowsOf = (userId: string) => r.db(db.dbName).table('presence').filter({ userId }).count().run(conn);

t.test('a socket that opens while the last one\'s row is being deleted keeps its user online', async (t) => {
  const first = presence.attach('u1');
  t.equal(await settle('u1', 'online'), 'online', 'online once the row is written');
  first.detach();
  await sleep(50); // the delete is on its way
  const second = presence.attach('u1');
  await sleep(1500); // every write done, and a few passes of the process check
  t.equal(presence.stateOf('u1'), 'online', 'still online');
  t.equal(await rowsOf('u1'), 1, 'and its row is there');
  second.detach();
  t.equal(await settle('u1', 'offline'), 'offline', 'the last socket closed: offline');
  t.equal(await rowsOf('u1'), 0, 'and the row is gone');
});

t.test('away and back while a write is on its way: the last word counts', async (t) => {
  const s = presence.attach('u2');
  s.away(true);
  s.away(false);
  s.away(true);
  t.equal(await settle('u2', 'away'), 'away', 'away, as last said');
  s.away(false);
  t.equal(await settle('u2', 'online'), 'online');
  s.detach();
  t.equal(await settle('u2', 'offline'), 'offline');
});
