// The retention sweep on a real database: files and messages older than the workspace keeps
// them, per kind of room, are deleted (a file's message stays, without it); what a user's
// deleted files took is theirs again under the quota; one sweeper at a time holds the lease
// (another, or the same process again, gets nothing until it is free or expired); and a sweep
// stopped after any write, as a kill would stop it, then run again, leaves no file without
// its message and never a message pointing at a missing file; the same with a sweeping
// process killed for real (SIGKILL) wherever it is, again and again.
import { spawn } from 'node:child_process';
import { r, type Connection, type RDatum } from 'rethinkdb-ts';
import t from 'tap';
import { createAccountStore } from '../src/accounts/store.js';
import { connectAny, openPool } from '../src/db/pool.js';
import { databaseBlobs } from '../src/files/blobs.js';
import { createLease } from '../src/files/lease.js';
import { createRetention, type Retention } from '../src/files/retention.js';
import { createFiles } from '../src/files/store.js';
import { createRoomStore } from '../src/rooms/store.js';
import { Agent } from './fixtures/http.js';
import { sleep, startApp, startDb, testLog } from './fixtures/chat.js';

t.setTimeout(180_000);

const DAY = 86_400_000;
const db = await startDb(t);
// Its own sweep stays out of the way: the sweepers below are driven by the test.
const app = await startApp(t, db, { ANONYMOUS_ROOMS: '0', RETENTION_SWEEP_SECONDS: '86400', SIGNUP_RATE_LIMIT_PER_ADDRESS: '1000', LOGIN_RATE_LIMIT_PER_ADDRESS: '1000' });
const conn: Connection = await connectAny(db.address, testLog());
t.teardown(() => conn.close());
const table = (name: string) => r.db(db.dbName).table(name);

const olga = new Agent(app.url);
await olga.signup({ username: 'olga' });
const patchWorkspace = async (json: unknown) => olga.request('PATCH', '/api/workspace', { json, headers: { 'x-csrf-token': await olga.csrf() } });
await patchWorkspace({ registration: 'open' });
const bob = new Agent(app.url);
await bob.signup({ username: 'bob' });
const bobId = (await bob.get('/api/me')).json<{ user: { id: string } }>().user.id;
const channel = (await olga.post('/api/rooms', { kind: 'channel', name: 'general' })).json<{ room: { id: string } }>().room.id;
const group = (await olga.post('/api/rooms', { kind: 'group', name: 'crew' })).json<{ room: { id: string } }>().room.id;
const dm = (await olga.post('/api/dms', { userIds: [bobId] })).json<{ room: { id: string } }>().room.id;
await bob.post(`/api/rooms/${channel}/join`);

async function upload(a: Agent, roomId: string, name: string, bytes: Uint8Array, caption?: string) {
  const q = new URLSearchParams({ name, ...(caption ? { caption } : {}) });
  const res = await fetch(`${a.base}/api/rooms/${roomId}/files?${q}`, {
    method: 'POST',
    headers: { cookie: [...a.cookies].map(([k, v]) => `${k}=${v}`).join('; '), 'x-csrf-token': await a.csrf() },
    body: new Uint8Array(bytes),
  });
  return { status: res.status, body: (await res.json()) as { message: { id: string; file: { id: string } }; error?: { code: string } } };
}

/** A sweeper as one process makes it: its own pool, its own lease holder, a clock `ahead` of now. */
async function sweeper(holder: string, opts: { ahead: number; ttlMs?: number; onStep?: (s: string) => void | Promise<void> }): Promise<Retention> {
  const pool = openPool(db.address, { log: testLog() });
  await pool.waitHealthy(10_000);
  t.teardown(() => pool.close());
  const files = createFiles({ pool, db: db.dbName, blobs: databaseBlobs(pool, db.dbName), thumbMaxPixels: 50e6 });
  const accounts = createAccountStore(pool, db.dbName);
  return createRetention({
    pool,
    db: db.dbName,
    files,
    rooms: createRoomStore(pool, db.dbName),
    settings: () => accounts.settings(),
    lease: createLease({ pool, db: db.dbName, name: 'retention', holder, ttlMs: opts.ttlMs ?? 60_000 }),
    log: testLog(),
    onStep: opts.onStep,
    now: () => Date.now() + opts.ahead,
  });
}

