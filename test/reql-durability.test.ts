// Durability of the standalone embedded server: what a `hard` write acknowledged survives
// kill -9, restarts replay the log, and the schema (tables, indexes) comes back with the data.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { r } from 'rethinkdb-ts';

async function serve(dir: string, port: number, extra: string[] = []): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/reql/cli.ts', '--port', String(port), '--data', dir, ...extra], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes('serving')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`server exited early (${code})`)));
  });
  return child;
}

const freePort = () => 20000 + Math.floor(Math.random() * 20000);

t.test('acknowledged hard writes survive kill -9; schema and indexes come back', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'reql-durable-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const port = freePort();
  let server = await serve(dir, port);
  t.teardown(() => {
    server.kill('SIGKILL');
  });
  let conn = await r.connect({ host: '127.0.0.1', port });
  await r.tableCreate('msgs').run(conn);
  await r.table('msgs').indexCreate('room_sent', [r.row('room'), r.row('sent')]).run(conn);
  await r.table('msgs').indexWait().run(conn);

  // Writes in flight while the process dies: every acknowledged one must be there afterwards.
  const acked: number[] = [];
  let stop = false;
  const writers = Array.from({ length: 4 }, async (_, w) => {
    for (let i = 0; !stop && i < 5000; i++) {
      const n = w * 100000 + i;
      try {
        await r.table('msgs').insert({ id: n, room: `room-${n % 3}`, sent: n }).run(conn);
        acked.push(n);
      } catch {
        return;
      }
    }
  });
  await new Promise((res) => setTimeout(res, 700));
  server.kill('SIGKILL');
  stop = true;
  await Promise.all(writers);
  await conn.close().catch(() => undefined);
  t.ok(acked.length > 10, `some writes were acknowledged before the kill (${acked.length})`);

  server = await serve(dir, port);
  conn = await r.connect({ host: '127.0.0.1', port });
  const ids = new Set(await r.table('msgs')('id').run(conn));
  const missing = acked.filter((n) => !ids.has(n));
  t.same(missing, [], 'no acknowledged write is missing');
  t.same(await r.table('msgs').indexList().run(conn), ['room_sent'], 'the index survived');
  const viaIndex = await r.table('msgs').between(['room-1', r.minval], ['room-1', r.maxval], { index: 'room_sent' }).count().run(conn);
  const byScan = [...ids].filter((n) => n % 3 === 1).length;
  t.equal(viaIndex, byScan, 'the rebuilt index agrees with the data');
  await conn.close();
});

t.test('soft writes become durable after sync(); a clean restart keeps everything', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'reql-durable-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const port = freePort();
  let server = await serve(dir, port);
  let conn = await r.connect({ host: '127.0.0.1', port });
  await r.tableCreate('s').run(conn);
  await r.table('s').insert(Array.from({ length: 500 }, (_, i) => ({ id: i })), { durability: 'soft' }).run(conn);
  t.same(await r.table('s').sync().run(conn), { synced: 1 });
  server.kill('SIGKILL');
  await new Promise((res) => server.once('exit', res));
  server = await serve(dir, port);
  t.teardown(() => {
    server.kill('SIGKILL');
  });
  conn = await r.connect({ host: '127.0.0.1', port });
  t.equal(await r.table('s').count().run(conn), 500);
  await conn.close();
  await t.rejects(serve(dir, freePort()), /exited early/, 'a second server on the same data directory is refused');
});

t.test('a feed shows a hard write only once it is durable: killed right after, the row is there', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'reql-durable-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const port = freePort();
  // Each log write reaches the file 300 ms late: a feed that fired at the write (not after its
  // fsync) would show rows that the kill below takes away.
  let server = await serve(dir, port, ['--slow-disk', '300']);
  t.teardown(() => {
    server.kill('SIGKILL');
  });
  let conn = await r.connect({ host: '127.0.0.1', port });
  await r.tableCreate('f').run(conn);
  const feedConn = await r.connect({ host: '127.0.0.1', port });
  const cursor = await r.table('f').changes().run(feedConn);
  const seen: number[] = [];
  const exited = new Promise((res) => server.once('exit', res));
  const firstEvent = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no feed event within 20 s')), 20_000);
    cursor.each((err: unknown, ch: { new_val: { id: number } | null }) => {
      if (err) return;
      if (ch.new_val) seen.push(ch.new_val.id);
      if (seen.length === 1) {
        server.kill('SIGKILL'); // as soon as the first change is shown
        clearTimeout(timer);
        resolve();
      }
    });
  });
  // Several groups of writes, one after another, so some are still on their way to the disk
  // when the first one is shown.
  const writes = (async () => {
    for (let i = 0; i < 20; i++) {
      await Promise.all(Array.from({ length: 5 }, (_, j) => r.table('f').insert({ id: i * 5 + j }).run(conn).catch(() => undefined)));
    }
  })().catch(() => undefined);
  await firstEvent;
  await exited;
  await writes;
  await conn.close().catch(() => undefined);
  await feedConn.close().catch(() => undefined);
  t.ok(seen.length >= 1, `the feed showed ${seen.length} change(s) before the kill`);

  server = await serve(dir, port);
  conn = await r.connect({ host: '127.0.0.1', port });
  const ids = new Set(await r.table('f')('id').run(conn));
  t.same(seen.filter((id) => !ids.has(id)), [], 'every change a feed showed survived the kill');
  await conn.close();
});
