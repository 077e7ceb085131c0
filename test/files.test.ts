// Files and media messages through the real HTTP API, on two app processes sharing one
// database: an upload on one is served by the other (chunks in the database, or UPLOAD_DIR
// shared by both), only to those who may read its room; the type comes from the bytes; HTML
// and SVG are downloads with nosniff; a body past the limit is refused with 413 as it passes
// it, with nothing kept; an image bomb gets a clear error; a backup holds the files.
import { request } from 'node:http';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { r, type Connection } from 'rethinkdb-ts';
import sharp from 'sharp';
import t from 'tap';
import { connectAny } from '../src/db/pool.js';
import { ensureSchema } from '../src/db/schema.js';
import { backup } from '../src/ops/backup.js';
import { restore } from '../src/ops/restore.js';
import { Agent } from './fixtures/http.js';
import { onRealRethinkdb, spawnApp, startApp, startDb, testLog, type TestDb } from './fixtures/chat.js';

t.setTimeout(180_000);

const LIMIT = 3 * 1024 * 1024;
const db = await startDb(t);
const env = { RETHINKDB_URL: db.url, MAX_UPLOAD_BYTES: String(LIMIT), SIGNUP_RATE_LIMIT_PER_ADDRESS: '1000', LOGIN_RATE_LIMIT_PER_ADDRESS: '1000' };
const conn: Connection = await connectAny(db.address, testLog());
t.teardown(() => conn.close());
// The schema first, as a platform's release phase makes it: on a busy RethinkDB, making every
// table takes longer than a process is given to start.
await ensureSchema(conn, db.dbName, { log: testLog(), staleMs: 60_000 });
const [one, two] = await Promise.all([spawnApp(t, { ...env, DYNO: 'web.1' }), spawnApp(t, { ...env, DYNO: 'web.2' })]);
const count = (table: string, dbName = db.dbName) => r.db(dbName).table(table).count().run(conn);

interface Wire {
  message: { id: string; body: string; file?: { id: string; name: string; type: string; size: number; width?: number; height?: number; thumb?: boolean } };
}

/** POSTs the bytes as the page does: the raw body, name and caption in the query. */
async function upload(a: Agent, roomId: string, name: string, bytes: Uint8Array, caption?: string) {
  const q = new URLSearchParams({ name, ...(caption !== undefined ? { caption } : {}) });
  const csrf = await a.csrf();
  const res = await fetch(`${a.base}/api/rooms/${roomId}/files?${q}`, {
    method: 'POST',
    headers: { cookie: [...a.cookies].map(([k, v]) => `${k}=${v}`).join('; '), 'x-csrf-token': csrf, 'content-type': 'application/octet-stream' },
    body: new Uint8Array(bytes),
  });
  const text = await res.text();
  return { status: res.status, json: () => JSON.parse(text) as Wire & { error?: { code: string; message: string } } };
}

