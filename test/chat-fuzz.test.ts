// Fuzzing the server's two front doors with generated malformed input: the socket protocol
// (over real WebSockets, through engine.io-client and through a raw WebSocket on node:net)
// and the HTTP endpoints (raw HTTP on node:net, including engine.io's long-polling endpoint).
// Every socket input that is not a valid frame must get an {type:'error'} reply with the
// right code, in order, or (for a frame over 64 KiB, or a broken WebSocket frame) the
// connection is closed; every HTTP request gets a status below 500 (4xx where the request is
// bad), and raw garbage gets 400 (or 431) or is closed. Afterwards the server still serves
// well-formed clients.
//
// The inputs come from a seeded PRNG: the seed is printed as a test comment, and
// FUZZ_SEED=<seed> npx tap test/chat-fuzz.test.ts replays a run.
//
// Server bugs this fuzzer found:
//   1. a frame whose `type` was nested a few thousand levels deep (a ~10 KB frame) crashed the
//      process (parseFrame's JSON.stringify(type) threw RangeError in the socket handler);
//   2. a 4xx of express.static (412 for a failed If-Match or If-Unmodified-Since, 416 for an
//      unsatisfiable Range) was answered 500;
//   3. an Upgrade request to a path outside /primus was never answered nor closed, and a reset
//      of that connection then crashed the process (an ECONNRESET with no listener);
//   4. a request whose target looks like `//user@host` with a bad %-escape in `user` (e.g.
//      `GET //%@x HTTP/1.1`) crashes the process: Primus's Transformer#test calls Node's
//      url.parse(req.url, true), whose URIError escapes the request listener.
// All four are fixed: the fuzz covers them (it counts the requests url.parse throws on, which
// must be answered 4xx like any bad request), and a test near the end checks each one; bug 4's
// request goes to the app in a child process, so that a regression cannot take this one down.
import { randomBytes } from 'node:crypto';
import { METHODS } from 'node:http';
import net from 'node:net';
import { parse as legacyUrlParse } from 'node:url';
import { Socket as EioSocket } from 'engine.io-client';
import t from 'tap';
import { clientFor, spawnApp, startApp, startDb, type Frame } from './fixtures/chat.js';

// ---- the seeded PRNG ------------------------------------------------------------------------

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

class Rng {
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  float(): number {
    return this.next();
  }
  /** lo..hi inclusive */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)];
  }
  weighted<T>(entries: ReadonlyArray<readonly [number, T]>): T {
    const total = entries.reduce((s, [w]) => s + w, 0);
    let x = this.next() * total;
    for (const [w, v] of entries) {
      x -= w;
      if (x < 0) return v;
    }
    return entries[entries.length - 1][1];
  }
  /** n characters drawn from `alphabet` (code units) */
  chars(n: number, alphabet: string): string {
    let s = '';
    for (let i = 0; i < n; i++) s += alphabet[Math.floor(this.next() * alphabet.length)];
    return s;
  }
  /** n code units of anything: ASCII, Latin-1, CJK, emoji, lone surrogates, controls, specials */
  unicode(n: number): string {
    let s = '';
    while (s.length < n) {
      s += this.weighted<() => string>([
        [40, () => String.fromCharCode(this.int(0x20, 0x7e))],
        [8, () => String.fromCharCode(this.int(0x00, 0x1f))],
        [6, () => String.fromCharCode(this.int(0x7f, 0xff))],
        [8, () => String.fromCharCode(this.int(0x4e00, 0x9fff))],
        [6, () => String.fromCodePoint(this.int(0x1f300, 0x1faff))],
        [6, () => String.fromCharCode(this.int(0xd800, 0xdfff))],
        [6, () => this.pick(['\ufeff', '\u2028', '\u2029', '\ufffe', '\uffff', '\u200b', '\u202e', '\u0085', '\u00a0', '\\', '"'])],
      ])();
    }
    return s;
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(0, 255);
    return b;
  }
  uuid(): string {
    const h = this.chars(32, '0123456789abcdef');
    const variant = this.pick(['8', '9', 'a', 'b']);
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
  }
}

const seedText = process.env.FUZZ_SEED;
if (seedText !== undefined && !/^\d+$/.test(seedText)) throw new Error(`FUZZ_SEED must be a whole number, got ${JSON.stringify(seedText)}`);
const SEED = seedText !== undefined ? Number(seedText) >>> 0 : randomBytes(4).readUInt32LE(0);
/** independent streams, so that each part replays on its own */
const streamSeed = (n: number) => (SEED ^ Math.imul(n, 0x9e3779b9)) >>> 0;

// ---- shared bits ---------------------------------------------------------------------------

/** the schema's limits, in characters (code points), as zod counts them */
const LIMITS = { room: 100, body: 2000, name: 50, id: 128 } as const;
/** engine.io's maxHttpBufferSize (Primus maxLength) for a WebSocket message: '4' + the frame */
const MAX_FRAME_TEXT_BYTES = 64 * 1024 - 1;
const KNOWN_TYPES: readonly string[] = ['hello', 'joinRoom', 'leaveRoom', 'createMessage'];
const SAFE_ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_.';
/** every character String.prototype.trim removes: a body or name of these is blank */
const TRIMMED = ' \t\n\v\f\r\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff';
/** control characters (\p{Cc}) that trim does not remove, so they stay in a trimmed name */
const CONTROLS_KEPT_BY_TRIM = Array.from({ length: 0x20 }, (_, i) => String.fromCharCode(i))
  .filter((c) => !TRIMMED.includes(c))
  .concat(Array.from({ length: 0x21 }, (_, i) => String.fromCharCode(0x7f + i)))
  .join('');
const ALL_CONTROLS = Array.from({ length: 0x20 }, (_, i) => String.fromCharCode(i)).join('') + CONTROLS_KEPT_BY_TRIM.slice(-0x21);

const preview = (s: string | Buffer, n = 160): string =>
  typeof s === 'string' ? JSON.stringify(s.length > n ? `${s.slice(0, n)}…(${s.length} chars)` : s) : `<binary ${s.length} bytes: ${s.subarray(0, 24).toString('hex')}>`;

/** What the bytes of a string become on the wire (a lone surrogate is sent as U+FFFD). */
const wellFormed = (s: string): string =>
  s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');

async function waitUntil(check: () => boolean, timeoutMs: number, wake: (fn: () => void) => void): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    const left = deadline - Date.now();
    if (left <= 0) return false;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, Math.min(left, 250));
      wake(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
  return true;
}

// ---- socket inputs: a tiny JSON builder that can hold raw text and duplicate keys ------------

class Raw {
  constructor(readonly text: string) {}
}
class Obj {
  constructor(public entries: Array<[string, Val]> = []) {}
  get(k: string): Val | undefined {
    for (let i = this.entries.length - 1; i >= 0; i--) if (this.entries[i][0] === k) return this.entries[i][1];
    return undefined;
  }
  /** makes `v` the one value of `k`, where `k` was (or last) */
  set(k: string, v: Val): this {
    const at = this.entries.findIndex(([key]) => key === k);
    if (at < 0) this.entries.push([k, v]);
    else {
      this.entries[at] = [k, v];
      this.entries = this.entries.filter(([key], i) => key !== k || i === at);
    }
    return this;
  }
  del(k: string): this {
    this.entries = this.entries.filter(([key]) => key !== k);
    return this;
  }
}
type Val = null | boolean | number | string | Raw | Obj | Val[];
/** (an own "__proto__" key cannot be written in an object literal: use `new Obj([...])`) */
const obj = (o: Record<string, Val>): Obj => new Obj(Object.entries(o));

function enc(v: Val): string {
  if (v instanceof Raw) return v.text;
  if (v instanceof Obj) return `{${v.entries.map(([k, x]) => `${JSON.stringify(k)}:${enc(x)}`).join(',')}}`;
  if (Array.isArray(v)) return `[${v.map(enc).join(',')}]`;
  return JSON.stringify(v);
}

