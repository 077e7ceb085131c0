// `npm start` without RETHINKDB_URL: the embedded database in DATA_DIR, durable across
// restarts of the app.
import t from 'tap';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clientFor, spawnApp } from './fixtures/chat.js';

const dataDir = mkdtempSync(join(tmpdir(), 'chat-start-'));
t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
const env = { DATA_DIR: dataDir, RETHINKDB_URL: '' };

t.test('messages survive a restart of the app with the embedded database', async (t) => {
  const first = await spawnApp(t, env);
  t.match(first.output(), /embedded database started/);
  const a = clientFor(t, first.url);
  await a.hello();
  await a.join('durable');
  const ack = await a.send('durable', 'still here after a restart');
  t.equal(ack.type, 'ack');
  a.close();
  first.child.kill('SIGTERM');
  const [code] = (await once(first.child, 'exit')) as [number | null];
  t.equal(code, 0, 'clean exit');

  const second = await spawnApp(t, env);
  const b = clientFor(t, second.url);
  await b.hello();
  const { messages } = await b.join('durable');
  t.same(messages.map((m) => [m.id, m.body, m.sent]), [[ack.id, 'still here after a restart', ack.sent]]);
  t.notMatch(second.output(), /ensuring the database schema/, 'the schema was already there');
});
