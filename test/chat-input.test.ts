// Bad input over a real socket: every bad frame gets an error reply and the socket stays
// usable; sockets are rate-limited.
import t from 'tap';
import { Socket as EioSocket } from 'engine.io-client';
import { clientFor, startApp, startDb, type Frame } from './fixtures/chat.js';

const db = await startDb(t);
const { url } = await startApp(t, db, { RATE_LIMIT_BURST: '200', RATE_LIMIT_PER_SECOND: '100' });

const long = (n: number) => 'x'.repeat(n);
const uuid = () => crypto.randomUUID();

const bad: Array<[string, unknown, string]> = [
  ['a string', 'hello', 'unknown_type'],
  ['a number', 42, 'unknown_type'],
  ['null', null, 'unknown_type'],
  ['an array', [1, 2], 'unknown_type'],
  ['no type', { room: 'x' }, 'unknown_type'],
  ['an unknown type', { type: 'dropTables' }, 'unknown_type'],
  ['a prototype-ish type', { type: '__proto__' }, 'unknown_type'],
  ['joinRoom without a room', { type: 'joinRoom' }, 'bad_frame'],
  ['joinRoom with a number room', { type: 'joinRoom', room: 7 }, 'bad_frame'],
  ['a room name too long', { type: 'joinRoom', room: long(101) }, 'bad_frame'],
  ['a room name with a control character', { type: 'joinRoom', room: 'a\u0000b' }, 'bad_frame'],
  ['joinRoom with an object since', { type: 'joinRoom', room: 'x', since: {} }, 'bad_frame'],
  ['createMessage without a message', { type: 'createMessage' }, 'bad_frame'],
  ['createMessage without a body', { type: 'createMessage', message: { room: 'x', author: 'a' } }, 'bad_frame'],
  ['an empty body', { type: 'createMessage', message: { room: 'x', body: '  \n ', author: 'a' } }, 'bad_frame'],
  ['a body too long', { type: 'createMessage', message: { room: 'x', body: long(2001), author: 'a' } }, 'bad_frame'],
  ['an author name too long', { type: 'createMessage', message: { room: 'x', body: 'b', author: long(51) } }, 'bad_frame'],
  ['an author of the wrong type', { type: 'createMessage', message: { room: 'x', body: 'b', author: 5 } }, 'bad_frame'],
  ['a client id that is not a UUID', { type: 'createMessage', message: { id: 'abc', room: 'x', body: 'b' } }, 'bad_frame'],
  ['hello with another protocol', { type: 'hello', protocol: 3 }, 'bad_frame'],
];

t.test('every bad frame gets an error reply naming the problem; the socket stays usable', async (t) => {
  const c = clientFor(t, url);
  await c.hello();
  await c.join('input');
  for (const [what, frame, code] of bad) {
    c.write(frame);
    const err = await c.take((f) => f.type === 'error', `error for ${what}`);
    t.equal(err.code, code, what);
    t.type(err.message, 'string');
  }
  const reply = await c.send('input', 'still works');
  t.equal(reply.type, 'ack', 'the socket still works after all that');
  await c.take((f) => f.type === 'deliverMessage', 'its delivery');
});

t.test('an error about a message names its client id', async (t) => {
  const c = clientFor(t, url);
  await c.hello();
  const id = uuid();
  c.write({ type: 'createMessage', message: { id, room: 'x', body: long(3000) } });
  const err = await c.take((f) => f.type === 'error', 'error');
  t.equal(err.clientId, id);
  t.match(err.message, /message\.body: must be at most 2000 characters/);
});

t.test('limits are inclusive: 100-character rooms, 2000-character bodies, 50-character names', async (t) => {
  const c = clientFor(t, url);
  await c.hello();
  const room = long(100);
  await c.join(room);
  const ack = await c.send(room, long(2000), undefined, long(50));
  t.equal(ack.type, 'ack');
  const f = await c.take((f) => f.type === 'deliverMessage', 'delivery');
  t.equal((f.message as { body: string }).body.length, 2000);
});

t.test('an author id from a client is not trusted', async (t) => {
  const c = clientFor(t, url);
  await c.hello();
  await c.join('who');
  c.write({ type: 'createMessage', message: { id: uuid(), room: 'who', body: 'hi', author: { id: 'admin', name: 'Mallory' } } });
  const f = await c.take((f) => f.type === 'deliverMessage', 'delivery');
  t.same((f.message as { author: unknown }).author, { name: 'Mallory' });
});

t.test('a frame that is not JSON gets an error reply and the socket stays usable', async (t) => {
  const sock = new EioSocket(url, { path: '/primus', transports: ['websocket'] });
  t.teardown(() => sock.close());
  const frames: Frame[] = [];
  sock.on('message', (data) => {
    const s = String(data);
    if (!s.startsWith('"primus::')) frames.push(JSON.parse(s) as Frame);
  });
  await new Promise<void>((resolve) => sock.once('open', () => resolve()));
  const next = async () => {
    for (let i = 0; i < 50 && frames.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    return frames.shift();
  };
  sock.send('{not json');
  t.match(await next(), { type: 'error', code: 'bad_frame' });
  sock.send(JSON.stringify({ type: 'hello', protocol: 2 }));
  t.match(await next(), { type: 'hello', protocol: 2 }, 'still usable');
});

t.test('each socket is rate-limited; others are not affected and it recovers', async (t) => {
  const limited = await startApp(t, db, { RATE_LIMIT_BURST: '5', RATE_LIMIT_PER_SECOND: '10' });
  const spammer = clientFor(t, limited.url);
  const other = clientFor(t, limited.url);
  await Promise.all([spammer.opened(), other.opened()]);
  for (let i = 0; i < 20; i++) spammer.write({ type: 'joinRoom', room: `r${i}` });
  const err = await spammer.take((f) => f.type === 'error', 'rate limit error');
  t.equal(err.code, 'rate_limited');
  t.ok((err.retryAfterMs as number) > 0, 'says when to retry');
  other.write({ type: 'hello', protocol: 2 });
  await other.take((f) => f.type === 'hello', 'other socket unaffected');
  await new Promise((r) => setTimeout(r, 300));
  spammer.inbox.length = 0;
  spammer.write({ type: 'hello', protocol: 2 });
  await spammer.take((f) => f.type === 'hello', 'recovered');
  t.pass('the limited socket recovered after waiting');
});