type ErrorCode = 'bad_frame' | 'unknown_type';
interface Expected {
  code: ErrorCode;
  /** the JSON parser failed: the reply says so */
  notJson: boolean;
  clientId?: string;
}
interface SockInput {
  label: string;
  data: string | Buffer;
  /** the error reply it must get, or 'close' for a frame over the size limit */
  expect: Expected | 'close';
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

/** Primus consumes these strings itself (primus::pong::, primus::id::) and replies nothing. */
function isPrimusProtocol(v: unknown): boolean {
  if (typeof v !== 'string' || !v.startsWith('primus::')) return false;
  return ['pong', 'id'].includes(v.slice(8, v.indexOf(':', 8)));
}

/**
 * The reply a text frame must get. Only JSON syntax and the top-level shape are judged here;
 * a frame of a known type is invalid by construction (the generators below make sure), so it
 * must be a bad_frame.
 */
function expectForText(text: string): Expected | 'protocol' {
  // engine.io delivers an empty message as no data at all: not JSON text, so not a parse error
  if (text === '') return { code: 'unknown_type', notJson: false };
  let value: unknown;
  try {
    value = JSON.parse(wellFormed(text));
  } catch {
    return { code: 'bad_frame', notJson: true };
  }
  if (isPrimusProtocol(value)) return 'protocol';
  const type = isRecord(value) && 'type' in value ? value.type : undefined;
  const code: ErrorCode = typeof type === 'string' && KNOWN_TYPES.includes(type) ? 'bad_frame' : 'unknown_type';
  // an error about a message names the client's id when it is a short enough string
  let clientId: string | undefined;
  if (isRecord(value) && 'message' in value && isRecord(value.message) && 'id' in value.message) {
    const id = value.message.id;
    // (a lone surrogate, escaped in the JSON text, makes it no usable id)
    if (typeof id === 'string' && id.length <= LIMITS.id && id.isWellFormed()) clientId = id;
  }
  return { code, notJson: false, clientId };
}

function textInput(label: string, text: string): SockInput | undefined {
  const expect = expectForText(text);
  if (expect === 'protocol') return undefined;
  if (Buffer.byteLength(wellFormed(text)) > MAX_FRAME_TEXT_BYTES) return { label: label === 'big' ? 'oversized' : `${label}, oversized`, data: text, expect: 'close' };
  return { label, data: text, expect };
}

// -- values

function goodRoom(r: Rng): string {
  return r.chance(0.1) ? '' : r.chars(r.int(1, 20), SAFE_ALPHABET);
}
function goodBody(r: Rng): string {
  return `b${r.chars(r.int(0, 40), SAFE_ALPHABET)}`;
}
function goodName(r: Rng): string {
  return r.chars(r.int(1, 20), SAFE_ALPHABET);
}

/** nested arrays or objects, as raw text; `depth` levels */
function nested(r: Rng, depth: number, inner: string = enc(r.pick<Val>([1, 'x', null, true, []]))): Raw {
  return r.chance(0.5)
    ? new Raw('['.repeat(depth) + inner + ']'.repeat(depth))
    : new Raw('{"a":'.repeat(depth) + inner + '}'.repeat(depth));
}

const RAW_NUMBERS = ['1e309', '-1e309', '1e-400', '-0', '0', '-1', '3', '2.5', '1E1', '12345678901234567890123456789', '0.1', '-2', '4e0'];

/** anything but a string */
function notAString(r: Rng): Val {
  return r.weighted<() => Val>([
    [3, () => r.int(-1e6, 1e6)],
    [2, () => r.float() * 1e300],
    [2, () => new Raw(r.pick(RAW_NUMBERS))],
    [2, () => r.chance(0.5)],
    [3, () => null],
    [2, () => []],
    [2, () => [r.chars(3, SAFE_ALPHABET), 1]],
    [2, () => new Obj()],
    [2, () => obj({ nick: 'x', toString: 'y', valueOf: 1 })],
    [1, () => nested(r, r.int(1, r.chance(0.8) ? 50 : 20_000))],
  ])();
}

/** a string of at least `min` characters: code points, which is what the schema's limits count */
function longString(r: Rng, min: number, max: number): string {
  const n = r.chance(0.25) ? min : r.int(min, max); // one over the limit, often
  return r.weighted<() => string>([
    [3, () => 'x'.repeat(n)],
    [2, () => r.chars(n, SAFE_ALPHABET.replace(' ', ''))],
    [1, () => '€'.repeat(n)],
    [1, () => '😀'.repeat(n)],
    [1, () => [...r.unicode(n)].concat(Array<string>(n).fill('x')).slice(0, n).join('')],
  ])();
}

function withControlChar(r: Rng, base: string, controls: string): string {
  const at = r.int(0, base.length);
  let cc = controls[r.int(0, controls.length - 1)];
  if (r.chance(0.2)) cc = r.chars(r.int(2, 5), controls);
  return base.slice(0, at) + cc + base.slice(at);
}

/** a string that is not a UUID by construction */
function badUuid(r: Rng): string {
  const u = r.uuid();
  const hexAt = () => r.pick([0, 1, 2, 7, 9, 12, 16, 20, 25, 35]);
  return r.weighted<() => string>([
    [3, () => { const i = hexAt(); return u.slice(0, i) + r.pick(['g', 'z', 'G', 'Z', '_', ' ', '\u0000', 'é', '\ud800']) + u.slice(i + 1); }],
    [2, () => { const i = hexAt(); return u.slice(0, i) + u.slice(i + 1); }],
    [2, () => u + r.pick(['0', 'a', '-', ' ', '\n', '}'])],
    [1, () => r.pick(['', ' ']) + ' ' + u],
    [2, () => u.replace(/-/g, '')],
    [1, () => `{${u}}`],
    [1, () => `urn:uuid:${u}`],
    [2, () => u.slice(0, 14) + r.pick(['0', '9', 'a', 'f']) + u.slice(15)],
    [2, () => u.slice(0, 19) + r.pick(['0', '7', 'c', 'f']) + u.slice(20)],
    [1, () => u.slice(0, 8) + '_' + u.slice(9)],
    [1, () => r.pick(['', 'null', 'undefined', '1', 'uuid', '../../etc/passwd', '__proto__', 'constructor', "' OR 1=1 --", 'zzzzzzzz-zzzz-4zzz-8zzz-zzzzzzzzzzzz'])],
    [2, () => `q${r.unicode(r.int(0, 60))}`],
    [1, () => `q${'x'.repeat(r.int(LIMITS.id, 3000))}`],
  ])();
}

const UNKNOWN_TYPES = [
  'Hello', 'HELLO', 'hello ', ' hello', 'hello\u0000', 'joinroom', 'JoinRoom', 'join_room', 'createmessage', 'CreateMessage',
  'leave', 'message', 'deliverMessage', 'joined', 'ack', 'error', 'ping', 'pong', 'dropTables', '', ' ', '\u0000',
  '__proto__', 'constructor', 'prototype', 'toString', 'valueOf', 'hasOwnProperty', '__defineGetter__', 'isPrototypeOf',
  'then', 'length', 'options', 'shape', 'primus::pong::1', 'hello\u200b', 'һello', 'createMessage\ud800',
];

/** makes `type` unknown (or absent): the reply is unknown_type */
function breakType(r: Rng, f: Obj): void {
  r.weighted<() => void>([
    [2, () => f.del('type')],
    [4, () => f.set('type', r.pick(UNKNOWN_TYPES))],
    [2, () => f.set('type', r.unicode(r.int(1, 30)) + '\u0001')],
    [3, () => f.set('type', notAString(r))],
    [1, () => f.set('type', [r.pick(KNOWN_TYPES)])],
    [1, () => f.set('type', obj({ type: r.pick(KNOWN_TYPES) }))],
    // bug 1 was a type nested a few thousand levels deep
    [1, () => f.set('type', nested(r, r.int(1, r.chance(0.5) ? 100 : 30_000), JSON.stringify(r.pick(KNOWN_TYPES))))],
    [1, () => f.set('type', longString(r, 100, 5000))],
  ])();
}

function badRoom(r: Rng): Val | undefined {
  return r.weighted<() => Val | undefined>([
    [2, () => undefined],
    [3, () => notAString(r)],
    [3, () => longString(r, LIMITS.room + 1, r.chance(0.8) ? 400 : 20_000)],
    [4, () => withControlChar(r, goodRoom(r), ALL_CONTROLS)],
  ])();
}

/** Breaks one required part of a frame of a known type: the reply is bad_frame. */
function breakField(r: Rng, f: Obj, type: string): void {
  if (type === 'hello') {
    const v = r.weighted<() => Val | undefined>([
      [2, () => undefined],
      [3, () => r.pick<Val>([1, 3, 0, -2, 2.5, 1.5, '2', 'two', ' 2', null, true, false, [], [2], new Obj(), obj({ version: 2 })])],
      [3, () => new Raw(r.pick(RAW_NUMBERS))],
      [1, () => nested(r, r.int(1, 5000), '2')],
    ])();
    if (v === undefined) f.del('protocol');
    else f.set('protocol', v);
    return;
  }
  if (type === 'joinRoom') {
    r.weighted<() => void>([
      [6, () => { const v = badRoom(r); if (v === undefined) f.del('room'); else f.set('room', v); }],
      [1, () => f.set('since', r.pick<Val>([null, '', 0, 1, false, [], new Obj()]))],
      [1, () => f.set('since', notAString(r))],
      [1, () => f.set('since', longString(r, LIMITS.id + 1, 5000))],
    ])();
    return;
  }
  if (type === 'createMessage') {
    const m = f.get('message');
    if (!(m instanceof Obj) || r.chance(0.12)) {
      const v = r.weighted<() => Val | undefined>([
        [1, () => undefined],
        [3, () => notAString(r)],
        [1, () => goodBody(r)],
        [1, () => [obj({ room: goodRoom(r), body: goodBody(r) })]],
      ])();
      // (the objects notAString gives have neither room nor body)
      if (v === undefined) f.del('message');
      else f.set('message', v);
      return;
    }
    r.weighted<() => void>([
      [4, () => { const v = badRoom(r); if (v === undefined) m.del('room'); else m.set('room', v); }],
      [1, () => m.del('body')],
      [2, () => m.set('body', notAString(r))],
      [2, () => m.set('body', r.chars(r.int(0, 12), TRIMMED))],
      [2, () => m.set('body', longString(r, LIMITS.body + 1, r.chance(0.8) ? 3000 : 30_000))],
      [2, () => m.set('author', r.pick<Val>([null, 0, 42, true, [], ['x'], new Obj(), obj({ nick: 'x' }), obj({ name: null }), obj({ name: 5 }), obj({ name: [] })]))],
      [1, () => m.set('author', notAString(r))],
      [1, () => m.set('author', obj({ name: notAString(r) }))],
      // bookends that trim keeps, so that the trimmed name is still too long
      [2, () => { const n = r.chars(r.int(0, 3), ' \t') + `a${longString(r, LIMITS.name - 1, 600)}z` + r.chars(r.int(0, 3), ' \t'); m.set('author', r.chance(0.5) ? n : obj({ name: n })); }],
      [2, () => { const n = withControlChar(r, `a${goodName(r)}z`, CONTROLS_KEPT_BY_TRIM); m.set('author', r.chance(0.5) ? n : obj({ name: n })); }],
      [4, () => m.set('id', badUuid(r))],
      [2, () => m.set('id', r.pick<Val>([null, 0, 1, true, [], new Obj(), obj({ id: r.uuid() }), [r.uuid()]]))],
      [1, () => m.set('id', notAString(r))],
    ])();
    return;
  }
  breakType(r, f); // leaveRoom has nothing else to break
}

function baseFrame(r: Rng, type: string): Obj {
  switch (type) {
    case 'hello':
      return obj({ type, protocol: 2 });
    case 'joinRoom': {
      const f = obj({ type, room: goodRoom(r) });
      if (r.chance(0.3)) f.set('since', r.chance(0.5) ? r.uuid() : r.chars(r.int(1, 40), SAFE_ALPHABET));
      return f;
    }
    case 'leaveRoom':
      return obj({ type });
    default: {
      const m = obj({ room: goodRoom(r), body: goodBody(r) });
      if (r.chance(0.7)) m.set('id', r.uuid());
      if (r.chance(0.6)) m.set('author', r.chance(0.5) ? goodName(r) : obj({ name: goodName(r) }));
      return obj({ type, message: m });
    }
  }
}

const FIELD_NAMES = ['type', 'protocol', 'room', 'since', 'message', 'id', 'body', 'author', 'name'];
const EXTRA_KEYS = ['x', 'extra', '__proto__', 'constructor', 'prototype', 'toString', 'valueOf', 'hasOwnProperty', '__defineSetter__', 'polluted', 'then', '$where', ''];

/** Changes that keep a frame exactly as invalid as it is. */
function decorate(r: Rng, f: Obj): void {
  const targets = [f];
  const m = f.get('message');
  if (m instanceof Obj) targets.push(m);
  for (let n = r.int(0, 2); n > 0; n--) {
    const target = r.pick(targets);
    r.weighted<() => void>([
      // unknown keys, including prototype-pollution attempts that carry valid-looking fields
      [3, () => {
        const k = r.chance(0.7) ? r.pick(EXTRA_KEYS) : r.unicode(r.int(1, 10));
        if (FIELD_NAMES.includes(k)) return;
        target.entries.push([k, r.pick<Val>([1, 'x', null, obj({ polluted: true, type: 'hello', protocol: 2, room: 'r', body: 'b', isAdmin: true }), obj({ prototype: obj({ polluted: true }) }), []])]);
      }],
      // a valid duplicate of a broken field, placed first: the last one counts
      [2, () => {
        if (target.entries.length === 0) return;
        const [k] = r.pick(target.entries);
        const good: Record<string, Val> = { type: 'joinRoom', protocol: 2, room: 'lobby', since: r.uuid(), body: 'hi', id: r.uuid(), author: 'a', message: obj({ room: 'r', body: 'b' }) };
        if (Object.hasOwn(good, k)) target.entries.unshift([k, good[k]]);
      }],
      [1, () => {
        target.entries.reverse();
        // keep duplicates in their order: the broken one last
        const seen = new Map<string, Array<[string, Val]>>();
        for (const e of target.entries) seen.set(e[0], [...(seen.get(e[0]) ?? []), e]);
        target.entries = [...seen.values()].flatMap((es) => es.reverse());
      }],
    ])();
  }
}

const NOT_JSON = [
  "{type:'hello',protocol:2}", "{'type':'hello','protocol':2}", '{"type":"hello","protocol":2,}', '{"type":"hello" "protocol":2}',
  '// hi\n{"type":"hello","protocol":2}', '{"type":"hello","protocol":2 /* c */}', 'NaN', 'Infinity', '-Infinity', 'undefined', '0x10',
  '+1', '.5', '01', '1.', '1e', '--1', 'nul', 'tru', 'True', 'None', '"unterminated', '"bad \\x escape"', '"\\u12"', "'single'",
  '[1,]', '{"a" 1}', '{"type":"hello","protocol":NaN}', '{"type":"hello","protocol":Infinity}', '{"type":"hello","protocol":2}{"type":"hello","protocol":2}',
  '{"type":"hello","protocol":2}\n{"type":"leaveRoom"}', '{"type":"joinRoom","room":"a\u0001b"}', '{"type":"joinRoom","room":"tab\there"}',
  '\ufeff{"type":"hello","protocol":2}', 'primus::pong::123', 'primus::id::', '<frame type="hello"/>', 'SELECT * FROM messages',
  '{"type":"createMessage","message":{"room":"r","body":"b",}}', '{"__proto__":}', '[', ']', '{', '}', ',', ':', '"', '\\', ' ', '\n', '\t\r\n ',
  '{"type":"hello","protocol":2', '{"type":"hello","protocol":0002}', '{"type":"hello","protocol":- 2}', '{"type":"hello","protocol":2.}', '\u0000',
];

function notJsonText(r: Rng): string {
  let s = r.weighted<() => string>([
    [4, () => r.pick(NOT_JSON)],
    [3, () => { const v = enc(baseFrame(r, r.pick(KNOWN_TYPES))); return v.slice(0, r.int(0, v.length - 1)); }],
    [2, () => { const v = enc(baseFrame(r, r.pick(KNOWN_TYPES))); const i = r.int(0, v.length); return v.slice(0, i) + r.pick(['\u0001', '}', '{', ',', '"', "'", ':', '\\', ']']) + v.slice(i); }],
    [3, () => r.unicode(r.int(1, 200))],
    [1, () => r.chars(r.int(1, 50), '{}[]",:\\ntrufalse0123456789.eE+- \t')],
  ])();
  // invalid by construction: a valid JSON text followed by another token is not JSON
  for (;;) {
    if (s === '') s = '{';
    try {
      JSON.parse(wellFormed(s));
      s += '}';
    } catch {
      return s;
    }
  }
}

/** a value of the wrong shape for a whole frame (an array, a string, a number, …) */
function wrongTopLevel(r: Rng): string {
  return r.weighted<() => string>([
    [2, () => r.pick(['null', 'true', 'false', '0', '-0', '1e309', '-1e309', '1e-400', '12345678901234567890', '""', '[]', '{}', '"hello"', '"joinRoom"', '"primus::nope::1"', '"primus::"', '"primus::pong"'])],
    [2, () => JSON.stringify(r.unicode(r.int(0, 80)))],
    [1, () => String(r.int(-1e9, 1e9))],
    [2, () => enc([baseFrame(r, r.pick(KNOWN_TYPES))])],
    [1, () => enc(r.pick(KNOWN_TYPES.map((k) => [k])))],
    [2, () => enc(nested(r, r.int(1, r.chance(0.5) ? 200 : 30_000)))],
    [1, () => enc(nested(r, r.int(1, 1000), enc(baseFrame(r, 'hello'))))],
    [2, () => enc(obj({ room: goodRoom(r), message: obj({ room: 'r', body: 'b' }), since: r.uuid() }))],
    // prototype pollution: an own "__proto__" key is data, not the prototype
    [2, () => enc(new Obj([['__proto__', obj({ type: 'hello', protocol: 2, polluted: true })]]))],
    [1, () => enc(obj({ constructor: obj({ prototype: obj({ type: 'hello', protocol: 2, polluted: true }) }) }))],
    [1, () => enc(new Obj([['__proto__', obj({ type: 'joinRoom' })], ['room', 'r']]))],
  ])();
}

/** one frame of a known type, broken on purpose, maybe decorated */
function brokenFrame(r: Rng): string {
  const type = r.pick(KNOWN_TYPES);
  const f = baseFrame(r, type);
  if (type !== 'leaveRoom' && r.chance(0.85)) breakField(r, f, type);
  else breakType(r, f);
  if (r.chance(0.25)) breakField(r, f, type); // more than one thing wrong
  if (r.chance(0.5)) decorate(r, f);
  const ws = () => (r.chance(0.1) ? r.chars(r.int(1, 4), ' \t\r\n') : '');
  return ws() + enc(f) + ws();
}

/** a broken frame padded out to a size near or above the 64 KiB limit */
function bigFrame(r: Rng): string {
  const target = r.weighted<() => number>([
    [2, () => MAX_FRAME_TEXT_BYTES],
    [2, () => MAX_FRAME_TEXT_BYTES + 1],
    [3, () => r.int(40_000, MAX_FRAME_TEXT_BYTES)],
    [3, () => r.int(MAX_FRAME_TEXT_BYTES + 1, 100_000)],
  ])();
  const unit = r.pick(['x', 'é', '€', '😀']);
  const where = r.pick(['room', 'body', 'name', 'since', 'id', 'extra', 'garbage']);
  const build = (fill: string): string => {
    switch (where) {
      case 'room':
        return enc(obj({ type: 'joinRoom', room: fill }));
      case 'since':
        return enc(obj({ type: 'joinRoom', room: 'r', since: fill }));
      case 'body':
        return enc(obj({ type: 'createMessage', message: obj({ id: r.uuid(), room: 'r', body: fill }) }));
      case 'name':
        return enc(obj({ type: 'createMessage', message: obj({ room: 'r', body: 'b', author: obj({ name: fill }) }) }));
      case 'id':
        return enc(obj({ type: 'createMessage', message: obj({ id: fill, room: 'r', body: 'b' }) }));
      case 'extra':
        return enc(obj({ type: 'joinRoom', room: 'bad\u0000room', padding: fill }));
      default:
        return `{not json ${fill}`;
    }
  };
  const base = Buffer.byteLength(build('q'));
  const unitBytes = Buffer.byteLength(unit);
  const room = target - base;
  const n = Math.max(0, Math.floor(room / unitBytes));
  return build('q' + unit.repeat(n) + 'x'.repeat(Math.max(0, room - n * unitBytes)));
}

function generateSocketInputs(r: Rng, count: number): SockInput[] {
  const out: SockInput[] = [];
  while (out.length < count) {
    const kind = r.weighted<string>([
      [14, 'not-json'],
      [12, 'wrong-top-level'],
      [50, 'broken-frame'],
      [2, 'big'],
      [4, 'binary'],
      [0.5, 'empty'],
    ]);
    let input: SockInput | undefined;
    switch (kind) {
      case 'not-json':
        input = textInput(kind, notJsonText(r));
        break;
      case 'wrong-top-level':
        input = textInput(kind, wrongTopLevel(r));
        break;
      case 'broken-frame':
        input = textInput(kind, brokenFrame(r));
        break;
      case 'big':
        input = textInput(kind, bigFrame(r));
        if (input && input.expect !== 'close') input.label = 'near-limit';
        break;
      case 'binary': {
        // a binary message is never parsed as JSON, even when it holds a valid frame
        const data = r.chance(0.3) ? Buffer.from(enc(baseFrame(r, r.pick(KNOWN_TYPES)))) : r.bytes(r.int(0, 2000));
        input = { label: kind, data, expect: { code: 'unknown_type', notJson: false } };
        break;
      }
      default:
        input = textInput(kind, '');
    }
    if (input) out.push(input);
  }
  return out;
}

// ---- a WebSocket through engine.io-client (what browsers do, minus Primus's client) --------

class FuzzSocket {
  readonly replies: Frame[] = [];
  closed = false;
  closeReason = '';
  private waiters: Array<() => void> = [];