/** Both ways of leaving something behind, counted. */
async function orphans(): Promise<{ filesWithoutMessage: string[]; messagesWithoutFile: string[] }> {
  const files = (await table('files').run(conn)) as Array<{ id: string; message: string; state: string; size: number }>;
  const shown = (await table('messages').filter((m: RDatum) => m.hasFields('file')).run(conn)) as Array<{ id: string; file: { id: string }; deleted?: boolean }>;
  const byId = new Map(files.map((f) => [f.id, f]));
  const messagesWithoutFile: string[] = [];
  for (const m of shown) {
    const f = byId.get(m.file.id);
    const chunks = f ? await table('file_chunks').between(`${f.id}:`, `${f.id};`).count().run(conn) : 0;
    if (!f || f.state !== 'ready' || chunks !== Math.ceil(f.size / (512 * 1024))) messagesWithoutFile.push(m.id);
  }
  const pointing = new Map(shown.filter((m) => !m.deleted).map((m) => [m.file.id, m.id]));
  const filesWithoutMessage = files.filter((f) => pointing.get(f.id) !== f.message).map((f) => f.id);
  return { filesWithoutMessage, messagesWithoutFile };
}

const small = (n: number, fill: number) => new Uint8Array(n).fill(fill);

t.test('per kind of room: files after N days, messages after M days, and the quota frees up', async (t) => {
  await patchWorkspace({ fileRetentionDays: { channel: 5, group: 0, dm: 0 }, messageRetentionDays: { channel: 0, group: 0, dm: 7 }, fileQuotaMiB: 1 });
  const inChannel = await upload(olga, channel, 'old.bin', small(600 * 1024, 1), 'the report');
  const bare = await upload(olga, channel, 'bare.txt', small(10, 65));
  const inGroup = await upload(olga, group, 'kept.txt', small(10, 66));
  const inDm = await upload(olga, dm, 'dm.txt', small(10, 67));
  const text = (await olga.post(`/api/rooms/${dm}/messages`, { body: 'a plain message in the DM' })).json<{ message: { id: string } }>().message;
  t.equal((await upload(olga, channel, 'more.bin', small(600 * 1024, 2))).body.error?.code, 'quota', 'over the quota now');

  const early = await (await sweeper('early', { ahead: 3 * DAY })).sweep();
  t.match(early, { ran: true, messagesDeleted: 0, filesDeleted: 0 }, 'three days on: nothing is old enough');

  const later = await (await sweeper('later', { ahead: 10 * DAY })).sweep();
  t.match(later, { ran: true, messagesDeleted: 2, filesDeleted: 3 }, 'ten days on');
  const get = (id: string) => table('messages').get(id).run(conn) as Promise<{ body: string; file?: unknown } | null>;
  const kept = await get(inChannel.body.message.id);
  t.ok(kept && kept.file === undefined && kept.body === 'the report', 'the channel\'s message stays, without its file');
  t.match(await get(bare.body.message.id), { body: 'bare.txt was removed' }, 'a message that was only its file says what was there');
  t.equal(await table('files').get(inChannel.body.message.file.id).run(conn), null, 'the channel\'s file is gone');
  t.equal(await table('file_chunks').between(`${inChannel.body.message.file.id}:`, `${inChannel.body.message.file.id};`).count().run(conn), 0, 'with every chunk');
  t.ok(await table('files').get(inGroup.body.message.file.id).run(conn), 'a group keeps its files (0: forever)');
  t.equal(await get(inDm.body.message.id), null, 'the DM\'s file message is gone after 7 days');
  t.equal(await get(text.id), null, 'and its plain message');
  t.equal(await table('files').get(inDm.body.message.file.id).run(conn), null, 'with its file');
  t.equal((await olga.get(`/api/files/${inChannel.body.message.file.id}`)).status, 404, 'the API agrees');
  t.same(await orphans(), { filesWithoutMessage: [], messagesWithoutFile: [] });
  t.equal((await upload(olga, channel, 'more.bin', small(600 * 1024, 2))).status, 201, 'the quota counts only what is kept');
  await patchWorkspace({ fileRetentionDays: { channel: 0, group: 0, dm: 0 }, messageRetentionDays: { channel: 0, group: 0, dm: 0 }, fileQuotaMiB: 0 });
});

