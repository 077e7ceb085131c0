// The client protocol module (src/client/session.ts) that the page, the load generator and
// the tests share: room order, each message once, resume fields, resends with the same id.
import t from 'tap';
import type { OutboundFrame, WireMessage } from '../src/chat/wire.js';
import { ClientSession, MAX_HAVE, RoomHistory } from '../src/client/session.js';

const at = (ms: number) => new Date(Date.UTC(2026, 0, 1) + ms).toISOString();
const msg = (id: string, ms: number, room = 'r'): WireMessage => ({ id, room, body: id, author: { name: 'a' }, sent: at(ms) });

t.test('RoomHistory: room order, ties by id, each message once, a late one in its place', async (t) => {
  const h = new RoomHistory();
  t.equal(h.add(msg('b', 10)), 0);
  t.equal(h.add(msg('c', 20)), 1);
  t.equal(h.add(msg('a', 10)), 0, 'a tie goes by id');
  t.equal(h.add(msg('late', 5)), 0, 'a message with an earlier timestamp goes before');
  t.equal(h.add(msg('c', 20)), -1, 'a message held already is not added');
  t.equal(h.add(msg('mid', 15)), 3);
  t.same(h.messages.map((m) => m.id), ['late', 'a', 'b', 'mid', 'c']);
  t.ok(h.has('mid'));
  h.clear();
  t.same(h.messages, []);
  t.notOk(h.has('mid'));
});

t.test('RoomHistory.resume: the newest held, and the ids within the window before it', async (t) => {
  const h = new RoomHistory();
  t.same(h.resume(1000), {}, 'nothing held: a fresh join');
  for (const [id, ms] of [['old', 0], ['x', 5000], ['y', 5500], ['z', 6000]] as const) h.add(msg(id, ms));
  // No change held: changes are asked for since the oldest message held.
  t.same(h.resume(1000), { since: 'z', have: ['y', 'x'], changedSince: at(0) });
  t.same(h.resume(100), { since: 'z', have: [], changedSince: at(0) });
  t.same(h.resume(10_000), { since: 'z', have: ['y', 'x', 'old'], changedSince: at(0) });
  const busy = new RoomHistory();
  for (let i = 0; i < MAX_HAVE + 50; i++) busy.add(msg(`m${String(i).padStart(5, '0')}`, i));
  const big = busy.resume(1e9);
  t.equal(big.have?.length, MAX_HAVE, `at most ${MAX_HAVE} ids, the newest`);
  t.equal(big.have?.[0], `m${String(MAX_HAVE + 48).padStart(5, '0')}`);
});

t.test('RoomHistory.change: the newest state of a held message wins; a resume asks from the newest change', async (t) => {
  const h = new RoomHistory();
  h.add(msg('a', 0));
  h.add(msg('b', 10));
  t.equal(h.change({ ...msg('zzz', 5), updated: at(100) }), -1, 'a message not held is not added by a change');
  t.equal(h.change({ ...msg('b', 10), body: 'edited', edited: at(200), updated: at(200) }), 1);
  t.equal(h.messages[1].body, 'edited');
  t.equal(h.change({ ...msg('b', 10), body: 'older state', updated: at(150) }), -1, 'an older state after a newer one is ignored');
  t.equal(h.change({ ...msg('b', 10), body: 'same time', updated: at(200) }), 1, 'the same time: taken (a state sent again)');
  t.equal(h.change({ ...msg('a', 0), deleted: true, body: '', updated: at(300) }), 0);
  t.same(h.resume(1000), { since: 'b', have: ['a'], changedSince: at(300) }, 'changes are asked for from the newest held');
  h.clear();
  t.same(h.resume(1000), {});
});

function harness() {
  const written: Array<Record<string, unknown>> = [];
  const events: string[] = [];
  let n = 0;
  const s = new ClientSession({
    write: (f) => written.push(f as Record<string, unknown>),
    author: () => ({ name: 'me' }),
    newId: () => `id${n++}`,
    retry: { min: 5, max: 20 },
    events: {
      message: (m, i, live) => events.push(`message ${m.id} @${i}${live ? ' live' : ''}`),
      reset: (room) => events.push(`reset ${room}`),
      joined: (room, resumed) => events.push(`joined ${room}${resumed ? ' resumed' : ''}`),
      acked: (p, id) => events.push(`acked ${p.id} as ${id}`),
      failed: (p) => events.push(`failed ${p.id}: ${p.failed?.code}`),
    },
  });
  const rx = (f: OutboundFrame) => s.receive(f);
  return { s, written, events, rx };
}