  private constructor(private readonly sock: EioSocket) {
    sock.on('message', (data: unknown) => {
      const value: unknown = JSON.parse(String(data));
      if (typeof value === 'string') {
        if (value.startsWith('primus::ping::')) sock.send(JSON.stringify(`primus::pong::${value.slice(14)}`));
        return;
      }
      this.replies.push(value as Frame);
      this.poke();
    });
    sock.on('close', (reason: string) => {
      this.closed = true;
      this.closeReason = reason;
      this.poke();
    });
  }

  static async open(url: string): Promise<FuzzSocket> {
    const sock = new EioSocket(url, { path: '/primus', transports: ['websocket'] });
    const s = new FuzzSocket(sock);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the WebSocket did not open')), 10_000);
      sock.once('open', () => {
        clearTimeout(timer);
        resolve();
      });
      sock.once('error', (e: string | Error) => {
        clearTimeout(timer);
        reject(e instanceof Error ? e : new Error(e));
      });
    });
    return s;
  }

  private poke(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  until(check: () => boolean, timeoutMs: number): Promise<boolean> {
    return waitUntil(check, timeoutMs, (fn) => this.waiters.push(fn));
  }

  send(data: string | Buffer): void {
    this.sock.send(data);
  }

  close(): void {
    this.sock.close();
  }
}

// ---- a raw WebSocket on node:net, for what engine.io-client cannot send --------------------

type WsOutcome = 'closed' | 'answered' | 'timeout';

class RawWebSocket {
  /** engine.io packets received, as text */
  readonly packets: string[] = [];
  closed = false;
  private buf = Buffer.alloc(0);
  private waiters: Array<() => void> = [];

