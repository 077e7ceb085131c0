// Pure logic with many cases: frame parsing, the wire shapes, room order, the rate limiter.
import t from 'tap';
import { parseFrame, toWire } from '../src/chat/protocol.js';
import { compareMessages, messageRow, type Message } from '../src/chat/message.js';
import { TokenBucket } from '../src/realtime/rate-limit.js';

t.test('parseFrame accepts the article frames and the protocol-2 ones', async (t) => {
  t.match(parseFrame({ type: 'joinRoom', room: '' }), { ok: true, frame: { type: 'joinRoom', room: '' } });
  t.match(parseFrame({ type: 'createMessage', message: { body: 'hi', room: 'r', author: 'Ann' } }), {
    ok: true,
    frame: { message: { body: 'hi', room: 'r', author: { name: 'Ann' } } },
  });
  const id = crypto.randomUUID();
  t.match(parseFrame({ type: 'createMessage', message: { id, body: 'hi', room: 'r', author: { name: 'Ann' } } }), {
    ok: true,
    frame: { message: { id } },
  });
  t.match(parseFrame({ type: 'joinRoom', room: 'r', since: id }), { ok: true, frame: { since: id } });
  t.match(parseFrame({ type: 'hello', protocol: 2 }), { ok: true });
  t.match(parseFrame({ type: 'leaveRoom' }), { ok: true });
});

t.test('author: missing, blank or padded names', async (t) => {
  const author = (a: unknown) => {
    const p = parseFrame({ type: 'createMessage', message: { body: 'b', room: 'r', author: a } });
    return p.ok && p.frame.type === 'createMessage' ? p.frame.message.author : p;
  };
  t.same(author(undefined), { name: 'Anonymous' });
  t.same(author(''), { name: 'Anonymous' });
  t.same(author('   '), { name: 'Anonymous' });
  t.same(author('  Bo  '), { name: 'Bo' });
  t.same(author({ name: 'Cy', id: 'forged' }), { name: 'Cy' }, 'a client-sent id is dropped');
});

t.test('parseFrame: unknown extra keys are ignored (additive clients)', async (t) => {
  t.match(parseFrame({ type: 'joinRoom', room: 'r', future: true }), { ok: true, frame: { type: 'joinRoom', room: 'r' } });
});

t.test('parseFrame errors name the field', async (t) => {
  t.match(parseFrame({ type: 'joinRoom', room: 'x'.repeat(101) }), { ok: false, code: 'bad_frame', message: /^room: / });
  t.match(parseFrame({ type: 'createMessage', message: { room: 'r', body: '' } }), { ok: false, message: /message\.body/ });
  t.match(parseFrame({ type: 'nope' }), { ok: false, code: 'unknown_type', message: /"nope"/ });
  t.match(parseFrame(undefined), { ok: false, code: 'unknown_type' });
});

const msg = (id: string, ms: number, author: Message['author'] = { name: 'A' }): Message => ({
  id,
  room: 'r',
  body: 'b',
  author,
  sent: new Date(ms),
});

t.test('toWire: protocol 1 shows the author as text, protocol 2 as {id?, name}', async (t) => {
  const m = msg('1', 0, { id: 'u1', name: 'Ann' });
  t.same(toWire(m, 1), { id: '1', room: 'r', body: 'b', author: 'Ann', sent: '1970-01-01T00:00:00.000Z' });
  t.same(toWire(m, 2).author, { id: 'u1', name: 'Ann' });
});

t.test('rows from the 2015 app (author as a string) read as {name}', async (t) => {
  const row = messageRow.parse({ id: 'x', room: 'r', body: 'b', author: 'Old Timer', sent: new Date(0) });
  t.same(row.author, { name: 'Old Timer' });
});

t.test('room order: time, then id', async (t) => {
  const list = [msg('b', 2), msg('a', 2), msg('z', 1), msg('c', 3)];
  t.same(list.sort(compareMessages).map((m) => m.id), ['z', 'a', 'b', 'c']);
});

t.test('token bucket: burst, refill, retry hint', async (t) => {
  let now = 0;
  const b = new TokenBucket(3, 2, () => now);
  t.same([b.take().ok, b.take().ok, b.take().ok], [true, true, true]);
  const no = b.take();
  t.equal(no.ok, false);
  t.equal(!no.ok && no.retryAfterMs, 500);
  now += 500;
  t.equal(b.take().ok, true, 'one token after half a second at 2/s');
  t.equal(b.take().ok, false);
  now += 10_000;
  t.same([b.take().ok, b.take().ok, b.take().ok, b.take().ok], [true, true, true, false], 'never more than the burst');
});
