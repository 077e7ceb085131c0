// table.config().update: a table's name and default durability change, the change survives a
// restart, and what a single node cannot change is refused by name.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { createEngine } from '../src/reql/engine/index.js';
import { T } from '../src/reql/engine/termtypes.js';

const db = [T.DB, ['test']];
const table = (name: string) => [T.TABLE, [db, name]];
const config = (name: string) => [T.CONFIG, [table(name)]];
type Answer = { kind: string; value?: unknown; message?: string };

t.test('config().update renames a table and changes its durability, durably', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'reql-config-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  let engine = await createEngine({ dataDir: dir });
  const run = async (term: unknown) => (await engine.run(term, {})) as Answer;
  await run([T.TABLE_CREATE, [db, 'a']]);
  await run([T.INSERT, [table('a'), { id: 1 }]]);
  const res = await run([T.UPDATE, [config('a'), { name: 'b', durability: 'soft' }]]);
  t.match(res.value, { replaced: 1, errors: 0 }, 'one config replaced');
  t.match((await run([T.UPDATE, [config('b'), { durability: 'soft' }]])).value, { unchanged: 1 }, 'the same value again is unchanged');
  await t.rejects(run([T.UPDATE, [config('b'), { shards: [T.MAKE_ARRAY, []] }]]), /cannot change `shards`/, 'shards cannot be changed, and the error says which field');
  await t.rejects(run([T.UPDATE, [config('b'), { durability: 'fast' }]]), /Durability option `"fast"` unrecognized/);
  await engine.close();

  engine = await createEngine({ dataDir: dir });
  const after = (await engine.run([T.TABLE_LIST, [db]], {})) as Answer;
  t.same(after.value, ['b'], 'the rename survived a restart');
  const conf = (await engine.run(config('b'), {})) as Answer;
  t.match(conf.value, { name: 'b', durability: 'soft' }, 'and so did the durability');
  t.match(((await engine.run([T.COUNT, [table('b')]], {})) as Answer).value, 1, 'the rows are still there');
  await engine.close();
});