  private constructor(private readonly sock: net.Socket) {}

  static open(port: number): Promise<RawWebSocket> {
    return new Promise((resolve, reject) => {
      const sock = net.connect(port, '127.0.0.1');
      const ws = new RawWebSocket(sock);
      let head = Buffer.alloc(0);
      let upgraded = false;
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new Error('raw WebSocket did not open'));
      }, 10_000);
      sock.on('error', () => undefined);
      sock.on('close', () => {
        ws.closed = true;
        ws.poke();
        if (!upgraded) {
          clearTimeout(timer);
          reject(new Error('raw WebSocket closed during the handshake'));
        }
      });
      sock.on('data', (d: Buffer) => {
        if (!upgraded) {
          head = Buffer.concat([head, d]);
          const end = head.indexOf('\r\n\r\n');
          if (end < 0) return;
          if (!head.subarray(0, end).toString('latin1').startsWith('HTTP/1.1 101')) {
            clearTimeout(timer);
            sock.destroy();
            reject(new Error(`no upgrade: ${head.subarray(0, end).toString('latin1')}`));
            return;
          }
          upgraded = true;
          d = head.subarray(end + 4);
        }
        ws.onData(d);
        if (ws.packets.some((p) => p.startsWith('0{'))) {
          clearTimeout(timer);
          resolve(ws);
        }
      });
      sock.write(
        'GET /primus/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
  }

  private poke(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  private onData(d: Buffer): void {
    this.buf = Buffer.concat([this.buf, d]);
    for (;;) {
      if (this.buf.length < 2) return;
      const b0 = this.buf[0];
      let len = this.buf[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = this.buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        len = Number(this.buf.readBigUInt64BE(2));
        off = 10;
      }
      if (this.buf.length < off + len) return;
      const payload = this.buf.subarray(off, off + len);
      this.buf = this.buf.subarray(off + len);
      const opcode = b0 & 0x0f;
      if (opcode === 1) {
        const p = payload.toString('utf8');
        if (p === '2') this.send(RawWebSocket.frame(1, Buffer.from('3'))); // engine.io ping → pong
        this.packets.push(p);
      } else if (opcode === 8) {
        this.closed = true;
      }
      this.poke();
    }
  }

  /** A client frame: masked unless told otherwise. `declaredLength` lies about the length. */
  static frame(opcode: number, payload: Buffer, o: { fin?: boolean; mask?: boolean; rsv?: number; declaredLength?: number | bigint } = {}): Buffer {
    const fin = o.fin ?? true;
    const mask = o.mask ?? true;
    const len = o.declaredLength ?? payload.length;
    const head: number[] = [(fin ? 0x80 : 0) | ((o.rsv ?? 0) << 4) | opcode];
    let ext = Buffer.alloc(0);
    if (typeof len === 'bigint' || len > 0xffff) {
      head.push((mask ? 0x80 : 0) | 127);
      ext = Buffer.alloc(8);
      ext.writeBigUInt64BE(BigInt(len));
    } else if (len > 125) {
      head.push((mask ? 0x80 : 0) | 126);
      ext = Buffer.alloc(2);
      ext.writeUInt16BE(len);
    } else head.push((mask ? 0x80 : 0) | len);
    if (!mask) return Buffer.concat([Buffer.from(head), ext, payload]);
    const key = randomBytes(4);
    const masked = Buffer.from(payload);
    for (let i = 0; i < masked.length; i++) masked[i] ^= key[i & 3];
    return Buffer.concat([Buffer.from(head), ext, key, masked]);
  }

  send(b: Buffer): void {
    if (!this.sock.destroyed) this.sock.write(b);
  }

  end(): void {
    this.sock.end();
  }

  destroy(): void {
    this.sock.destroy();
  }

  /** answered: a reply to the probe hello arrived; closed: the server closed the connection */
  async outcome(timeoutMs: number): Promise<WsOutcome> {
    const answered = () => this.packets.some((p) => p.startsWith('4{"type":"hello"'));
    const done = await waitUntil(() => this.closed || answered(), timeoutMs, (fn) => this.waiters.push(fn));
    if (!done) return 'timeout';
    return answered() ? 'answered' : 'closed';
  }
}

interface RawWsInput {
  label: string;
  /** the frames to send after the handshake; then a probe hello unless `end` */
  frames: Buffer[];
  end?: boolean;
  must: 'closed' | 'answered' | 'either';
  /** when answered: the error code that must come before the probe's reply */
  errorFirst?: ErrorCode;
}

const PROBE = RawWebSocket.frame(1, Buffer.from('4{"type":"hello","protocol":2}'));

function generateRawWsInputs(r: Rng, count: number): RawWsInput[] {
  const F = RawWebSocket.frame;
  const text = (s: string | Buffer) => (typeof s === 'string' ? Buffer.from(s) : s);
  const INVALID_UTF8 = [[0xff], [0xfe], [0xc0, 0x80], [0xc1, 0xbf], [0xe0, 0x80, 0x80], [0xed, 0xa0, 0x80], [0xed, 0xbf, 0xbf], [0xf4, 0x90, 0x80, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0x80], [0xe2, 0x82], [0xf0, 0x9f, 0x98]];
  const gens: Array<readonly [number, () => RawWsInput]> = [
    [6, () => {
      const bad = Buffer.from(r.pick(INVALID_UTF8));
      const pre = Buffer.from(`4{"type":"joinRoom","room":"${r.chars(r.int(0, 10), SAFE_ALPHABET)}`);
      return { label: 'text frame with invalid UTF-8', frames: [F(1, Buffer.concat([pre, bad, Buffer.from('"}')]))], must: 'closed' };
    }],
    [2, () => ({ label: 'unmasked client frame', frames: [F(1, text('4{"type":"hello","protocol":2}'), { mask: false })], must: 'closed' })],
    [2, () => ({ label: 'reserved bits set', frames: [F(1, text('4"x"'), { rsv: r.int(1, 7) })], must: 'closed' })],
    [2, () => ({ label: 'reserved opcode', frames: [F(r.pick([3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf]), r.bytes(r.int(0, 20)))], must: 'closed' })],
    [1, () => ({ label: 'control frame over 125 bytes', frames: [F(9, r.bytes(r.int(126, 400)))], must: 'closed' })],
    [1, () => ({ label: 'fragmented control frame', frames: [F(9, r.bytes(4), { fin: false })], must: 'closed' })],
    [1, () => ({ label: 'continuation without a start', frames: [F(0, text('4"x"'))], must: 'closed' })],
    [1, () => ({ label: 'new message inside a fragmented one', frames: [F(1, text('4{"ty'), { fin: false }), F(1, text('4"x"'))], must: 'closed' })],
    [1, () => ({ label: '64-bit length with the top bit set', frames: [F(1, r.bytes(8), { declaredLength: 0x8000000000000000n + BigInt(r.int(0, 1000)) })], must: 'closed' })],
    [2, () => ({ label: 'declared length over 64 KiB', frames: [F(1, r.bytes(r.int(0, 1000)), { declaredLength: r.int(65_537, 50_000_000) })], must: 'closed' })],
    [1, () => {
      const part = Buffer.from(`4"${'x'.repeat(30_000)}`);
      return { label: 'fragments adding up to over 64 KiB', frames: [F(1, part, { fin: false }), F(0, Buffer.from('y'.repeat(30_000)), { fin: false }), F(0, Buffer.from('z'.repeat(10_000) + '"'))], must: 'closed' };
    }],
    [2, () => {
      const payload = r.chance(0.3) ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0, 0]), r.bytes(r.int(0, 60))]);
      if (payload.length >= 2) payload.writeUInt16BE(r.pick([0, 999, 1004, 1005, 1006, 1015, 2999, 4000, 65535, r.int(0, 65535)]));
      return { label: 'close frame', frames: [F(8, payload)], must: 'closed' };
    }],
    [2, () => {
      const declared = r.int(10, 5000);
      return { label: 'truncated frame, then FIN', frames: [F(1, Buffer.from('4'.repeat(Math.min(5, declared))), { declaredLength: declared })], end: true, must: 'closed' };
    }],
    [6, () => {
      const first = r.pick(['0', '1', '2', '3', '5', '6', '7', '8', '9', 'a', 'x', '{', '"', ' ', 'b', '\u0000', '😀']);
      return { label: 'engine.io packet of another type', frames: [F(1, Buffer.from(first + r.unicode(r.int(0, 30))))], must: 'either' };
    }],
    [1, () => ({ label: 'empty text frame', frames: [F(1, Buffer.alloc(0))], must: 'either' })],
    [4, () => ({ label: 'binary frame of random bytes', frames: [F(2, r.bytes(r.int(0, 3000)))], must: 'answered', errorFirst: 'unknown_type' })],
    [3, () => {
      const msg = Buffer.from(`4${notJsonText(r)}`);
      const cut = r.int(1, Math.max(1, msg.length - 1));
      const frames = cut < msg.length ? [F(1, msg.subarray(0, cut), { fin: false }), F(0, msg.subarray(cut))] : [F(1, msg)];
      return { label: 'fragmented non-JSON message', frames, must: 'answered', errorFirst: 'bad_frame' };
    }],
    [2, () => ({ label: 'ping and pong frames', frames: [F(r.pick([9, 10]), r.bytes(r.int(0, 125)))], must: 'answered' })],
  ];
  return Array.from({ length: count }, () => r.weighted(gens)());
}

// ---- raw HTTP on node:net ------------------------------------------------------------------

interface HttpResult {
  status?: number;
  headers: string;
  body: string;
  closed: boolean;
  timedOut: boolean;
}

function rawHttp(port: number, data: Buffer, o: { end?: boolean; body?: boolean; timeoutMs?: number; reset?: boolean } = {}): Promise<HttpResult> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let got = Buffer.alloc(0);
    let finished = false;
    const finish = (res: HttpResult, reset = false) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      // A reset, so that a connection the server left open does not keep it from stopping.
      if (reset || o.reset) sock.resetAndDestroy();
      else sock.destroy();
      resolve(res);
    };
    const parse = (closed: boolean): HttpResult | undefined => {
      let at = 0;
      for (;;) {
        const end = got.indexOf('\r\n\r\n', at);
        if (end < 0) return closed ? { headers: '', body: '', closed: true, timedOut: false } : undefined;
        const head = got.subarray(at, end).toString('latin1');
        const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
        if (!m) return { headers: head, body: '', closed, timedOut: false };
        const status = Number(m[1]);
        if (status >= 100 && status < 200 && status !== 101) {
          at = end + 4;
          continue;
        }
        // (a 101 is a WebSocket now: it does not close)
        if (o.body && !closed && status !== 101) return undefined;
        return { status, headers: head, body: got.subarray(end + 4).toString('utf8'), closed, timedOut: false };
      }
    };
    const timer = setTimeout(() => finish(parse(false) ?? { headers: '', body: '', closed: false, timedOut: true }, true), o.timeoutMs ?? 10_000);
    sock.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      const res = parse(false);
      if (res) finish(res);
    });
    sock.on('error', () => undefined);
    sock.on('close', () => finish(parse(true) ?? { headers: '', body: '', closed: true, timedOut: false }));
    sock.write(data);
    if (o.end) sock.end();
  });
}