t.test('the lease: one sweeper at a time, whatever their number', async (t) => {
  await patchWorkspace({ fileRetentionDays: { channel: 1, group: 0, dm: 0 } });
  const before = (await table('files').filter({ room: channel }).count().run(conn)) as number;
  for (let i = 0; i < 12; i++) t.equal((await upload(bob, channel, `f${i}.txt`, small(100, 70 + i))).status, 201);
  const inside = new Set<string>();
  let overlap = 0;
  const watch = (name: string) => async () => {
    inside.add(name);
    if (inside.size > 1) overlap++;
    await sleep(5);
  };
  const names = ['a', 'b', 'c'];
  const sweepers = await Promise.all(names.map((n) => sweeper(n, { ahead: 2 * DAY, onStep: watch(n) })));
  const results = await Promise.all(sweepers.map((s, i) => s.sweep().finally(() => inside.delete(names[i]))));
  t.equal(results.filter((x) => x.ran).length, 1, 'of three sweeps started together, one ran');
  t.equal(results.find((x) => x.ran)?.filesDeleted, before + 12, 'and deleted every old file');
  t.equal(overlap, 0, 'no two sweepers wrote at once');
  t.same(results.filter((x) => !x.ran).map((x) => x.filesDeleted), [0, 0], 'the others did nothing');
  const after = [];
  for (const s of sweepers) after.push(await s.sweep());
  t.ok(after.every((x) => x.ran), 'a finished sweep gives the lease back: each can take it in turn');
  await patchWorkspace({ fileRetentionDays: { channel: 0, group: 0, dm: 0 } });
});

t.test('a sweep killed after any write, then run again, leaves nothing behind', async (t) => {
  await patchWorkspace({ fileRetentionDays: { channel: 5, group: 0, dm: 0 }, messageRetentionDays: { channel: 0, group: 0, dm: 5 } });
  const seeded = [];
  for (let i = 0; i < 4; i++) seeded.push(await upload(olga, channel, `c${i}.bin`, small(700 * 1024, i + 1), i % 2 ? `caption ${i}` : undefined));
  for (let i = 0; i < 3; i++) seeded.push(await upload(bob, dm, `d${i}.txt`, small(50, i + 10)));
  const kept = await upload(olga, group, 'group.txt', small(50, 99));
  t.ok(seeded.every((s) => s.status === 201));
  class Killed extends Error {}
  let round = 0;
  // Killed after 1, 2, 3... writes, each time by a new "process" once the dead one's lease expires.
  for (let kill = 1; ; kill++) {
    let steps = 0;
    const s = await sweeper(`killed-${kill}`, {
      ahead: 10 * DAY,
      // Long enough that making the next sweeper on a loaded machine does not outlast it
      // (at 300 ms, CI under a load of 20 saw the lease expire before the check).
      ttlMs: 2000,
      onStep: () => {
        if (++steps >= kill) throw new Killed(`killed after ${kill} writes`);
      },
    });
    // The previous holder died holding the lease: nothing until it expires.
    if (kill > 1) t.match(await s.sweep().catch((e: unknown) => e), { ran: false }, `round ${kill}: the dead holder's lease still stands`);
    await sleep(2100);
    const outcome = await s.sweep().then(
      (res) => res,
      (e: unknown) => e,
    );
    round = kill;
    const left = await orphans();
    t.same(left.messagesWithoutFile, [], `killed after ${kill} write(s): no message points at a missing file`);
    if (!(outcome instanceof Killed)) {
      t.match(outcome, { ran: true }, `round ${kill} ran to its end`);
      break;
    }
    if (kill > 40) throw new Error('the sweep never finished');
  }
  t.ok(round > 3, `stopped ${round - 1} times on the way`);
  const again = await (await sweeper('final', { ahead: 10 * DAY })).sweep();
  t.match(again, { ran: true, messagesDeleted: 0, filesDeleted: 0 }, 'a last sweep finds nothing more to do');
  t.same(await orphans(), { filesWithoutMessage: [], messagesWithoutFile: [] }, 'no file without its message, no message without its file');
  for (const s of seeded) {
    const f = await table('files').get(s.body.message.file.id).run(conn);
    t.equal(f, null, 'every old file is gone');
  }
  t.ok(await table('files').get(kept.body.message.file.id).run(conn), 'the group\'s file is kept');
  t.equal(await table('file_chunks').count().run(conn), await table('files').sum('size').run(conn).then((n: number) => (n > 0 ? table('files').map((f) => f('size').div(512 * 1024).ceil()).sum().run(conn) : 0)), 'no chunk without its file');
});