async function download(a: Agent, path: string) {
  const res = await fetch(`${a.base}${path}`, { headers: { cookie: [...a.cookies].map(([k, v]) => `${k}=${v}`).join('; ') } });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

/** A PNG whose header says it is w x h, with a tiny body: a decompression bomb. */
async function pngBomb(w: number, h: number): Promise<Buffer> {
  const png = Buffer.from(await sharp({ create: { width: 64, height: 64, channels: 3, background: '#000' } }).png().toBuffer());
  png.writeUInt32BE(w, 16);
  png.writeUInt32BE(h, 20);
  png.writeUInt32BE(crc32(png.subarray(12, 29)) >>> 0, 29);
  return png;
}

// Olga (the owner) and Bob, a member; a channel both are in and a group only Olga is in.
const olga = new Agent(one.url);
await olga.signup({ username: 'olga' });
await olga.request('PATCH', '/api/workspace', { json: { registration: 'open' }, headers: { 'x-csrf-token': await olga.csrf() } });
const bobOnOne = new Agent(one.url);
await bobOnOne.signup({ username: 'bob' });
const bob = new Agent(two.url);
await bob.login('bob');
const general = (await olga.post('/api/rooms', { kind: 'channel', name: 'general' })).json<{ room: { id: string } }>().room.id;
await bob.post(`/api/rooms/${general}/join`);
const secret = (await olga.post('/api/rooms', { kind: 'group', name: 'secret' })).json<{ room: { id: string } }>().room.id;

t.test('an image uploaded on one process: a thumbnail and the bytes on the other', async (t) => {
  const png = await sharp({ create: { width: 800, height: 600, channels: 3, background: '#2a6' } }).png().toBuffer();
  const up = await upload(olga, general, 'holiday.txt', png, 'the view');
  t.equal(up.status, 201);
  const file = up.json().message.file!;
  t.match(up.json().message, { body: 'the view', file: { name: 'holiday.txt', type: 'image/png', size: png.length, width: 800, height: 600, thumb: true } }, 'the type is from the bytes, not the name');
  t.match(file.id, /^[\w-]{22}$/, 'a 128-bit random id');
  const history = (await bob.get(`/api/rooms/${general}/messages`)).json<{ messages: Wire['message'][] }>().messages;
  t.same(history.find((m) => m.id === up.json().message.id)?.file, file, 'the message carries the file in the other process\'s history');
  const got = await download(bob, `/api/files/${file.id}`);
  t.equal(got.status, 200);
  t.ok(got.body.equals(png), 'the other process serves the same bytes');
  t.equal(got.headers.get('content-type'), 'image/png');
  t.equal(got.headers.get('x-content-type-options'), 'nosniff');
  t.match(got.headers.get('content-disposition'), /^inline; filename="holiday.txt"/);
  t.match(got.headers.get('cache-control'), /private/);
  const thumb = await download(bob, `/api/files/${file.id}/thumb`);
  t.equal(thumb.status, 200);
  t.equal(thumb.headers.get('content-type'), 'image/webp');
  const meta = await sharp(thumb.body).metadata();
  t.ok(meta.format === 'webp' && meta.width! <= 360 && meta.height! <= 360 && Math.abs(meta.width! / meta.height! - 4 / 3) < 0.02, `a thumbnail of ${meta.width}x${meta.height}`);
  const again = await fetch(`${bob.base}/api/files/${file.id}`, { headers: { cookie: `sid=${bob.cookies.get('sid')}`, 'if-none-match': got.headers.get('etag') ?? '' } });
  t.equal(again.status, 304, 'asked again, unchanged');
});

t.test('a large file streams both ways; the type comes from the bytes', async (t) => {
  const big = Buffer.alloc(LIMIT - 1000);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7919) & 0xff;
  const up = await upload(bob, general, 'data.bin', big);
  t.equal(up.status, 201);
  t.match(up.json().message.file, { type: 'application/octet-stream', size: big.length });
  t.notOk(up.json().message.file!.thumb);
  const got = await download(olga, `/api/files/${up.json().message.file!.id}`);
  t.ok(got.body.equals(big), `${big.length} bytes back, in order`);
  t.match(got.headers.get('content-disposition'), /^attachment;/, 'a binary is a download');

  const plain = await upload(bob, general, 'picture.png', Buffer.from('just words\n'));
  t.equal(plain.json().message.file!.type, 'text/plain', 'text named .png is text');
  const html = await upload(bob, general, 'notes.txt', Buffer.from('<!doctype html><html><script>alert(document.cookie)</script></html>'));
  const svg = await upload(bob, general, 'logo.png', Buffer.from('<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'));
  for (const [up, type] of [[html, 'text/html'], [svg, 'image/svg+xml']] as const) {
    t.equal(up.json().message.file!.type, type, `${type} from the bytes`);
    const got = await download(olga, `/api/files/${up.json().message.file!.id}`);
    t.match(got.headers.get('content-type'), type);
    t.match(got.headers.get('content-disposition'), /^attachment;/, `${type} is only ever a download`);
    t.equal(got.headers.get('x-content-type-options'), 'nosniff');
    t.match(got.headers.get('content-security-policy'), /sandbox/);
  }
  const odd = await upload(bob, general, 'ünïcode "quoted" 名前.txt', Buffer.from('x'));
  const d = await download(olga, `/api/files/${odd.json().message.file!.id}`);
  t.match(d.headers.get('content-disposition'), /filename\*=UTF-8''%C3%BCn%C3%AFcode%20%22quoted%22%20%E5%90%8D%E5%89%8D\.txt/, 'any name survives');
});