type HttpExpect = 'status' | 'client-error' | 'ok' | 'rejected' | 'any';
interface HttpInput {
  label: string;
  data: Buffer;
  /** status: answered below 500; client-error: answered 4xx; ok: answered 200; rejected: 400/431
   *  or closed; any: answered below 500 or closed */
  expect: HttpExpect;
  end?: boolean;
  /** a live engine.io session's id is put in for {SID}; such requests go to the child app */
  needsSid?: number;
}

const STATIC_FILES = ['/app.js', '/style.css'];
const PATH_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/";
const PCT = ['%00', '%2f', '%2F', '%5c', '%2e', '%2e%2e', '%c0%ae', '%c0%af', '%ed%a0%80', '%ff', '%zz', '%', '%4', '%e0%a4%a', '%0a', '%0d%0a', '%20', '%25', '%3f', '%23', '%u0041', '%E2%80%AE', '%F0%9F%98%80'];

function randomPath(r: Rng): string {
  return r.weighted<() => string>([
    [3, () => r.pick(['/', '/healthz', '/readyz', '/primus/primus.js', '/vendor/primus.js', '/primus/spec', '/primus', '/primus/', '/primusx', '/static/app.js', ...STATIC_FILES, '/views/index.pug', '/package.json', '/.env', '/src/server.ts', '/index.html', '/favicon.ico'])],
    [3, () => r.pick(['/../../etc/passwd', '/..%2f..%2fetc%2fpasswd', '/%2e%2e/%2e%2e/etc/passwd', '/..%5c..%5cpackage.json', '/static/../package.json', '/./../package.json', '//etc/passwd', '/%2e%2e%2fpackage.json', '/chat.js/..', '/chat.js%00.png', '/style.css%2500', '/primus/../package.json', '/primus/..%2f..%2fpackage.json', '/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd', '/....//....//etc/passwd', '/healthz/', '/HEALTHZ', '/healthz;x', '/healthz%00'])],
    [4, () => {
      let p = '';
      for (let n = r.int(1, 6); n > 0; n--) p += '/' + (r.chance(0.3) ? r.pick(PCT) : '') + r.chars(r.int(0, 12), PATH_CHARS) + (r.chance(0.2) ? r.pick(['..', '.', '', '%2e%2e']) : '');
      return p;
    }],
    [1, () => '/' + 'a'.repeat(r.int(100, 15_000))],
    [1, () => '/' + r.pick(PCT).repeat(r.int(10, 2000))],
    [1, () => r.pick(['*', 'http://127.0.0.1/healthz', 'http://evil.example/../../etc/passwd', '//evil.example/x', 'https://x:y@127.0.0.1:1/'])],
  ])();
}

function randomQuery(r: Rng): string {
  if (r.chance(0.4)) return '';
  const parts: string[] = [];
  for (let n = r.weighted([[10, 1], [4, 3], [1, r.int(10, 1500)]] as const); n > 0; n--) {
    const key = r.pick(['room', 'room', 'room[]', 'room[a]', 'room[__proto__]', '__proto__[polluted]', 'constructor[prototype][polluted]', 'EIO', 'transport', 'sid', 'x', r.chars(r.int(1, 8), PATH_CHARS.replace(/[&=/]/g, ''))]);
    const value = r.weighted<() => string>([
      [3, () => r.chars(r.int(0, 20), 'abcdefghijklmnopqrstuvwxyz0123456789-._~')],
      [2, () => encodeURIComponent(wellFormed(r.unicode(r.int(0, 30))))],
      [2, () => r.pick(PCT) + r.chars(r.int(0, 5), 'abc') + r.pick(PCT)],
      [1, () => 'x'.repeat(r.int(99, 4000))],
      [1, () => r.pick(['', '%00', '%7f', '%c2%85', 'a%0Ab', '%09'])],
    ])();
    parts.push(r.chance(0.1) ? key : `${key}=${value}`);
  }
  return '?' + parts.join(r.chance(0.9) ? '&' : ';');
}

const HEADER_NAMES = ['Accept', 'Accept-Encoding', 'Accept-Language', 'Content-Type', 'Cookie', 'Authorization', 'Origin', 'Referer', 'User-Agent', 'X-Forwarded-For', 'X-Forwarded-Host', 'X-Forwarded-Proto', 'X-Real-IP', 'If-None-Match', 'If-Modified-Since', 'If-Match', 'If-Unmodified-Since', 'Cache-Control', 'Pragma', 'Range', 'If-Range', 'Sec-WebSocket-Key', 'Sec-WebSocket-Version', 'Sec-WebSocket-Protocol', 'Access-Control-Request-Method', 'Access-Control-Request-Headers', 'Content-Encoding', 'Content-Language', 'Forwarded', 'Via', 'X-HTTP-Method-Override', 'Max-Forwards', 'TE', 'Trailer', 'Upgrade', 'DNT', 'X-Requested-With'];
const HEADER_VALUE_CHARS = Array.from({ length: 0x7f - 0x21 }, (_, i) => String.fromCharCode(0x21 + i)).join('') + '  \t';
/** Range values, unsatisfiable ones too (bug 2) */
const RANGES = ['bytes=0-0', 'bytes=0-', 'bytes=-1', 'bytes=0-1,2-3', 'bytes=abc', 'bytes=--', 'items=0-1', 'bytes=0-1,' + '0-1,'.repeat(200) + '0-1', 'bytes=', 'bytes=-0', 'bytes=1-0,0-1', 'bytes=999999-', 'bytes=5-2', 'bytes=999999-9999999', 'bytes=-0,999999-'];

function headerValue(r: Rng, name: string): string {
  if (name === 'Range') return r.pick(RANGES);
  return r.weighted<() => string>([
    [4, () => r.chars(r.int(0, 40), HEADER_VALUE_CHARS).trim()],
    [1, () => r.chars(r.int(1000, 8000), HEADER_VALUE_CHARS).trim()],
    [2, () => r.pick(['', 'null', '*', '"nope"', 'W/"nope", *', '../../etc/passwd', 'gzip;q=abc, *;q=-1', 'application/json; charset=utf-999', 'multipart/form-data; boundary=', 'Basic !!!', 'Bearer ' + 'a'.repeat(3000), 'http://evil.example', 'W/"x"', 'Thu, 01 Jan 1970 00:00:00 GMT', 'garbage date', '13', 'websocket', 'h2c', '127.0.0.1, ::1, nonsense', 'for="_gazonk"', 'a=b; c', '$x=1; __proto__=y', 'DELETE'])],
    // obs-text: bytes 0x80-0xff, as Latin-1
    [1, () => r.chars(r.int(1, 20), 'abc\u0080\u00a0\u00e9\u00ff')],
  ])();
}

function header(name: string, value: string): string {
  return `${name}: ${value}\r\n`;
}

function wellFormedRequest(r: Rng): HttpInput {
  const methods = METHODS.filter((m) => m !== 'CONNECT');
  const method = r.chance(0.5) ? 'GET' : r.pick(methods);
  const target = randomPath(r) + randomQuery(r);
  let head = `${method} ${target} HTTP/${r.chance(0.9) ? '1.1' : '1.0'}\r\n`;
  head += header('Host', r.pick(['127.0.0.1', 'localhost', 'x', 'evil.example', '[::1]', 'a.b.c:99999', '..', r.chars(r.int(1, 30), 'abcdefghijklmnop.-:0123456789')]));
  head += 'Connection: close\r\n';
  for (let n = r.weighted([[5, r.int(0, 4)], [1, r.int(5, 40)]] as const); n > 0; n--) {
    const name = r.chance(0.8) ? r.pick(HEADER_NAMES) : `X-${r.chars(r.int(1, 20), 'abcdefghijklmnopqrstuvwxyz-_0123456789!#$%&\'*+.^`|~')}`;
    head += header(name, headerValue(r, name));
  }
  let body: Buffer = Buffer.alloc(0);
  if (r.chance(0.3)) {
    body = r.chance(0.5) ? r.bytes(r.int(0, 16_000)) : Buffer.from(r.pick(['{"type":"hello","protocol":2}', 'a=1&b=2', '<xml/>', '{"__proto__":{"polluted":true}}', '0{"sid":"x"}', '4{"type":"hello"}\u001e4{}']));
    if (r.chance(0.2)) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < body.length; i += 1000) {
        const c = body.subarray(i, i + 1000);
        chunks.push(Buffer.from(`${c.length.toString(16)}\r\n`), c, Buffer.from('\r\n'));
      }
      chunks.push(Buffer.from('0\r\n\r\n'));
      head += 'Transfer-Encoding: chunked\r\n';
      body = Buffer.concat(chunks);
    } else head += `Content-Length: ${body.length}\r\n`;
  }
  const data = Buffer.concat([Buffer.from(head + '\r\n', 'latin1'), body]);
  // a request line plus headers over node's 16 KiB limit is answered 431
  return { label: `${method} ${target.slice(0, 40)}`, data, expect: 'status' };
}

