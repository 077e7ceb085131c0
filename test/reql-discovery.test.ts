// r.connectPool({ discovery: true }) against the embedded server: rethinkdb-ts follows
// rethinkdb.server_status with a changefeed and connects to each server it lists, so the row
// must name where the server really listens, and a feed on it must open. (rethinkdb-ts 3.0.0
// starts that feed only when setOptions() turns discovery on: connectPool({ discovery: true })
// stores the flag and never runs it. Both are exercised below.)
import t from 'tap';
import { r, type Connection } from 'rethinkdb-ts';
import { startReqlServer, type ReqlServer } from '../src/reql/index.js';

const server: ReqlServer = await startReqlServer({ port: 0, inMemory: true });
const conn: Connection = await r.connect({ host: server.host, port: server.port });
t.teardown(async () => {
  await conn.close();
  await server.close();
});

interface Status {
  id: string;
  network: { reql_port: number; canonical_addresses: Array<{ host: string; port: number }> };
}

t.test('server_status names the address and port the server listens on', async (t) => {
  const rows = (await r.db('rethinkdb').table('server_status').run(conn)) as Status[];
  t.equal(rows.length, 1, 'one server');
  t.equal(rows[0].network.reql_port, server.port, 'its ReQL port');
  t.same(rows[0].network.canonical_addresses.map((a) => a.host), [server.host], 'its address');
  const info = await conn.server();
  t.equal(rows[0].id, info.id, 'the same id the handshake reports');
});

t.test('a feed on server_status shows the server, then is ready and stays open', async (t) => {
  const cursor = await r.db('rethinkdb').table('server_status').changes({ includeInitial: true, includeStates: true }).run(conn);
  const first = [await cursor.next(), await cursor.next(), await cursor.next()] as Array<{ state?: string; new_val?: Status }>;
  t.same(first.map((x) => x.state ?? 'row'), ['initializing', 'row', 'ready']);
  t.equal(first[1].new_val?.network.reql_port, server.port);
  await cursor.close();
});

t.test('server_status cannot be written', async (t) => {
  await t.rejects(r.db('rethinkdb').table('server_status').delete().run(conn), /delete|writ|TABLE|SELECTION/i);
  t.equal(((await r.db('rethinkdb').table('server_status').run(conn)) as Status[]).length, 1, 'still one row');
});

t.test('connectPool({ discovery: true }) connects and serves queries', async (t) => {
  const pool = await r.connectPool({ servers: [{ host: server.host, port: server.port }], discovery: true, silent: true, buffer: 2, max: 4 });
  t.equal(await r.expr('pooled').run(), 'pooled', 'a query through the pool');
  await pool.drain();
});

t.test('discovery, once running, finds this one server and the pool serves queries', async (t) => {
  const pool = await r.connectPool({ servers: [{ host: server.host, port: server.port }], discovery: false, silent: true, buffer: 2, max: 4 });
  t.teardown(() => pool.drain());
  const feedsBefore = server.stats().openFeeds;
  pool.setOptions({ discovery: true }); // what starts rethinkdb-ts's discovery feed
  t.equal(await r.expr('pooled').run(), 'pooled', 'a query through the pool');
  // Give discovery's feed time to report the cluster (bounded: 50 polls).
  let servers: Array<{ host: string; port: number }> = [];
  for (let i = 0; i < 50; i++) {
    servers = pool.getPools().map((p) => (p as unknown as { server: { host: string; port: number } }).server);
    if (servers.length > 0 && server.stats().openFeeds > feedsBefore) break;
    await new Promise((res) => setTimeout(res, 20));
  }
  await new Promise((res) => setTimeout(res, 200)); // a bogus server from discovery would be added by now
  servers = pool.getPools().map((p) => (p as unknown as { server: { host: string; port: number } }).server);
  t.same(servers, [{ host: server.host, port: server.port }], 'one server pool, for the real address');
  t.equal(server.stats().openFeeds, feedsBefore + 1, 'discovery holds its feed on server_status open');
  const rows = await Promise.all(Array.from({ length: 8 }, (_, i) => r.expr(i).add(1).run()));
  t.same(rows, [1, 2, 3, 4, 5, 6, 7, 8], 'queries spread over the pool');
});

// The same check against a real RethinkDB when one is given: a discovering pool on one node
// ends with one server pool, for the address it was given (what the embedded server matches).
const realUrl = process.env.RETHINKDB_URL;
t.test('on a real RethinkDB node, discovery also ends with exactly that one server', { skip: realUrl ? false : 'RETHINKDB_URL not set' }, async (t) => {
  const u = new URL(realUrl!);
  const node = { host: u.hostname, port: Number(u.port || 28015) };
  const pool = await r.connectPool({ servers: [node], discovery: false, silent: true, buffer: 2, max: 4 });
  t.teardown(() => pool.drain());
  pool.setOptions({ discovery: true });
  t.equal(await r.expr('pooled').run(), 'pooled', 'a query through the pool');
  await new Promise((res) => setTimeout(res, 1000)); // discovery's feed reports the one node by then
  t.same(pool.getPools().map((p) => (p as unknown as { server: { host: string; port: number } }).server), [node]);
});