t.test('a file in a room one may not read is a 404, exactly like a missing one', async (t) => {
  const up = await upload(olga, secret, 'plans.txt', Buffer.from('secret plans'));
  t.equal(up.status, 201);
  const id = up.json().message.file!.id;
  t.equal((await download(olga, `/api/files/${id}`)).body.toString(), 'secret plans');
  const hidden = await download(bob, `/api/files/${id}`);
  const missing = await download(bob, `/api/files/${'A'.repeat(22)}`);
  t.equal(hidden.status, 404);
  t.same(hidden.body.toString(), missing.body.toString(), 'the same answer as for no file');
  t.equal((await download(bob, `/api/files/${id}/thumb`)).status, 404);
  t.equal((await download(new Agent(two.url), `/api/files/${id}`)).status, 401, 'nobody: log in first');
  t.equal((await upload(bob, secret, 'x.txt', Buffer.from('x'))).status, 404, 'no upload into a room one cannot see');
  // A member removed loses the room's files at once.
  const bobId = (await bob.get('/api/me')).json<{ user: { id: string } }>().user.id;
  await olga.post(`/api/rooms/${secret}/members`, { userId: bobId });
  t.equal((await download(bob, `/api/files/${id}`)).status, 200, 'added: readable');
  await olga.request('DELETE', `/api/rooms/${secret}/members/${bobId}`, { headers: { 'x-csrf-token': await olga.csrf() } });
  t.equal((await download(bob, `/api/files/${id}`)).status, 404, 'removed: gone');
  // A deleted message takes its file with it.
  const mine = await upload(bob, general, 'oops.txt', Buffer.from('oops'));
  await bob.request('DELETE', `/api/rooms/${general}/messages/${mine.json().message.id}`, { headers: { 'x-csrf-token': await bob.csrf() } });
  t.equal((await download(olga, `/api/files/${mine.json().message.file!.id}`)).status, 404, 'the file of a deleted message is not served');
});

t.test('past the limit: 413 as it passes, and nothing of it kept', async (t) => {
  const files = await count('files');
  const chunks = await count('file_chunks');
  const declared = await upload(bob, general, 'too big.bin', Buffer.alloc(LIMIT + 1));
  t.equal(declared.status, 413, 'a Content-Length over the limit');
  t.match(declared.json(), { error: { code: 'too_large', message: /larger than the limit of 3\.0 MiB|larger than the limit of 3 MiB/ } });
  // Chunked, no length: the server reads until the limit, then answers while the body is still
  // coming. The client sends 1 MiB past the limit and then holds the request open, unfinished:
  // a server that waited for the body's end would never answer.
  const csrf = await bob.csrf();
  let sent = 0;
  const HOLD_AT = LIMIT + 1024 * 1024;
  const status = await new Promise<number>((resolve, reject) => {
    const req = request(`${two.url}/api/rooms/${general}/files?name=stream.bin`, { method: 'POST', headers: { cookie: `sid=${bob.cookies.get('sid')}; csrf=${bob.cookies.get('csrf')}`, 'x-csrf-token': csrf, 'transfer-encoding': 'chunked' } });
    const timer = setTimeout(() => {
      req.destroy();
      resolve(0);
    }, 15_000);
    req.on('response', (res) => {
      clearTimeout(timer);
      res.resume();
      resolve(res.statusCode ?? 0);
      req.destroy();
    });
    req.on('error', (e) => (sent >= HOLD_AT ? undefined : reject(e)));
    const piece = Buffer.alloc(64 * 1024, 1);
    const pump = () => {
      while (sent < HOLD_AT) {
        sent += piece.length;
        if (!req.write(piece)) return void req.once('drain', pump);
      }
    };
    pump();
  });
  t.equal(status, 413, `refused with the body unfinished (${(sent / 1048576).toFixed(1)} MiB sent of a 3 MiB limit, no end), not after it`);
  t.equal(await count('files'), files, 'no file row kept');
  t.equal(await count('file_chunks'), chunks, 'no chunk kept');
});

t.test('a per-user quota', async (t) => {
  await olga.request('PATCH', '/api/workspace', { json: { fileQuotaMiB: 1 }, headers: { 'x-csrf-token': await olga.csrf() } });
  const carol = new Agent(one.url);
  await carol.signup({ username: 'carol' });
  await carol.post(`/api/rooms/${general}/join`);
  t.equal((await upload(carol, general, 'a.bin', Buffer.alloc(700 * 1024, 2))).status, 201);
  const over = await upload(carol, general, 'b.bin', Buffer.alloc(700 * 1024, 3));
  t.equal(over.status, 413);
  t.match(over.json(), { error: { code: 'quota', message: /quota/ } });
  await olga.request('PATCH', '/api/workspace', { json: { fileQuotaMiB: 0 }, headers: { 'x-csrf-token': await olga.csrf() } });
  t.equal((await upload(carol, general, 'b.bin', Buffer.alloc(700 * 1024, 3))).status, 201, 'no quota: taken');
});

