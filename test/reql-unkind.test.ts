// The embedded server can be as unkind as a RethinkDB cluster (an option for tests): each
// connection's r.now() is skewed, and writes commit later than their r.now() was taken, so
// writes through different connections reach a changefeed out of timestamp order. And text
// that is not well-formed UTF-16 is refused or replaced exactly as RethinkDB 2.4 does; with
// RETHINKDB_URL set, the same queries run on that server and must answer the same.
import t from 'tap';
import { r, type Connection } from 'rethinkdb-ts';
import { parseRethinkdbUrl } from '../src/config.js';
import { startReqlServer } from '../src/reql/index.js';
import { checkSurrogates } from '../src/reql/wire/surrogates.js';

const COMMIT_DELAY = 150;
const SKEW = 400;

async function connect(host: string, port: number, extra: { user?: string; password?: string } = {}): Promise<Connection> {
  return r.connect({ host, port, silent: true, ...extra });
}

t.test('unkind: clocks differ per connection, writes commit late and out of timestamp order', async (t) => {
  const server = await startReqlServer({ inMemory: true, unkind: { commitDelayMs: COMMIT_DELAY, clockSkewMs: SKEW } });
  t.teardown(() => server.close());
  const conns = await Promise.all(Array.from({ length: 6 }, () => connect(server.host, server.port)));
  t.teardown(() => Promise.all(conns.map((c) => c.close())));
  await r.dbCreate('u').run(conns[0]);
  await r.db('u').tableCreate('t').run(conns[0]);

  // Skew: r.now() on each connection against this process's clock.
  const offsets: number[] = [];
  for (const c of conns) {
    const before = Date.now();
    const now: Date = await r.now().run(c);
    offsets.push(now.getTime() - before);
  }
  t.ok(offsets.every((o) => Math.abs(o) <= SKEW + 50), `every connection's clock is within ±${SKEW} ms (${offsets.join(', ')})`);
  t.ok(new Set(offsets.map((o) => Math.round(o / 10))).size > 1, 'and they differ from each other');
  const epoch: number = await r.now().toEpochTime().run(conns[0]);
  t.equal(Math.round(epoch * 1000) / 1000, epoch, 'a skewed r.now() is whole milliseconds, as every RethinkDB time is');

  // Late commits: a feed sees the writes in commit order.
  const feed = await r.db('u').table('t').changes().run(conns[0]);
  const seen: Array<{ id: string; conn: number; seq: number; sent: Date }> = [];
  const reading = (async () => {
    for await (const ch of feed as AsyncIterable<{ new_val: { id: string; conn: number; seq: number; sent: Date } }>) {
      seen.push(ch.new_val);
      if (seen.length === 60) break;
    }
  })();
  const t0 = Date.now();
  const answered: number[] = [];
  await Promise.all(
    conns.map(async (c, k) => {
      for (let seq = 0; seq < 10; seq++) {
        const sentAt = Date.now();
        await r.db('u').table('t').insert({ id: `${k}-${seq}`, conn: k, seq, sent: r.now() }).run(c);
        answered.push(Date.now() - sentAt);
      }
    }),
  );
  await reading;
  await feed.close();
  t.equal(seen.length, 60, 'every write reached the feed');
  t.ok(Math.max(...answered) >= COMMIT_DELAY / 3, `writes are answered late (longest ${Math.max(...answered)} ms)`);
  let inversions = 0;
  for (let i = 1; i < seen.length; i++) if (seen[i].sent.getTime() < seen[i - 1].sent.getTime()) inversions++;
  t.ok(inversions > 0, `the feed delivers writes out of timestamp order (${inversions} of ${seen.length - 1} pairs)`);
  for (let k = 0; k < conns.length; k++) {
    const own = seen.filter((m) => m.conn === k).map((m) => m.seq);
    t.same(own, [...own].sort((a, b) => a - b), `connection ${k}'s own writes commit in the order it sent them`);
  }
  t.ok(Date.now() - t0 < 60 * COMMIT_DELAY, 'every write committed (the delay is bounded)');

  // Reads are not delayed, and a query that writes nothing is not held back.
  const count = await r.db('u').table('t').count().run(conns[1]);
  t.equal(count, 60);
});

