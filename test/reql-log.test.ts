// The durable log on real files: replay, soft writes, torn and corrupt tails, compaction with
// concurrent appends, and a real kill -9 of a process in the middle of hard writes.
import { spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { openLog, type DurableLog, type LogOptions } from '../src/reql/storage/log.js';

const HEADER_BYTES = 12;

function tmp(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'reql-log-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function load(opts: LogOptions): Promise<{ log: DurableLog; records: unknown[]; warnings: string[] }> {
  const records: unknown[] = [];
  const warnings: string[] = [];
  const log = await openLog(opts, (r) => records.push(r), (w) => warnings.push(w));
  return { log, records, warnings };
}

async function reload(dir: string): Promise<{ records: unknown[]; warnings: string[] }> {
  const { log, records, warnings } = await load({ dir });
  await log.close();
  return { records, warnings };
}

t.test('append and replay round trip', async (t) => {
  const dir = tmp(t);
  const { log, records } = await load({ dir });
  t.same(records, []);
  t.equal(log.size(), HEADER_BYTES);
  await log.append([{ a: 1 }, 'two', [3], null], 'hard');
  await Promise.all([log.append([{ b: 'é😀' }], 'hard'), log.append([{ c: true }], 'hard')]);
  await log.append([], 'hard');
  t.equal(statSync(join(dir, 'reql.log')).size, log.size());
  await log.close();
  await t.rejects(log.append([1], 'hard'), /closed/);
  t.same((await reload(dir)).records, [{ a: 1 }, 'two', [3], null, { b: 'é😀' }, { c: true }]);
});

t.test('soft writes land soon without sync, and sync makes them durable', async (t) => {
  const dir = tmp(t);
  const file = join(dir, 'reql.log');
  const { log } = await load({ dir });
  await log.append([{ n: 1 }], 'soft');
  t.equal(statSync(file).size, HEADER_BYTES, 'a soft append resolves before it is written');
  await new Promise((r) => setTimeout(r, 100));
  t.equal(statSync(file).size, log.size(), 'written within the soft delay');
  for (let i = 2; i <= 100; i++) void log.append([{ n: i }], 'soft');
  await log.sync();
  t.equal(statSync(file).size, log.size());
  await log.close();
  t.same((await reload(dir)).records, Array.from({ length: 100 }, (_, i) => ({ n: i + 1 })));
});

t.test('a torn last frame is dropped, earlier ones kept, and appends continue', async (t) => {
  const dir = tmp(t);
  const file = join(dir, 'reql.log');
  const { log } = await load({ dir });
  await log.append([{ g: 1 }], 'hard');
  await log.append([{ g: 2, k: 0 }, { g: 2, k: 1 }], 'hard');
  const intact = log.size();
  await log.append([{ g: 3, k: 0 }, { g: 3, k: 1 }, { g: 3, k: 2 }], 'hard');
  const full = log.size();
  await log.close();

  truncateSync(file, full - 5); // mid-frame: the group is gone as a whole
  let got = await reload(dir);
  t.same(got.records, [{ g: 1 }, { g: 2, k: 0 }, { g: 2, k: 1 }]);
  t.equal(got.warnings.length, 1);
  t.match(got.warnings[0], `dropped ${full - 5 - intact} bytes`);
  t.equal(statSync(file).size, intact, 'the torn tail was cut off');
  t.equal(readFileSync(file + '.dropped').length, full - 5 - intact, 'and kept aside');

  truncateSync(file, intact + 3); // not even a whole frame header
  got = await reload(dir);
  t.equal(got.records.length, 3);
  t.match(got.warnings[0], 'dropped 3 bytes');

  const more = await load({ dir });
  t.same(more.warnings, []);
  await more.log.append([{ g: 4 }], 'hard');
  await more.log.close();
  got = await reload(dir);
  t.same(got.records, [{ g: 1 }, { g: 2, k: 0 }, { g: 2, k: 1 }, { g: 4 }]);
  t.same(got.warnings, []);
});

t.test('garbage after the last frame is dropped', async (t) => {
  const dir = tmp(t);
  const file = join(dir, 'reql.log');
  const { log } = await load({ dir });
  for (let i = 0; i < 10; i++) await log.append([{ i }], i % 2 ? 'soft' : 'hard');
  await log.close();
  const size = statSync(file).size;
  // A plausible small length, then noise; then a huge length; then a few random bytes.
  for (const junk of [
    Buffer.from([20, 0, 0, 0, 1, 2, 3, 4, 91, 93]),
    Buffer.from([0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0, 1]),
    Buffer.from('zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz'),
  ]) {
    appendFileSync(file, junk);
    const got = await reload(dir);
    t.same(got.records, Array.from({ length: 10 }, (_, i) => ({ i })));
    t.match(got.warnings[0], `dropped ${junk.length} bytes`);
    t.equal(statSync(file).size, size);
  }
});

t.test('a last frame with a bad CRC (or not an array) is dropped', async (t) => {
  const dir = tmp(t);
  const file = join(dir, 'reql.log');
  const { log } = await load({ dir });
  await log.append([{ keep: 1 }], 'hard');
  const before = log.size();
  await log.append([{ lose: 1 }], 'hard');
  await log.close();
  const bytes = readFileSync(file);
  bytes[bytes.length - 3] ^= 0x01; // inside the payload, the JSON stays valid-looking
  writeFileSync(file, bytes);
  let got = await reload(dir);
  t.same(got.records, [{ keep: 1 }]);
  t.match(got.warnings[0], `dropped ${bytes.length - before} bytes`);

  // A frame with a right CRC whose payload is not a JSON array is not a log frame either.
  const payload = Buffer.from('{"x":1}');
  const head = Buffer.alloc(8);
  head.writeUInt32LE(payload.length, 0);
  const { crc32 } = await import('node:zlib');
  head.writeUInt32LE(crc32(payload), 4);
  appendFileSync(file, Buffer.concat([head, payload]));
  got = await reload(dir);
  t.same(got.records, [{ keep: 1 }]);
  t.equal(got.warnings.length, 1);
});

t.test('a foreign or newer file is refused, an empty one is initialized', async (t) => {
  const dir = tmp(t);
  const file = join(dir, 'reql.log');
  writeFileSync(file, 'hello, this is not a log at all');
  await t.rejects(openLog({ dir }, () => {}), /not a ReQL log file/);
  t.equal(readFileSync(file, 'utf8'), 'hello, this is not a log at all', 'left untouched');
  const newer = Buffer.alloc(HEADER_BYTES);
  newer.write('REQL-LOG', 'latin1');
  newer.writeUInt32LE(99, 8);
  writeFileSync(file, newer);
  await t.rejects(openLog({ dir }, () => {}), /version 99/);
  writeFileSync(file, '');
  const got = await reload(dir);
  t.same(got.records, []);
  t.equal(statSync(file).size, HEADER_BYTES);
  // Other file names live side by side.
  const other = await load({ dir, fileName: 'other.log' });
  await other.log.append([1], 'hard');
  await other.log.close();
  const again = await load({ dir, fileName: 'other.log' });
  await again.log.close();
  t.same(again.records, [1]);
});

t.test('compaction shrinks the file; appends made during it come after the snapshot', async (t) => {
  const dir = tmp(t);
  const file = join(dir, 'reql.log');
  const { log } = await load({ dir, compactMinBytes: 1024, compactRatio: 2 });
  // 20,000 updates to 1,000 keys: history is 20 times the live data.
  const live = new Map<number, { k: number; v: number; pad: string }>();
  const pad = 'p'.repeat(150);
  for (let v = 0; v < 20; v++) {
    const group = [];
    for (let k = 0; k < 1000; k++) {
      const rec = { k, v, pad };
      live.set(k, rec);
      group.push(rec);
    }
    for (let i = 0; i < group.length; i += 10) void log.append(group.slice(i, i + 10), v % 2 ? 'soft' : 'hard');
  }
  await log.sync();
  const big = log.size();
  const liveBytes = JSON.stringify([...live.values()]).length;
  t.ok(log.shouldCompact(liveBytes));
  t.notOk(log.shouldCompact(big), 'not when the log is mostly live data');

  const snapshot = live.values(); // a lazy iterator: read during the call
  const compacting = log.compact(snapshot);
  t.notOk(log.shouldCompact(liveBytes), 'not while compacting');
  await t.rejects(log.compact([]), /already running/);
  // Keep appending, hard and soft, until the compaction is over (and a bit after).
  const later: unknown[] = [];
  let done = false;
  void compacting.then(() => (done = true));
  const writes: Promise<void>[] = [];
  for (let i = 0; !done || i < 50; i++) {
    const rec = { later: i };
    later.push(rec);
    writes.push(log.append([rec], i % 3 ? 'hard' : 'soft'));
    if (i % 5 === 0) await new Promise((r) => setImmediate(r));
  }
  await compacting;
  await Promise.all(writes);
  t.ok(later.length > 50, `${later.length} appends overlapped the compaction`);
  const size = statSync(file).size;
  t.ok(size < big / 5, `file shrank from ${big} to ${size} bytes`);
  await log.close();
  let got = await reload(dir);
  t.same(got.records, [...live.values(), ...later]);
  t.same(got.warnings, []);

  // Again on the reopened log, twice in a row: the second compacts the file the first wrote.
  const again = await load({ dir });
  for (const round of [1, 2]) {
    const pending = again.log.compact([{ round }]);
    const tail = again.log.append([{ after: round }], 'hard');
    await Promise.all([pending, tail]);
  }
  await again.log.append([{ end: true }], 'soft');
  await again.log.close();
  got = await reload(dir);
  t.same(got.records, [{ round: 2 }, { after: 2 }, { end: true }]);
});

t.test('a compaction left unfinished by a crash is ignored', async (t) => {
  const dir = tmp(t);
  const { log } = await load({ dir });
  await log.append([1, 2], 'hard');
  await log.close();
  writeFileSync(join(dir, 'reql.log.compact'), 'half a snapshot');
  t.same((await reload(dir)).records, [1, 2]);
});

t.test('acknowledged hard writes survive kill -9 of the writing process', async (t) => {
  const dir = tmp(t);
  let acked = -1;
  for (const round of [1, 2, 3]) {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/log-writer.ts', dir], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const target = acked + 2000 + Math.floor(Math.random() * 4000);
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, sig) => resolve(sig)));
    let partial = '';
    child.stdout!.on('data', (b: Buffer) => {
      const lines = (partial + b.toString()).split('\n');
      partial = lines.pop()!;
      for (const line of lines) acked = Math.max(acked, Number(line));
      if (acked >= target) child.kill('SIGKILL');
    });
    t.equal(await exited, 'SIGKILL', `round ${round}: killed mid-write`);

    const { records } = await reload(dir);
    const seqs = (records as Array<{ seq: number }>).map((r) => r.seq);
    t.ok(seqs.length > acked, `round ${round}: ${seqs.length} records replayed, highest ack ${acked}`);
    t.ok(
      seqs.every((s, i) => s === i),
      'the log is exactly a prefix of the attempted writes',
    );
    let boundary = 0;
    while (boundary < seqs.length) boundary += (boundary % 3) + 1;
    t.equal(boundary, seqs.length, 'and ends on a group boundary');
  }
});