t.test('a decompression bomb gets a clear error, and the server goes on', async (t) => {
  const files = await count('files');
  const bomb = await pngBomb(60_000, 60_000);
  const up = await upload(bob, general, 'bomb.png', bomb);
  t.equal(up.status, 422);
  t.match(up.json(), { error: { code: 'image_too_large', message: /more than 50 million pixels/ } });
  t.equal(await count('files'), files, 'nothing kept');
  const broken = await upload(bob, general, 'broken.png', Buffer.concat([bomb.subarray(0, 40), Buffer.alloc(100)]));
  t.match(broken.json(), { error: { code: 'bad_image' } }, 'a broken image too');
  t.equal((await upload(bob, general, 'fine.txt', Buffer.from('still here'))).status, 201, 'the process still serves');
});

t.test('a backup holds the files: restored, they are served again', async (t) => {
  const up = await upload(olga, general, 'keep.bin', Buffer.alloc(1_300_000, 9));
  const id = up.json().message.file!.id;
  const dir = mkdtempSync(join(tmpdir(), 'files-backup-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const archive = join(dir, 'chat.jsonl.gz');
  const done = await backup(conn, db.dbName, archive);
  t.ok(done, 'backed up');
  const target = onRealRethinkdb ? `${db.dbName}_restored` : 'restored';
  t.teardown(() => r.dbDrop(target).run(conn).catch(() => undefined));
  await restore(conn, target, archive, { log: testLog() });
  t.equal(await count('file_chunks', target), await count('file_chunks'), 'every chunk restored');
  const app = await startApp(t, { ...db, dbName: target, url: db.url.replace(new RegExp(`/${db.dbName}$`), `/${target}`) } as TestDb);
  const a = new Agent(app.url);
  await a.login('olga');
  const got = await download(a, `/api/files/${id}`);
  t.ok(got.status === 200 && got.body.equals(Buffer.alloc(1_300_000, 9)), 'the restored database serves the file');
});

t.test('UPLOAD_DIR: a directory both processes share', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'uploads-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const db2 = await startDb(t);
  const [a, b] = [await startApp(t, db2, { UPLOAD_DIR: dir }), await startApp(t, db2, { UPLOAD_DIR: dir })];
  const u = new Agent(a.url);
  await u.signup({ username: 'dora' });
  const room = (await u.post('/api/rooms', { kind: 'channel', name: 'shared' })).json<{ room: { id: string } }>().room.id;
  const png = await sharp({ create: { width: 300, height: 200, channels: 3, background: '#a26' } }).png().toBuffer();
  const up = await upload(u, room, 'p.png', png);
  t.equal(up.status, 201);
  const id = up.json().message.file!.id;
  const onB = new Agent(b.url);
  await onB.login('dora');
  const got = await download(onB, `/api/files/${id}`);
  t.ok(got.body.equals(png), 'the other process reads it from the directory');
  t.equal((await download(onB, `/api/files/${id}/thumb`)).status, 200);
  t.same(readdirSync(join(dir, id.slice(0, 2))).sort(), [id, `${id}.thumb`], 'the file and its thumbnail are in the directory');
  const conn2 = await connectAny(db2.address, testLog());
  t.teardown(() => conn2.close());
  t.equal(await r.db(db2.dbName).table('file_chunks').count().run(conn2), 0, 'and not in the database');
  const before = readdirSync(dir).length;
  const over = await upload(u, room, 'big.bin', Buffer.alloc(101 * 1024 * 1024 + 1));
  t.equal(over.status, 413, 'the default limit is 100 MiB');
  t.equal(readdirSync(dir).flatMap((d) => readdirSync(join(dir, d))).filter((f) => f.endsWith('.part')).length, 0, 'no part left');
  t.equal(readdirSync(dir).length, before);
});

t.test('the API document lists the file routes, the upload with its raw body', async (t) => {
  const doc = (await olga.get('/api/openapi.json')).json<{ paths: Record<string, Record<string, { requestBody?: { content: Record<string, unknown> }; 'x-scope'?: string }>> }>();
  t.ok(doc.paths['/api/rooms/{id}/files']?.post?.requestBody?.content['application/octet-stream'], 'POST /api/rooms/{id}/files takes the bytes');
  t.equal(doc.paths['/api/rooms/{id}/files']?.post?.['x-scope'], 'post');
  t.ok(doc.paths['/api/files/{id}']?.get && doc.paths['/api/files/{id}/thumb']?.get, 'and the downloads');
});