function engineIoRequest(r: Rng, sids: number): HttpInput {
  const eio = r.weighted<() => string>([[3, () => '4'], [3, () => r.pick(['', '0', '1', '2', '3', '5', '44', '-1', '4.0', 'x', '%00', '4%00', '99999999999999999999', '4&EIO=3'])]])();
  const transport = r.weighted<() => string>([[4, () => 'polling'], [2, () => r.pick(['websocket', 'xhr', '', 'flashsocket', 'webtransport', 'polling%00', 'POLLING', '__proto__'])]])();
  const sidKind = r.weighted<() => string>([
    [3, () => 'valid'],
    [4, () => r.pick(['', 'x', 'AAAAAAAAAAAAAAAAAAAA', '../../etc/passwd', '%00', '__proto__', 'constructor', 'toString'])],
    [2, () => r.chars(r.int(1, 40), 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_')],
    [1, () => 'x'.repeat(r.int(100, 5000))],
    [1, () => encodeURIComponent(wellFormed(r.unicode(r.int(1, 20))))],
    [1, () => 'none'],
  ])();
  const post = r.chance(0.6);
  const sidIndex = sidKind === 'valid' && post && sids > 0 ? r.int(0, sids - 1) : undefined;
  // a GET with a live session is a long poll that waits for data: only POSTs use one
  const sid = sidIndex !== undefined ? '{SID}' : sidKind === 'valid' ? 'none' : sidKind;
  let target = `/primus/?EIO=${eio}&transport=${transport}`;
  if (sid !== 'none') target += `&sid=${sid}`;
  const extra = r.chance(0.3) ? r.pick(['&t=' + r.chars(7, 'abcdefgh'), '&b64=1', '&j=alert(1)', '&j=0', '&sid=dup', '&EIO=3']) : '';
  target += extra;
  // a wrong version or transport, an unknown session, a doubled parameter: engine.io says 400
  // (an empty sid is no sid: a handshake)
  const bad = eio !== '4' || transport !== 'polling' || !['valid', 'none', ''].includes(sidKind) || extra === '&sid=dup' || extra === '&EIO=3';
  let head = `${post ? 'POST' : 'GET'} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n`;
  if (r.chance(0.3)) head += header('Content-Type', r.pick(['text/plain;charset=UTF-8', 'application/octet-stream', 'application/json', 'garbage', '']));
  if (r.chance(0.2)) head += header('Origin', r.pick(['http://evil.example', 'null', r.chars(20, HEADER_VALUE_CHARS).trim()]));
  let body: Buffer = Buffer.alloc(0);
  let expect: HttpExpect = bad ? 'client-error' : 'status';
  if (post) {
    body = r.weighted<() => Buffer>([
      [3, () => Buffer.from(r.pick(['', '4', '4hello', '4{"type":"hello","protocol":2}\u001e4{"type":"nope"}', '\u001e\u001e\u001e', '9junk', '1', '2', '3', '6', '5', '0', '{"sid":"x"}', 'b4AAAA', 'bNOT BASE64!!', '4' + '\u001e'.repeat(100), '4"primus::id::"', '4"primus::pong::1"']))],
      [3, () => Buffer.from(r.unicode(r.int(1, 400)))],
      [2, () => r.bytes(r.int(1, 4000))],
      [1, () => Buffer.from('4' + 'x'.repeat(r.int(60_000, 65_500)))],
      [1, () => Buffer.from('4' + 'x'.repeat(r.int(65_537, 150_000)))],
    ])();
    // engine.io drops the connection of a body over its buffer size
    if (body.length > 65_536 && !bad) expect = 'any';
    head += `Content-Length: ${body.length}\r\n`;
  }
  return { label: `engine.io ${post ? 'POST' : 'GET'} ${target.slice(0, 60)}`, data: Buffer.concat([Buffer.from(head + '\r\n', 'latin1'), body]), expect, needsSid: sidIndex };
}

/** the page with a room name in the query: a name the schema refuses is a 400 */
function pageRequest(r: Rng): HttpInput {
  const valid = r.chance(0.4);
  const room = valid
    ? r.pick([goodRoom(r), '😀'.repeat(LIMITS.room), 'é'.repeat(LIMITS.room), '\ufeff', '__proto__', 'constructor', '../../etc/passwd', '<script>'])
    : r.chance(0.5)
      ? longString(r, LIMITS.room + 1, 3000)
      : withControlChar(r, goodRoom(r), ALL_CONTROLS);
  const target = `${r.pick(['/?', '/?x=1&', '/?a=%zz&'])}room=${encodeURIComponent(wellFormed(room))}${r.pick(['', '&y=2', '&'])}`;
  const head = `${r.pick(['GET', 'HEAD'])} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`;
  // a request line over node's 16 KiB head limit is a 431 whatever the room
  if (head.length > 16 * 1024 - 200) return { label: 'page, room too long for the head', data: Buffer.from(head, 'latin1'), expect: 'client-error' };
  return { label: `page, ${valid ? 'valid' : 'invalid'} room`, data: Buffer.from(head, 'latin1'), expect: valid ? 'ok' : 'client-error' };
}

/** bug 4: the request targets the url.parse that Primus runs on every request throws on */
function crashesPrimus(data: Buffer): string | undefined {
  const target = /^\S+ (\S+) HTTP\//.exec(data.subarray(0, data.indexOf('\r\n')).toString('latin1'))?.[1];
  if (target === undefined) return undefined;
  try {
    legacyUrlParse(target, true);
    return undefined;
  } catch {
    return target;
  }
}

function upgradeRequest(r: Rng): HttpInput {
  // an Upgrade outside /primus was bug 3
  const target = r.pick(['/primus/?EIO=4&transport=websocket', '/primus/?EIO=3&transport=websocket', '/primus/?EIO=4&transport=polling', '/primus/', '/primus/?EIO=4&transport=websocket&sid=bogus', '/primus/?EIO=x&transport=websocket', '/', '/healthz', '/app.js', '/nope', '/primusx', '/?room=x', '*']);
  let head = `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: ${r.pick(['websocket', 'WebSocket', 'h2c', 'foo', ''])}\r\n`;
  if (r.chance(0.7)) head += header('Sec-WebSocket-Key', r.pick([r.bytes(16).toString('base64'), '', 'short', 'x'.repeat(100), '!!!!!!!!!!!!!!!!!!!!!!==']));
  if (r.chance(0.7)) head += header('Sec-WebSocket-Version', r.pick(['13', '8', '0', 'abc', '13, 8', '']));
  if (r.chance(0.3)) head += header('Sec-WebSocket-Extensions', r.pick(['permessage-deflate', 'permessage-deflate; client_max_window_bits=99', 'garbage;;;', 'x-webkit-deflate-frame']));
  if (r.chance(0.3)) head += header('Sec-WebSocket-Protocol', r.pick(['chat', '', ',,,', 'a b']));
  return { label: `upgrade ${target}`, data: Buffer.from(head + '\r\n', 'latin1'), expect: 'status' };
}

/** Malformed HTTP: node's parser must reject it (400, or 431 for a head too large) or close. */
function garbageRequest(r: Rng): HttpInput {
  const okHead = 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n';
  const text = r.weighted<() => string | Buffer>([
    [3, () => r.bytes(r.int(1, 3000))],
    [2, () => r.pick([
      'GET\r\n\r\n', 'GET / HTTP/9.9\r\nHost: x\r\n\r\n', 'GET / HTTP/1.2\r\nHost: x\r\n\r\n', 'GET / FOO/1.1\r\nHost: x\r\n\r\n', 'GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n',
      '/ GET HTTP/1.1\r\nHost: x\r\n\r\n', 'get / HTTP/1.1\r\nHost: x\r\n\r\n', 'FOO / HTTP/1.1\r\nHost: x\r\n\r\n', 'G ET / HTTP/1.1\r\nHost: x\r\n\r\n', 'GET\t/\tHTTP/1.1\r\nHost: x\r\n\r\n',
      'GET / HTTP/1.1\r\n\r\n', 'GET / HTTP/1.1\r\nHost x\r\n\r\n', 'GET / HTTP/1.1\r\nHost : x\r\n\r\n', 'GET / HTTP/1.1\r\n Host: x\r\n\r\n', 'GET / HTTP/1.1\r\nHo st: x\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: x\r\nX(y): z\r\n\r\n', 'GET / HTTP/1.1\r\nHost: x\r\nX: a\u0001b\r\n\r\n', 'GET / HTTP/1.1\r\nHost: x\r\nX: a\u0000b\r\n\r\n', 'GET / HTTP/1.1\r\nHost: x\r\nX: a\u007fb\r\n\r\n',
      'GET / HTTP/1.1\nHost: x\n\n', 'GET / HTTP/1.1\rHost: x\r\r', 'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab',
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n',
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n', 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked, identity\r\n\r\n',
      'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'SSH-2.0-OpenSSH_9.6\r\n', '\u0016\u0003\u0001\u0002\u0000\u0001\u0000\u0001\u00fc\u0003\u0003', 'GET / HTTP/1.1\r\nHost: x\r\n\u0000\r\n\r\n',
      'GET /a\u0000b HTTP/1.1\r\nHost: x\r\n\r\n', 'GET /\u0001 HTTP/1.1\r\nHost: x\r\n\r\n', 'GET /a b HTTP/1.1\r\nHost: x\r\n\r\n', 'GET /é HTTP/1.1\r\nHost: x\r\n\r\n',
    ])],
    // a well-formed head cut short, then FIN
    [2, () => okHead.slice(0, r.int(1, okHead.length + 1))],
    [1, () => `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(r.int(17_000, 40_000))}\r\n\r\n`],
    [1, () => `GET / HTTP/1.1\r\nHost: x\r\n${Array.from({ length: r.int(1500, 3000) }, (_, i) => `X-${i}: vvvvvvvv`).join('\r\n')}\r\n\r\n`],
    [2, () => {
      // one byte of a good request replaced by a byte no HTTP head may hold there
      const i = r.int(0, okHead.indexOf('\r\n') - 1);
      return okHead.slice(0, i) + r.pick(['\u0000', '\u0001', '\u007f', '\r', '\n', '\u00ff']) + okHead.slice(i + 1) + '\r\n';
    }],
  ])();
  return { label: 'garbage', data: typeof text === 'string' ? Buffer.from(text, 'latin1') : text, expect: 'rejected', end: true };
}

// ---- the tests -------------------------------------------------------------------------------

const SOCKET_INPUTS = 8_500;
const RAW_WS_INPUTS = 320;
const LANES = 4;
const WINDOW = 64;
const HTTP_REQUESTS = 1_300;
const PAGE_REQUESTS = 200;
const ENGINE_IO_REQUESTS = 500;
const UPGRADE_REQUESTS = 100;
const GARBAGE_REQUESTS = 400;
const HTTP_CONCURRENCY = 16;
const SESSIONS = 12;

t.comment(`FUZZ_SEED=${SEED} (replay: FUZZ_SEED=${SEED} npx tap test/chat-fuzz.test.ts)`);

const db = await startDb(t);
const { url, port, app } = await startApp(t, db, { RATE_LIMIT_BURST: '10000', RATE_LIMIT_PER_SECOND: '10000' });
// The app also runs as a child process (as `npm start` runs it), started now so that it boots
// while the socket fuzz runs. It takes the junk sent into live long-polling sessions (engine.io
// closes such a session with a 30 s timer that would hold this process open), then bug 4.
const childApp = spawnApp(t, { RETHINKDB_URL: db.url });
childApp.catch(() => undefined); // (awaited where used)

const tally = new Map<string, number>();
const count = (what: string, n = 1) => tally.set(what, (tally.get(what) ?? 0) + n);

t.test(`socket protocol: ${SOCKET_INPUTS} malformed frames over engine.io WebSockets`, async (t) => {
  const inputs = generateSocketInputs(new Rng(streamSeed(1)), SOCKET_INPUTS);
  const problems: string[] = [];
  const problem = (i: number, what: string) => {
    if (problems.length < 50) problems.push(`input #${i} (${inputs[i].label}) ${preview(inputs[i].data)}: ${what}`);
  };
  const stats = { sent: 0, expectedErrors: 0, errors: 0, oversized: 0, closedForSize: 0, connections: 0 };
  const byLabel = new Map<string, number>();
  let next = 0;

  async function lane(): Promise<void> {
    let sock = await FuzzSocket.open(url);
    stats.connections++;
    let pending: number[] = [];
    let checked = 0;
    const check = () => {
      while (checked < sock.replies.length) {
        const f = sock.replies[checked++];
        const i = pending.shift();
        if (i === undefined) {
          problems.push(`a reply to nothing: ${JSON.stringify(f).slice(0, 200)}`);
          continue;
        }
        const exp = inputs[i].expect;
        if (exp === 'close') continue;
        if (f.type !== 'error') {
          problem(i, `expected an error, got ${JSON.stringify(f).slice(0, 200)}`);
          continue;
        }
        stats.errors++;
        if (f.code !== exp.code) problem(i, `expected ${exp.code}, got ${f.code} (${String(f.message).slice(0, 100)})`);
        if (typeof f.message !== 'string' || f.message === '') problem(i, 'the error has no message');
        if (exp.notJson && f.message !== 'frame is not valid JSON') problem(i, `expected the not-JSON message, got ${String(f.message)}`);
        if (f.clientId !== exp.clientId) problem(i, `expected clientId ${JSON.stringify(exp.clientId)}, got ${JSON.stringify(f.clientId)}`);
      }
    };
    const reopen = async () => {
      sock.close();
      sock = await FuzzSocket.open(url);
      stats.connections++;
      pending = [];
      checked = 0;
    };
    /** waits until at most `max` inputs are waiting for their reply */
    const drain = async (max: number) => {
      await sock.until(() => {
        check();
        return pending.length <= max || sock.closed;
      }, 15_000);
      if (pending.length > max) {
        problem(pending[0], sock.closed ? `no reply: the connection closed (${sock.closeReason}) with ${pending.length} frames unanswered` : `no reply within 15 s (${pending.length} unanswered)`);
        await reopen();
      }
    };
    for (let i = next++; i < inputs.length; i = next++) {
      const input = inputs[i];
      byLabel.set(input.label, (byLabel.get(input.label) ?? 0) + 1);
      if (input.expect === 'close') {
        await drain(0);
        stats.oversized++;
        const before = sock.replies.length;
        sock.send(input.data);
        if (await sock.until(() => sock.closed, 10_000)) stats.closedForSize++;
        else problem(i, 'an oversized frame did not close the connection');
        if (sock.replies.length > before) problem(i, `a reply to an oversized frame: ${JSON.stringify(sock.replies[before]).slice(0, 200)}`);
        await reopen();
        continue;
      }
      sock.send(input.data);
      stats.sent++;
      stats.expectedErrors++;
      pending.push(i);
      if (pending.length >= WINDOW) await drain(WINDOW / 2);
    }
    await drain(0);
    sock.close();
  }

  await Promise.all(Array.from({ length: LANES }, lane));
  t.comment(`socket inputs by kind: ${[...byLabel].map(([k, v]) => `${k} ${v}`).join(', ')}; ${stats.connections} connections`);
  t.same(problems, [], 'every malformed frame got the error reply it should, in order');
  t.equal(stats.errors, stats.expectedErrors, `${stats.errors} error replies for ${stats.expectedErrors} malformed frames on connections that stayed open`);
  t.equal(stats.closedForSize, stats.oversized, `each of the ${stats.oversized} frames over 64 KiB closed its connection`);
  t.equal(stats.sent + stats.oversized, SOCKET_INPUTS, `${SOCKET_INPUTS} inputs sent`);
  count('socket frames via engine.io-client', SOCKET_INPUTS);
  const res = await fetch(`${url}/healthz`);
  t.equal(res.status, 200, 'the server is still up');
});

t.test(`socket protocol: ${RAW_WS_INPUTS} broken WebSocket and engine.io frames on a raw socket`, async (t) => {
  const inputs = generateRawWsInputs(new Rng(streamSeed(2)), RAW_WS_INPUTS);
  const problems: string[] = [];
  const outcomes = new Map<string, number>();
  let next = 0;
  async function worker(): Promise<void> {
    for (let i = next++; i < inputs.length; i = next++) {
      const input = inputs[i];
      const ws = await RawWebSocket.open(port);
      try {
        for (const f of input.frames) ws.send(f);
        if (input.end) ws.end();
        else ws.send(PROBE);
        const outcome = await ws.outcome(10_000);
        outcomes.set(`${input.label}: ${outcome}`, (outcomes.get(`${input.label}: ${outcome}`) ?? 0) + 1);
        const what = `input #${i} (${input.label}, ${input.frames.map((f) => preview(f)).join(' ')})`;
        if (outcome === 'timeout') problems.push(`${what}: neither answered nor closed within 10 s`);
        else if (input.must !== 'either' && outcome !== input.must) problems.push(`${what}: expected ${input.must}, got ${outcome}`);
        if (outcome === 'answered' && input.errorFirst) {
          const frames = ws.packets.filter((p) => p.startsWith('4{')).map((p) => JSON.parse(p.slice(1)) as Frame);
          if (frames[0]?.type !== 'error' || frames[0].code !== input.errorFirst) problems.push(`${what}: expected a ${input.errorFirst} error first, got ${JSON.stringify(frames[0])}`);
        }
      } finally {
        ws.destroy();
      }
    }
  }
  await Promise.all(Array.from({ length: 8 }, worker));
  t.comment(`raw WebSocket outcomes: ${[...outcomes].sort().map(([k, v]) => `${k} ${v}`).join('; ')}`);
  t.same(problems.slice(0, 30), [], 'every broken frame closed the connection or was answered, as it should');
  count('raw WebSocket frames', RAW_WS_INPUTS);
  t.equal((await fetch(`${url}/healthz`)).status, 200, 'the server is still up');
});

t.test(`HTTP: ${HTTP_REQUESTS + PAGE_REQUESTS + ENGINE_IO_REQUESTS + UPGRADE_REQUESTS + GARBAGE_REQUESTS} generated requests`, async (t) => {
  const r = new Rng(streamSeed(3));
  const inputs: HttpInput[] = [
    ...Array.from({ length: HTTP_REQUESTS }, () => wellFormedRequest(r)),
    ...Array.from({ length: PAGE_REQUESTS }, () => pageRequest(r)),
    ...Array.from({ length: ENGINE_IO_REQUESTS }, () => engineIoRequest(r, SESSIONS)),
    ...Array.from({ length: UPGRADE_REQUESTS }, () => upgradeRequest(r)),
    ...Array.from({ length: GARBAGE_REQUESTS }, () => garbageRequest(r)),
  ];
  // interleave the kinds, deterministically
  for (let i = inputs.length - 1; i > 0; i--) {
    const j = r.int(0, i);
    [inputs[i], inputs[j]] = [inputs[j], inputs[i]];
  }

  // live engine.io long-polling sessions on the child app, for junk POSTs with a valid sid
  const child = await childApp;
  const sids: string[] = [];
  for (let i = 0; i < SESSIONS; i++) {
    const res = await rawHttp(child.port, Buffer.from('GET /primus/?EIO=4&transport=polling HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'), { body: true });
    const m = /"sid":"([^"]+)"/.exec(res.body);
    if (!m) throw new Error(`no engine.io handshake: ${res.status} ${res.body.slice(0, 200)}`);
    sids.push(m[1]);
  }
  /** every session opened on this process's app, to close at the end */
  const sessions: Array<{ sid: string; jsonp: boolean }> = [];

  const problems: string[] = [];
  const statuses = new Map<string, number>();
  const urlParseThrows: string[] = [];
  let intoSessions = 0;
  let next = 0;
  async function worker(): Promise<void> {
    for (let i = next++; i < inputs.length; i = next++) {
      const input = inputs[i];
      const data = input.needsSid === undefined ? input.data : Buffer.from(input.data.toString('latin1').replace('{SID}', sids[input.needsSid]), 'latin1');
      const crash = input.expect === 'rejected' ? undefined : crashesPrimus(data);
      if (crash !== undefined) urlParseThrows.push(crash);
      // (the body is read to the end for the engine.io session ids in it)
      const toChild = input.needsSid !== undefined;
      const res = await rawHttp(toChild ? child.port : port, data, { end: input.end, body: input.expect !== 'rejected' && !input.label.startsWith('upgrade') });
      const handshake = /^(?:___eio\[(\d*)\]\(")?0\{\\?"sid\\?":\\?"([\w-]+)/.exec(res.body);
      if (handshake && !toChild) sessions.push({ sid: handshake[2], jsonp: handshake[1] !== undefined });
      if (toChild) intoSessions++;
      const shown = `${input.label}: ${preview(data.toString('latin1'), 300)}`;
      const key = res.status !== undefined ? String(res.status) : res.timedOut ? 'no answer' : 'closed';
      statuses.set(`${input.expect} ${key}`, (statuses.get(`${input.expect} ${key}`) ?? 0) + 1);
      if (res.timedOut) {
        problems.push(`${shown}: neither answered nor closed within 10 s`);
        continue;
      }
      if (res.status === undefined) {
        if (input.expect === 'status') problems.push(`${shown}: closed without an answer`);
        continue;
      }
      if (res.status >= 500) {
        const path = /^\S+ (\S+)/.exec(data.toString('latin1'))?.[1] ?? '';
        // the one 5xx allowed: /readyz says 503 when the database does not answer in time
        if (!(res.status === 503 && path.startsWith('/readyz'))) problems.push(`${shown}: answered ${res.status}\n${res.headers}\n${res.body.slice(0, 200)}`);
        continue;
      }
      if (input.expect === 'rejected' && res.status !== 400 && res.status !== 431) problems.push(`${shown}: garbage answered ${res.status}, not 400`);
      if (input.expect === 'client-error' && !(res.status >= 400 && res.status < 500)) problems.push(`${shown}: a bad request answered ${res.status}, not 4xx`);
      if (input.expect === 'ok' && res.status !== 200) problems.push(`${shown}: answered ${res.status}, not 200`);
    }
  }
  await Promise.all(Array.from({ length: HTTP_CONCURRENCY }, worker));
  t.comment(`HTTP outcomes (expectation, status): ${[...statuses].sort().map(([k, v]) => `${k}: ${v}`).join('; ')}; ${intoSessions} of the requests went into live sessions on the child app`);
  if (urlParseThrows.length) t.comment(`${urlParseThrows.length} requests had targets url.parse throws on (bug 4), e.g. ${JSON.stringify(urlParseThrows[0])}`);
  // Each session the fuzz opened is closed with a close packet ('1'); one left open would keep
  // its server-side close timer (30 s) running after the tests.
  for (const { sid, jsonp } of sessions) {
    const body = jsonp ? 'd=1' : '1';
    const type = jsonp ? 'Content-Type: application/x-www-form-urlencoded\r\n' : '';
    const res = await rawHttp(port, Buffer.from(`POST /primus/?EIO=4&transport=polling&sid=${sid}${jsonp ? '&j=0' : ''} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n${type}Content-Length: ${body.length}\r\n\r\n${body}`));
    if (res.status === undefined || res.status >= 500) problems.push(`closing session ${sid}: ${res.status ?? 'no answer'}`);
  }
  const closedAll = await waitUntil(() => app.stats().sockets === 0, 5000, (fn) => setTimeout(fn, 50));
  t.ok(closedAll, `every engine.io session the fuzz opened (${sessions.length}) is closed (${app.stats().sockets} open)`);
  t.same(problems.slice(0, 30), [], 'every request was answered below 500 (garbage with 400/431) or, where allowed, closed');
  t.equal(problems.length, 0, `${problems.length} problems`);
  count('HTTP requests', inputs.length);
  t.equal((await fetch(`${url}/healthz`)).status, 200, 'the server is still up');
  t.equal((await fetch(`${child.url}/healthz`)).status, 200, 'the child app is still up');
  t.equal(child.child.exitCode, null, 'the child app did not exit');
});

t.test('weird but valid frames are answered as valid frames', async (t) => {
  // These are not errors: a `since` that names no message, odd room names, odd bodies.
  const r = new Rng(streamSeed(4));
  const c = clientFor(t, url);
  await c.hello();
  const rooms = ['', ' ', '__proto__', 'constructor', 'hasOwnProperty', '../../etc/passwd', 'r'.repeat(100), '😀'.repeat(50), 'مرحبا', '\u202eevil', 'a\u200bb', '\ufffd', '\ufffe', "'; DROP TABLE messages; --", '{"$ne":null}'];
  let n = 0;
  for (const room of rooms) {
    const since = r.pick([undefined, r.uuid(), r.chars(r.int(1, LIMITS.id), SAFE_ALPHABET), 'x'.repeat(LIMITS.id)]);
    const joined = await c.join(room, since);
    t.equal(joined.resumed, false, `joined ${JSON.stringify(room)} with since ${JSON.stringify(since)}: fresh history`);
    const bodies = ['b'.repeat(LIMITS.body), '\u0000 control \u0007 characters', '<script>alert(1)</script>', '😀'.repeat(1000), ' x ', '\ud83d\ude00 a pair'];
    const body = r.pick(bodies);
    const id = r.pick([crypto.randomUUID(), crypto.randomUUID().toUpperCase()]);
    const author = r.pick<unknown>(['   ', 'n'.repeat(LIMITS.name), { name: '\u00a0' }, { name: 'x', id: 'admin', isAdmin: true }, undefined]);
    c.write({ type: 'createMessage', message: { id, room, body, author } });
    const ack = await c.take((f) => f.clientId === id, `the reply to a message in ${JSON.stringify(room)}`);
    t.equal(ack.type, 'ack', `a message in ${JSON.stringify(room)} was stored`);
    n += 2;
  }
  const id = crypto.randomUUID();
  t.equal((await c.send('again', 'first', id)).type, 'ack');
  t.equal((await c.send('again', 'first', id)).type, 'ack', 'a resent message is acknowledged');
  t.match(await c.send('elsewhere', 'first', id), { type: 'error', code: 'id_conflict' }, 'a reused id in another room is refused');
  n += 3;
  count('weird but valid frames', n);
});

t.test('text that is not well-formed UTF-16 is refused where it enters, with a clear error', async (t) => {
  // A lone surrogate cannot be stored: RethinkDB refuses the whole query (a high one) or keeps
  // U+FFFD in its place (a low one). Refused at the boundary, every frame gets an answer.
  const c = clientFor(t, url);
  await c.hello();
  let n = 0;
  for (const bad of ['\ud800', 'x\udfffy', 'a\udbffb', '\udc00\ud800', 'ok\ud83d']) {
    c.write({ type: 'joinRoom', room: bad });
    const refused = await c.take((f) => f.type === 'error', `the answer to joining ${JSON.stringify(bad)}`);
    t.match(refused, { code: 'bad_frame', message: /room: must be well-formed Unicode text/ }, `joinRoom ${JSON.stringify(bad)}: bad_frame, saying why`);
    await c.join('good room');
    c.write({ type: 'joinRoom', room: 'good room', since: bad });
    t.match(await c.take((f) => f.type === 'error', 'the answer'), { code: 'bad_frame', message: /since: must be well-formed/ }, 'a since that is not well-formed: bad_frame');
    c.write({ type: 'joinRoom', room: 'good room', since: crypto.randomUUID(), have: ['fine', bad] });
    t.match(await c.take((f) => f.type === 'error', 'the answer'), { code: 'bad_frame', message: /have\.1: must be well-formed/ }, 'a have that is not well-formed: bad_frame');
    const id = crypto.randomUUID();
    c.write({ type: 'createMessage', message: { id, room: 'good room', body: `body ${bad}`, author: { name: 'x' } } });
    t.match(await c.take((f) => f.clientId === id, 'the answer'), { type: 'error', code: 'bad_frame', message: /message\.body: must be well-formed/ }, 'a body that is not well-formed: bad_frame, naming the message');
    const id2 = crypto.randomUUID();
    c.write({ type: 'createMessage', message: { id: id2, room: 'good room', body: 'fine', author: { name: bad } } });
    t.match(await c.take((f) => f.clientId === id2, 'the answer'), { type: 'error', code: 'bad_frame', message: /message\.author/ }, 'an author name that is not well-formed: bad_frame');
    n += 5;
  }
  t.equal((await fetch(`${url}/?room=${encodeURIComponent('ok')}%ED%A0%80`)).status, 200, 'a URL with the UTF-8 bytes of a surrogate decodes to U+FFFD: an ordinary room name');
  count('text that is not well-formed', n);
});

t.test('afterwards the server still serves a well-formed client', async (t) => {
  t.equal((await fetch(`${url}/healthz`)).status, 200, 'GET /healthz');
  t.equal((await fetch(`${url}/readyz`)).status, 200, 'GET /readyz');
  t.equal((await fetch(`${url}/?room=after`)).status, 200, 'the page');
  const room = `after-fuzz-${SEED}`;
  const a = clientFor(t, url);
  const b = clientFor(t, url);
  await a.hello();
  await b.hello();
  await a.join(room);
  await b.join(room);
  const ack = await a.send(room, 'still here');
  t.equal(ack.type, 'ack', 'the message is acknowledged');
  const got = await b.receivedCount(1);
  t.equal(got[0].body, 'still here', 'a second client in the room receives it');
  const own = await a.receivedCount(1);
  t.equal(own[0].body, 'still here', 'and so does the sender');
  for (const key of ['polluted', 'type', 'room', 'body', 'protocol', 'isAdmin', 'name']) {
    t.notOk(Object.prototype.hasOwnProperty.call(Object.prototype, key), `Object.prototype has no "${key}"`);
  }
  t.ok(app.stats().sockets >= 2, 'the server counts its sockets');
  t.comment(`inputs: ${[...tally].map(([k, v]) => `${k} ${v}`).join(', ')}; total ${[...tally.values()].reduce((s, v) => s + v, 0)}`);
});

// ---- known bugs, pinned down ------------------------------------------------------------------

t.test('the bugs the fuzz found stay fixed', async (t) => {
  // bug 1: a deeply nested or huge `type`
  const sock = await FuzzSocket.open(url);
  t.teardown(() => sock.close());
  const depth = 30_000; // 60 KB, under the 64 KiB frame limit
  sock.send(`{"type":${'['.repeat(depth)}${']'.repeat(depth)}}`);
  sock.send(`{"type":${'{"a":'.repeat(depth / 3)}1${'}'.repeat(depth / 3)}}`);
  sock.send(JSON.stringify({ type: 'x'.repeat(60_000) }));
  sock.send('{"type":"hello","protocol":2}');
  await sock.until(() => sock.replies.length >= 4 || sock.closed, 10_000);
  for (const [i, what] of ['an array', 'an object', 'a string'].entries()) {
    t.match(sock.replies[i], { type: 'error', code: 'unknown_type' }, `a type that is ${what} 20,000 levels or 60,000 characters deep: unknown_type`);
    t.ok(String(sock.replies[i]?.message).length < 200, 'and a short message');
  }
  t.match(sock.replies[3], { type: 'hello' }, 'the socket stays usable');

  // bug 2: express.static's 4xx
  const range = await fetch(`${url}/style.css`, { headers: { Range: 'bytes=999999-' } });
  t.equal(range.status, 416, 'an unsatisfiable Range: 416 Range Not Satisfiable');
  const match = await fetch(`${url}/style.css`, { headers: { 'If-Match': '"nope"' } });
  t.equal(match.status, 412, 'a failed If-Match: 412 Precondition Failed');
  const since = await fetch(`${url}/app.js`, { headers: { 'If-Unmodified-Since': 'Thu, 01 Jan 1970 00:00:00 GMT' } });
  t.equal(since.status, 412, 'a failed If-Unmodified-Since: 412 Precondition Failed');

  // bug 3: an Upgrade outside /primus (rawHttp resets the connection once it has its answer)
  const up = await rawHttp(port, Buffer.from('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n'), { reset: true });
  t.equal(up.status, 404, 'an Upgrade outside /primus is answered 404');
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.equal((await fetch(`${url}/healthz`)).status, 200, 'and its reset does not take the server down');
});

t.test('bug 4: a request target url.parse throws on is answered 400 and harms nothing', async (t) => {
  // In the child process: the crash must not take this one down.
  const child = await childApp;
  const res = await rawHttp(child.port, Buffer.from('GET //%@x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'), { timeoutMs: 5000 });
  t.ok(res.status !== undefined && res.status >= 400 && res.status < 500, `GET //%@x is answered 4xx (got ${res.status ?? (res.timedOut ? 'no answer' : 'the connection closed')})`);
  await new Promise((resolve) => setTimeout(resolve, 300));
  const died = child.child.exitCode !== null ? /URIError[^\n]*/.exec(child.output())?.[0] ?? child.output().slice(-300) : undefined;
  t.equal(died, undefined, 'the server is still running');
  if (died) t.comment(`the child app died: ${died}`);
});