t.test('ClientSession: hello, join, history, live, and a resume after a reconnect', async (t) => {
  const { s, written, events, rx } = harness();
  s.join('r');
  t.same(written, [], 'nothing is written before the connection opens');
  s.connected();
  t.same(written.splice(0), [{ type: 'hello', protocol: 2 }, { type: 'joinRoom', room: 'r' }]);
  rx({ type: 'hello', protocol: 2, reorderWindowMs: 1000 });
  rx({ type: 'joined', room: 'r', resumed: false, messages: [msg('a', 0), msg('b', 800)] });
  rx({ type: 'deliverMessage', message: msg('c', 1500) });
  rx({ type: 'deliverMessage', message: msg('b', 800) });
  rx({ type: 'deliverMessage', message: msg('other', 1600, 'elsewhere') });
  t.same(events.splice(0), ['reset r', 'message a @0', 'message b @1', 'joined r', 'message c @2 live'], 'a message held or of another room is dropped');
  s.disconnected();
  s.connected();
  t.same(written.splice(0), [{ type: 'hello', protocol: 2 }, { type: 'joinRoom', room: 'r', since: 'c', have: ['b'], changedSince: at(0) }], 'resume: since the newest, with what is held in the window');
  rx({ type: 'joined', room: 'r', resumed: true, messages: [msg('late', 1200), msg('d', 1700)] });
  t.same(events.splice(0), ['message late @2', 'message d @4', 'joined r resumed'], 'a resumed history adds; a late one goes in its place');
  t.same(s.history.messages.map((m) => m.id), ['a', 'b', 'late', 'c', 'd']);
  rx({ type: 'joined', room: 'r', resumed: false, messages: [msg('fresh', 9000)] });
  t.same(s.history.messages.map((m) => m.id), ['fresh'], 'fresh history replaces what was held');
  s.join('s');
  t.same(written.splice(0), [{ type: 'joinRoom', room: 's' }], 'another room: joined afresh');
  t.same(s.history.messages, []);
});

t.test('ClientSession: sends stay pending until acknowledged, and go again with the same id', async (t) => {
  const { s, written, events, rx } = harness();
  s.join('r');
  const p = s.send('hi');
  t.same(written, [], 'not connected: waits');
  s.connected();
  t.same(written.splice(0).at(-1), { type: 'createMessage', message: { id: 'id0', room: 'r', body: 'hi', author: { name: 'me' } } }, 'sent on connect');
  s.disconnected();
  s.connected();
  t.same(written.splice(0).at(-1), { type: 'createMessage', message: { id: 'id0', room: 'r', body: 'hi', author: { name: 'me' } } }, 'resent with the same id after a reconnect');
  rx({ type: 'error', code: 'unavailable', message: 'not stored', clientId: p.id });
  await new Promise((r) => setTimeout(r, 30));
  t.same(written.splice(0), [{ type: 'createMessage', message: { id: 'id0', room: 'r', body: 'hi', author: { name: 'me' } } }], 'unavailable: sent again after a backoff');
  rx({ type: 'error', code: 'rate_limited', message: 'slow down', clientId: p.id, retryAfterMs: 40 });
  await new Promise((r) => setTimeout(r, 20));
  t.same(written, [], 'rate_limited: not before retryAfterMs');
  await new Promise((r) => setTimeout(r, 40));
  t.equal(written.splice(0).length, 1, 'then once');
  rx({ type: 'ack', clientId: p.id, id: p.id, room: 'r', sent: at(1) });
  t.equal(s.pending.size, 0, 'acknowledged: no longer pending');
  t.same(events.splice(0), ['acked id0 as id0']);
  s.disconnected();
  s.connected();
  t.notOk(written.some((f) => f.type === 'createMessage'), 'an acknowledged message is not resent');

  const q = s.send('refused');
  rx({ type: 'error', code: 'bad_frame', message: 'too long', clientId: q.id });
  t.same(events.splice(0), ['failed id1: bad_frame'], 'a refusal for good: failed');
  written.splice(0);
  s.disconnected();
  s.connected();
  t.notOk(written.some((f) => f.type === 'createMessage'), 'a failed message is not resent by itself');
  s.retry(q.id);
  t.same(written.at(-1), { type: 'createMessage', message: { id: 'id1', room: 'r', body: 'refused', author: { name: 'me' } } }, 'retry() sends it again');

  const own = s.send('arrives first');
  rx({ type: 'deliverMessage', message: { ...msg(own.id, 5), body: 'arrives first' } });
  t.notOk(s.pending.has(own.id), 'its own message arriving through the room settles a send whose ack was lost');
  t.same(events.slice(-2), [`acked ${own.id} as ${own.id}`, `message ${own.id} @0 live`], "and it counts as acknowledged");
  rx({ type: 'ack', clientId: own.id, id: own.id, room: 'r', sent: at(5) });
  t.equal(events.filter((e) => e.startsWith(`acked ${own.id}`)).length, 1, 'the late ack changes nothing');
  s.close();
});

t.test('ClientSession: a join the server could not answer is asked again', async (t) => {
  const { s, written, rx } = harness();
  s.join('r');
  s.connected();
  written.splice(0);
  rx({ type: 'error', code: 'unavailable', message: 'the room could not be opened', room: 'r' });
  await new Promise((r) => setTimeout(r, 30));
  t.same(written.splice(0), [{ type: 'joinRoom', room: 'r' }], 'joined again after a backoff');
  rx({ type: 'error', code: 'unavailable', message: 'no', room: 'elsewhere' });
  await new Promise((r) => setTimeout(r, 30));
  t.same(written, [], 'an error about another room changes nothing');
  s.close();
});