t.test('an unkind option of zero is the ordinary server', async (t) => {
  const server = await startReqlServer({ inMemory: true, unkind: { commitDelayMs: 0, clockSkewMs: 0 } });
  t.teardown(() => server.close());
  const c = await connect(server.host, server.port);
  t.teardown(() => c.close());
  const before = Date.now();
  const now: Date = await r.now().run(c);
  t.ok(Math.abs(now.getTime() - before) < 50, 'r.now() is the server clock');
});

const CASES: Array<[string, string]> = [
  ['a lone high surrogate', '\ud800'],
  ['a lone low surrogate', '\udc00'],
  ['a high surrogate before a letter', 'a\ud800b'],
  ['a low then a high surrogate', '\udc00\ud800'],
  ['a well-formed pair', '\ud800\udc00'],
  ['the last low surrogate', '\udfff'],
  ['the last high surrogate', 'x\udbff'],
  ['a pair in the middle of text', 'ab\ud83d\ude00cd'],
];

async function surrogateAnswers(c: Connection, db: string): Promise<Array<string>> {
  const out: string[] = [];
  for (const [, s] of CASES) {
    try {
      const res = await r.db(db).table('s').insert({ v: s }, { returnChanges: true }).run(c);
      const v = res.changes?.[0]?.new_val?.v as string;
      out.push(`stored ${JSON.stringify([...v].map((ch) => ch.codePointAt(0)!.toString(16)))}`);
    } catch (e) {
      out.push(`${(e as Error).name}: ${(e as { msg?: string }).msg}`);
    }
  }
  return out;
}

t.test('text that is not well-formed UTF-16 is refused or replaced as RethinkDB does', async (t) => {
  const server = await startReqlServer({ inMemory: true });
  t.teardown(() => server.close());
  const c = await connect(server.host, server.port);
  t.teardown(() => c.close());
  await r.dbCreate('s').run(c);
  await r.db('s').tableCreate('s').run(c);
  const embedded = await surrogateAnswers(c, 's');
  t.same(
    embedded,
    [
      'ReqlUnknownError: Client is buggy (failed to deserialize query).',
      'stored ["fffd","fffd","fffd"]',
      'ReqlUnknownError: Client is buggy (failed to deserialize query).',
      'ReqlUnknownError: Client is buggy (failed to deserialize query).',
      'stored ["10000"]',
      'stored ["fffd","fffd","fffd"]',
      'ReqlUnknownError: Client is buggy (failed to deserialize query).',
      'stored ["61","62","1f600","63","64"]',
    ],
    'as measured on RethinkDB 2.4.4',
  );
  t.equal(await r.expr('still fine').run(c), 'still fine', 'the connection stays usable after a refused query');

  const real = process.env.RETHINKDB_URL;
  if (!real) {
    t.comment('RETHINKDB_URL is not set: not compared with a real server');
    return;
  }
  const { address } = parseRethinkdbUrl(real);
  const rc = await connect(address.servers[0].host, address.servers[0].port, { user: address.user, password: address.password });
  const db = `surrogates_${Math.random().toString(36).slice(2, 8)}`;
  t.teardown(async () => {
    await r.dbDrop(db).run(rc).catch(() => undefined);
    await rc.close();
  });
  await r.dbCreate(db).run(rc);
  await r.db(db).tableCreate('s').run(rc);
  t.same(await surrogateAnswers(rc, db), embedded, 'the real server answers every case the same');
});

t.test('the surrogate check reads JSON escapes, not the text they stand for', async (t) => {
  t.same(checkSurrogates('["a"]'), { ok: true, text: '["a"]' }, 'nothing to do');
  t.same(checkSurrogates('["\\\\ud800"]'), { ok: true, text: '["\\\\ud800"]' }, 'an escaped backslash before ud800 is text, not an escape');
  t.same(checkSurrogates('["\\\\\\ud800"]'), { ok: false }, 'but an escaped backslash and then a real escape is');
  t.same(checkSurrogates('["\\uD83D\\uDE00"]'), { ok: true, text: '["\\uD83D\\uDE00"]' }, 'an upper-case pair is well-formed');
  t.same(checkSurrogates('["x\\udc00y","\\udfff"]'), { ok: true, text: '["x\ufffd\ufffd\ufffdy","\ufffd\ufffd\ufffd"]' }, 'every lone low surrogate becomes three U+FFFD');
  t.same(checkSurrogates('["\\ud800"]'), { ok: false });
  t.same(checkSurrogates('["\\ud800\\n"]'), { ok: false }, 'a high surrogate followed by another escape');
});
