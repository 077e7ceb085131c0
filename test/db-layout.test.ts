// RETHINKDB_REPLICAS and RETHINKDB_SHARDS, as the release phase (`src/schema.ts`) applies
// them: refused on the embedded database with the reason; refused by a single server that
// cannot hold them; on a real three-node cluster (from RETHINKDB_BIN), every table gets
// them, and a change reconfigures the existing tables and waits until they are ready.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { r } from 'rethinkdb-ts';
import { chooseDb, startDb as startNodes } from '../bench/lib/procs.js';
import { startDb } from './fixtures/chat.js';

function release(env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/schema.ts'], { env: { ...process.env, LOG_LEVEL: 'info', RETHINKDB_REPLICAS: '', RETHINKDB_SHARDS: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, out }));
  });
}

t.test('the embedded database refuses more than one copy, and says why', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'chat-layout-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  for (const env of [{ RETHINKDB_REPLICAS: '3' }, { RETHINKDB_SHARDS: '2' }] as Array<Record<string, string>>) {
    const run = await release({ ...env, RETHINKDB_URL: '', DATA_DIR: dataDir });
    t.equal(run.code, 1, `${JSON.stringify(env)}: refused`);
    t.match(run.out, /embedded database is one process on one machine: it keeps one copy of each table and does not shard/);
  }
  const ok = await release({ RETHINKDB_REPLICAS: '1', RETHINKDB_SHARDS: '1', RETHINKDB_URL: '', DATA_DIR: dataDir });
  t.equal(ok.code, 0, 'the release succeeds') || t.comment(ok.out);
});

t.test('one server cannot hold three copies: the release fails with the database\'s reason', async (t) => {
  const db = await startDb(t);
  const run = await release({ RETHINKDB_URL: db.url, RETHINKDB_REPLICAS: '3' });
  t.equal(run.code, 1, 'the release fails');
  t.match(run.out, /3 replicas.*only 1 server/i, 'with the database\'s reason');
});

const bin = process.env.RETHINKDB_BIN;
t.test('a three-node cluster: every table gets the replicas and shards, then changes with them', { skip: bin ? false : 'RETHINKDB_BIN is not set: no real RethinkDB to start a cluster from' }, async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'chat-layout-cluster-'));
  const cluster = await startNodes({ choice: chooseDb({ cluster: '3' }, dataDir), dbName: 'chat' });
  t.teardown(async () => {
    await cluster.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  const s = cluster.address.servers[0];
  const conn = await r.connect({ host: s.host, port: s.port, silent: true });
  t.teardown(() => conn.close());
  type Config = { name: string; shards: Array<{ primary_replica: string; replicas: string[] }> };
  const layout = async () => {
    const configs: Config[] = await r.db('chat').tableList().map((name) => r.db('chat').table(name).config()).run(conn);
    return Object.fromEntries(configs.map((c) => [c.name, c.shards.map((x) => new Set(x.replicas).size)]));
  };

  const first = await release({ RETHINKDB_URL: cluster.url, RETHINKDB_REPLICAS: '3' });
  t.equal(first.code, 0, 'the release succeeds') || t.comment(first.out);
  const tables = await r.db('chat').tableList().run(conn);
  t.ok(tables.includes('messages') && tables.includes('users') && tables.length >= 9, `every table is there (${tables.length})`);
  t.same(Object.values(await layout()), tables.map(() => [3]), 'every table: one shard on all three servers');

  // The deployment changes its mind: two shards of two copies.
  const second = await release({ RETHINKDB_URL: cluster.url, RETHINKDB_REPLICAS: '2', RETHINKDB_SHARDS: '2' });
  t.equal(second.code, 0, 'the release succeeds') || t.comment(second.out);
  t.match(second.out, /reconfiguring a table/);
  t.same(Object.values(await layout()), tables.map(() => [2, 2]), 'every table: two shards of two replicas');
  const status: Array<{ status: { all_replicas_ready: boolean } }> = await r.db('chat').tableList().map((name) => r.db('chat').table(name).status()).run(conn);
  t.ok(status.every((x) => x.status.all_replicas_ready), 'and every replica is ready when the release ends');

  // Unset: left as they are.
  const third = await release({ RETHINKDB_URL: cluster.url });
  t.equal(third.code, 0, 'the release succeeds') || t.comment(third.out);
  t.notMatch(third.out, /reconfiguring a table/);
  t.same(Object.values(await layout()), tables.map(() => [2, 2]), 'unset numbers change nothing');
});
