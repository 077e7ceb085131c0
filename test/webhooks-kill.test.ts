// Outgoing webhooks are delivered exactly once across processes: two app processes share the
// outbox; the one holding a delivery's claim is killed -9 while the receiver holds its POST;
// the other takes the delivery once the claim expires, and the reply is in the room once.
// Then a kill right after the receiver answered (the reply may be posted, the row not marked):
// still one reply.
import { createHmac } from 'node:crypto';
import { createServer, type ServerResponse } from 'node:http';
import t from 'tap';
import { r } from 'rethinkdb-ts';
import { Agent } from './fixtures/http.js';
import { sleep, spawnApp, startDb, testLog } from './fixtures/chat.js';
import { connectAny } from '../src/db/pool.js';
import { ensureSchema } from '../src/db/schema.js';

const db = await startDb(t);
const env = { RETHINKDB_URL: db.url, ANONYMOUS_ROOMS: '0', OUTGOING_HOOK_TIMEOUT_SECONDS: '1', OUTGOING_HOOK_BACKOFF_SECONDS: '0.2', OUTGOING_HOOK_MAX_ATTEMPTS: '5', OUTGOING_HOOK_POLL_SECONDS: '0.2' };
// The schema first (slow on a busy machine, more than a process's start may take), then the
// three processes.
const schemaConn = await connectAny(db.address, testLog());
await ensureSchema(schemaConn, db.dbName, { log: testLog(), staleMs: 60_000 });
await schemaConn.close();
const procs = await Promise.all([spawnApp(t, env), spawnApp(t, env), spawnApp(t, env)]);
const conn = await r.connect({ ...db.address.servers[0], user: db.address.user, password: db.address.password });
t.teardown(() => conn.close());

let secret = '';
const received: Array<{ delivery: string; text: string; signed: boolean }> = [];
const held: ServerResponse[] = [];
let mode: 'hold-first' | 'answer-then-kill' = 'hold-first';
let killedAfterAnswer = 0;
let arrived: () => void = () => undefined;
const receiver = createServer((req, res) => {
  let body = '';
  req.on('data', (c: Buffer) => (body += c.toString()));
  req.on('end', () => {
    const ts = String(req.headers['x-slack-request-timestamp']);
    const signed = req.headers['x-slack-signature'] === `v0=${createHmac('sha256', secret).update(`v0:${ts}:${body}`).digest('hex')}`;
    const text = new URLSearchParams(body).get('text') ?? '';
    received.push({ delivery: String(req.headers['x-chatroom-delivery']), text, signed });
    const n = received.filter((x) => x.text === text).length;
    if (mode === 'hold-first' && n === 1) {
      held.push(res);
      return arrived();
    }
    if (mode === 'answer-then-kill' && n === 1) {
      // Answer, then kill the process that asked at once: it dies while posting the reply or
      // marking the row done (or just after).
      void (async () => {
        const row = (await r.db(db.dbName).table('outbox').get(String(req.headers['x-chatroom-delivery'])).run(conn)) as Row | null;
        const holder = [...alive].find((p) => p.pid === Number(row?.claimedBy?.split('/')[1]));
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ text: `reply to ${text}` }));
        if (holder) {
          alive.delete(holder);
          killedAfterAnswer = holder.pid;
          await holder.kill();
        }
        arrived();
      })();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ text: `reply to ${text}` }));
    arrived();
  });
});
await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
t.teardown(() => {
  for (const res of held) res.destroy();
  receiver.closeAllConnections();
  receiver.close();
});
const target = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hook`;

// The owner, through the first process; every process shares the database.
const owner = new Agent(procs[0].url);
if ((await owner.signup({ username: 'olive' })).status !== 201) throw new Error('setup: owner');
await owner.request('PATCH', '/api/workspace', { json: { allowPrivateHookTargets: true }, headers: { 'x-csrf-token': await owner.csrf() } });
const roomId = (await owner.post('/api/rooms', { kind: 'channel', name: 'crash' })).json<{ room: { id: string } }>().room.id;
const made = await owner.post('/api/hooks', { kind: 'outgoing', roomId, url: target });
if (made.status !== 201) throw new Error(`setup: hook ${made.text}`);
secret = made.json<{ signingSecret: string }>().signingSecret;

type Row = { id: string; state: string; attempts: number; claimedBy: string | null; messageId: string };
const rowOf = async (messageId: string): Promise<Row | undefined> => (await r.db(db.dbName).table('outbox').run(conn)).find((o: Row) => o.messageId === messageId);
async function until<T>(what: string, check: () => Promise<T | undefined | false>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}
const alive = new Set(procs);
/** Posts through a live process, waits for the receiver to hear of it, kills the claim's holder. */
async function killHolderOf(text: string) {
  const via = live();
  const heard = new Promise<void>((resolve) => (arrived = resolve));
  const posted = await via.post(`/api/rooms/${roomId}/messages`, { body: text });
  const id = posted.json<{ message: { id: string } }>().message.id;
  await heard;
  const row = await rowOf(id);
  const pid = Number(row?.claimedBy?.split('/')[1]);
  const holder = [...alive].find((p) => p.pid === pid);
  if (holder) {
    await holder.kill();
    alive.delete(holder);
  }
  return { id, holder, claimedBy: row?.claimedBy };
}
/** The owner's session on a process still alive. */
const live = () => {
  const a = new Agent([...alive][0].url);
  a.cookies.set('sid', owner.cookies.get('sid')!);
  return a;
};
const replies = async (text: string) => (await live().get(`/api/rooms/${roomId}/messages`)).json<{ messages: Array<{ body: string; bot?: true }> }>().messages.filter((m) => m.body === `reply to ${text}`);

t.test('killed while the receiver holds the POST: delivered by another, once', async (t) => {
  mode = 'hold-first';
  const { id, holder, claimedBy } = await killHolderOf('first crash');
  t.ok(holder, `a spawned process held the claim (${claimedBy})`);
  const row = await until('the delivery done', async () => ((await rowOf(id))?.state === 'done' ? rowOf(id) : undefined));
  t.equal(row?.state, 'done');
  t.not(row?.claimedBy, claimedBy);
  const tries = received.filter((x) => x.text === 'first crash');
  t.equal(tries.length, 2, 'the receiver heard it again from the survivor');
  t.equal(tries[0].delivery, tries[1].delivery, 'under the same delivery id');
  t.ok(tries.every((x) => x.signed));
  t.equal((await replies('first crash')).length, 1, 'the reply is in the room once');
});

t.test('killed right after the answer: still one reply', async (t) => {
  mode = 'answer-then-kill';
  const via = live();
  const heard = new Promise<void>((resolve) => (arrived = resolve));
  const posted = await via.post(`/api/rooms/${roomId}/messages`, { body: 'second crash' });
  const id = posted.json<{ message: { id: string } }>().message.id;
  await heard;
  t.ok(killedAfterAnswer > 0, 'the process that asked was killed as it got the answer');
  await until('the delivery done', async () => (await rowOf(id))?.state === 'done');
  // Whether the killed process posted the reply before it died or not, it is there once.
  t.equal((await replies('second crash')).length, 1, 'the reply is in the room once');
});
