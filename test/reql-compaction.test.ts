// The log is compacted as history outgrows live data, so disk use and restart time follow
// live rows, not the number of writes ever made; what survives a restart is the live state.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { createEngine } from '../src/reql/engine/index.js';
import { compactAt } from '../src/reql/storage/catalog.js';

const table = (name: string) => [15, [[14, ['test']], name]];
const atom = async (p: Promise<{ kind: string; value?: unknown }>) => ((await p) as { value: unknown }).value;

t.test('many rewrites of few rows: the log stays near the size of the live rows', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'reql-compact-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const warnings: string[] = [];
  let engine = await createEngine({ dataDir: dir, compactMinRows: 500, onWarn: (m) => warnings.push(m) });
  await engine.run([60, ['c']], {});
  await engine.run([56, [table('c'), [2, Array.from({ length: 100 }, (_, i) => ({ id: i, n: 0, pad: 'x'.repeat(200) }))]]], {});
  const sizeAfterInsert = statSync(join(dir, 'reql.log')).size;
  for (let round = 1; round <= 300; round++) {
    await engine.run([53, [table('c'), { n: round }], { durability: 'soft' }], {});
    // Queries arrive from sockets, so the event loop turns between them (and compaction's I/O runs).
    await new Promise((r) => setImmediate(r));
  }
  await engine.run([138, [table('c')]], {}); // sync
  // Compaction runs in the background; give it a moment to finish and swap files.
  for (let i = 0; i < 50 && statSync(join(dir, 'reql.log')).size > 10 * sizeAfterInsert; i++) await new Promise((r) => setTimeout(r, 50));
  const size = statSync(join(dir, 'reql.log')).size;
  t.same(warnings, [], 'no storage warnings');
  t.ok(size < 10 * sizeAfterInsert, `30,000 row writes left a log of ${size} bytes (100 rows were ${sizeAfterInsert})`);
  await engine.close();

  engine = await createEngine({ dataDir: dir });
  t.equal(await atom(engine.run([43, [table('c')]], {})), 100, 'every row is back');
  t.same(await atom(engine.run([31, [[16, [table('c'), 42]], 'n']], {})), 300, 'with its latest value');
  await engine.close();
});

t.test('writes that outrun a compaction wait for it, so a restart replays a bounded tail', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'reql-compact-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const minRows = 500;
  const batch = 250;
  const batches = 60;
  // On a slow disk a compaction of a few thousand rows takes as long as writing as many again.
  let engine = await createEngine({ dataDir: dir, compactMinRows: minRows, slowDiskMs: 5 });
  await engine.run([60, ['c']], {});
  await engine.run([75, [table('c'), 'g']], {}); // index_create: its tree is in every snapshot too
  let waited = 0;
  for (let b = 0; b < batches; b++) {
    const rows = Array.from({ length: batch }, (_, i) => ({ id: b * batch + i, g: i % 7, pad: 'x'.repeat(100) }));
    const t0 = performance.now();
    await engine.run([56, [table('c'), [2, rows]], { durability: 'soft' }], {});
    waited = Math.max(waited, performance.now() - t0);
  }
  const live = batch * batches;
  await engine.close();
  engine = await createEngine({ dataDir: dir });
  const { tailWrites, snapshotRows } = engine.stats().loaded;
  t.equal(await atom(engine.run([43, [table('c')]], {})), live, 'every row is back');
  t.equal(await atom(engine.run([43, [[78, [table('c'), 3], { index: 'g' }]]], {})), batches * Array.from({ length: batch }, (_, i) => i % 7).filter((g) => g === 3).length, 'the index is whole');
  t.ok(snapshotRows > 0, `the restart loaded ${snapshotRows} rows from a snapshot`);
  // At most the writes that call for a compaction, those let through while it runs, and one batch.
  const bound = compactAt(live, minRows) + minRows + batch;
  t.ok(tailWrites <= bound, `the restart replayed ${tailWrites} row writes (at most ${bound}); the longest insert waited ${Math.round(waited)} ms`);
  await engine.close();
});
