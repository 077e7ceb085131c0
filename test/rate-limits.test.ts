// The shared rate limiter (src/http/limits.ts) on the database itself: points taken, refusal
// with the time left, expiry, a sweep of expired rows, and many takes at once counted exactly.
import t from 'tap';
import { r } from 'rethinkdb-ts';
import { createLimits } from '../src/http/limits.js';
import { schemaAndPool, startDb } from './fixtures/chat.js';

const db = await startDb(t);
const { conn, pool, log } = await schemaAndPool(t, db);
const limits = createLimits({ pool, db: db.dbName, log });
t.teardown(() => limits.stop());

t.test('points, refusal, expiry and sweep', async (t) => {
  const l = limits.limiter({ keyPrefix: 'test', points: 2, duration: 1 });
  t.equal((await l.consume('a')).remainingPoints, 1);
  t.equal((await l.consume('a')).remainingPoints, 0);
  const refused = await l.consume('a').then(() => undefined, (e: { msBeforeNext: number; remainingPoints: number }) => e);
  t.ok(refused && refused.msBeforeNext > 0 && refused.msBeforeNext <= 1000, 'the third is refused, with the time left');
  t.equal((await l.consume('b')).remainingPoints, 1, 'another key has its own points');
  await new Promise((resolve) => setTimeout(resolve, 1100));
  t.equal(await limits.sweep(), 2, 'both expired rows are swept');
  t.equal(await r.db(db.dbName).table('rate_limits').count().run(conn), 0);
  t.equal((await l.consume('a')).remainingPoints, 1, 'and the key starts afresh');
  t.equal(await l.delete('a'), true);
  t.equal(await l.get('a'), null);
});

t.test('takes at once are counted exactly: the limit is never passed', async (t) => {
  const l = limits.limiter({ keyPrefix: 'burst', points: 10, duration: 60 });
  const results = await Promise.allSettled(Array.from({ length: 30 }, () => l.consume('k')));
  t.equal(results.filter((x) => x.status === 'fulfilled').length, 10, 'ten of thirty pass');
  t.equal((await l.get('k'))?.consumedPoints, 30, 'and every take was counted');
});