/** A sweeping process of its own: one line on stdout per write (each followed by a short
 *  pause, so that a kill finds it mid-sweep), `done` at the end; it waits while another holds
 *  the lease (a dead holder's expires after 500 ms). */
const CHILD = `
import { openPool } from '${process.cwd()}/src/db/pool.ts';
import { databaseBlobs } from '${process.cwd()}/src/files/blobs.ts';
import { createLease } from '${process.cwd()}/src/files/lease.ts';
import { createRetention } from '${process.cwd()}/src/files/retention.ts';
import { createFiles } from '${process.cwd()}/src/files/store.ts';
import { createRoomStore } from '${process.cwd()}/src/rooms/store.ts';
import { createAccountStore } from '${process.cwd()}/src/accounts/store.ts';
import { pino } from 'pino';
const address = JSON.parse(process.env.SWEEP_DB_ADDRESS);
const db = process.env.SWEEP_DB_NAME;
const log = pino({ level: 'silent' });
const pool = openPool(address, { log });
await pool.waitHealthy(10000);
const accounts = createAccountStore(pool, db);
const retention = createRetention({
  pool, db, log,
  files: createFiles({ pool, db, blobs: databaseBlobs(pool, db), thumbMaxPixels: 50e6 }),
  rooms: createRoomStore(pool, db),
  settings: () => accounts.settings(),
  lease: createLease({ pool, db, name: 'retention', holder: 'proc-' + process.pid, ttlMs: 500 }),
  onStep: async (step) => { process.stdout.write('step ' + step + '\\n'); await new Promise((r) => setTimeout(r, 15)); },
  now: () => Date.now() + 10 * 86400000,
});
for (let i = 0; i < 50; i++) {
  const res = await retention.sweep();
  if (res.ran) { process.stdout.write('done ' + JSON.stringify(res) + '\\n'); break; }
  await new Promise((r) => setTimeout(r, 200));
}
await pool.close();
`;

t.test('a sweeping process killed with SIGKILL, again and again, then let finish', async (t) => {
  await patchWorkspace({ fileRetentionDays: { channel: 5, group: 0, dm: 0 }, messageRetentionDays: { channel: 0, group: 0, dm: 5 } });
  const seeded = [];
  for (let i = 0; i < 12; i++) seeded.push(await upload(olga, channel, `k${i}.bin`, small(600 * 1024, i + 1)));
  for (let i = 0; i < 8; i++) seeded.push(await upload(bob, dm, `kd${i}.txt`, small(40, i + 20)));
  t.ok(seeded.every((x) => x.status === 201));
  const run = (killAfter: number | undefined) =>
    new Promise<{ killed: boolean; steps: number; done?: string }>((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CHILD], { env: { ...process.env, SWEEP_DB_ADDRESS: JSON.stringify(db.address), SWEEP_DB_NAME: db.dbName }, stdio: ['ignore', 'pipe', 'inherit'] });
      let steps = 0;
      let done: string | undefined;
      let buf = '';
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.stdout.on('data', (b: Buffer) => {
        buf += b.toString();
        for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (line.startsWith('step')) steps++;
          if (line.startsWith('done')) done = line;
          if (killAfter !== undefined && steps === killAfter) child.kill('SIGKILL');
        }
      });
      child.on('error', reject);
      child.on('exit', (_code, signal) => {
        clearTimeout(timer);
        resolve({ killed: signal === 'SIGKILL', steps, done });
      });
    });
  let kills = 0;
  for (const after of [2, 5, 3, 7, 4]) {
    const res = await run(after);
    if (!res.killed) break; // it finished before the kill: nothing left to stop
    kills++;
    t.same((await orphans()).messagesWithoutFile, [], `killed after ${res.steps} writes: no message points at a missing file`);
  }
  t.ok(kills >= 3, `killed ${kills} times mid-sweep`);
  const last = await run(undefined);
  t.match(last.done, /^done \{"ran":true/, 'a last process runs the sweep to its end');
  t.same(await orphans(), { filesWithoutMessage: [], messagesWithoutFile: [] }, 'no file without its message, no message without its file');
  for (const x of seeded) t.equal(await table('files').get(x.body.message.file.id).run(conn), null);
  t.equal(await table('file_chunks').count().run(conn), (await table('files').map((f: RDatum) => f('size').div(512 * 1024).ceil()).sum().run(conn)) as number, 'no chunk without its file');
});
