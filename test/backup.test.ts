// `npm run backup` and `npm run restore`, run as the commands they are, on the embedded server
// and (with RETHINKDB_URL) a real RethinkDB: a workspace backed up, wiped and restored holds
// every row as it was, its indexes answer, and its sessions still log people in; a damaged
// archive or a non-empty target is refused with nothing written.
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual, promisify } from 'node:util';
import { gunzipSync, gzipSync } from 'node:zlib';
import { r, type Connection, type RDatum } from 'rethinkdb-ts';
import t, { type Test } from 'tap';
import { createAccounts, hashToken } from '../src/accounts/service.js';
import { createAccountStore } from '../src/accounts/store.js';
import type { DbAddress } from '../src/config.js';
import { createMessageStore } from '../src/db/messages.js';
import { connectAny, openPool } from '../src/db/pool.js';
import { CLAIMS, ensureSchema, INVITES, MEMBERS, MESSAGES, RATE_LIMITS, ROOMS, SESSIONS, USERS, WORKSPACE } from '../src/db/schema.js';
import { createRoomStore } from '../src/rooms/store.js';
import { embeddedPortFile } from '../src/server.js';
import { startReqlServer } from '../src/reql/index.js';
import { Agent } from './fixtures/http.js';
import { onRealRethinkdb, spawnApp, startApp, startDb, testLog, urlOf, type TestDb } from './fixtures/chat.js';

// About 80 s on an idle machine (each command is a process of its own): more than the default.
t.setTimeout(240_000);

const RAW = { timeFormat: 'raw', binaryFormat: 'raw' } as const;
const PASSWORD = 'a long enough password';
const execFileP = promisify(execFile);

/** The command as an operator runs it: its exit code and what it printed. */
async function command(name: 'backup' | 'restore', args: string[], env: Record<string, string>): Promise<{ code: number; out: string; err: string }> {
  try {
    const res = await execFileP(process.execPath, ['--import', 'tsx', `src/ops/${name}-cli.ts`, ...args], { env: { ...process.env, RETHINKDB_URL: '', ...env }, maxBuffer: 1 << 24 });
    return { code: 0, out: res.stdout, err: res.stderr };
  } catch (e) {
    const failed = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof failed.code === 'number' ? failed.code : -1, out: failed.stdout ?? '', err: failed.stderr ?? '' };
  }
}

async function connect(t: Test, address: DbAddress): Promise<Connection> {
  const conn = await connectAny(address, testLog());
  t.teardown(() => conn.close());
  return conn;
}

/** Another database on the same server, dropped at the end on a real RethinkDB. */
function otherDb(t: Test, db: TestDb, suffix: string): { name: string; url: string } {
  const name = `${db.dbName}_${suffix}`;
  if (onRealRethinkdb) {
    t.teardown(async () => {
      const conn = await connectAny(db.address, testLog());
      await r.dbDrop(name).run(conn).catch(() => undefined);
      await conn.close();
    });
  }
  return { name, url: urlOf(db.address, name) };
}

interface Dump {
  rows: Record<string, unknown[]>;
  indexes: Record<string, string[]>;
}

/** Every row of every table (as stored: raw times and binaries), in key order, and the indexes. */
async function dump(conn: Connection, db: string): Promise<Dump> {
  const out: Dump = { rows: {}, indexes: {} };
  for (const table of (await r.db(db).tableList().run(conn)).sort()) {
    out.rows[table] = await r.db(db).table(table).orderBy({ index: 'id' }).run(conn, RAW);
    out.indexes[table] = (await r.db(db).table(table).indexList().run(conn)).sort();
  }
  return out;
}

interface Seeded {
  token: string;
  rooms: { general: string; group: string; dm: string };
  chunk: Buffer;
}

/** A small workspace as the app writes it: accounts, a session, settings, an invitation,
 *  rooms of each kind, members with a read position, messages edited, reacted to and
 *  deleted, a rate limit; and a table of binary chunks with an index made by hand, as
 *  uploaded files will be. */
async function seedWorkspace(address: DbAddress, db: string, conn: Connection): Promise<Seeded> {
  const log = testLog();
  await ensureSchema(conn, db, { log, staleMs: 60_000 });
  const pool = openPool(address, { log, perServer: 1 });
  try {
    await pool.waitHealthy(10_000);
    const users = createAccountStore(pool, db);
    const accounts = createAccounts({ store: users, log, sessionDays: 30 });
    const zoe = await accounts.createUser({ username: 'zoe', displayName: 'Zoë 🦊 Ångström', email: 'zoe@example.test', password: PASSWORD }, 'owner');
    await users.claimFirstOwner(zoe.id);
    const bjorn = await accounts.createUser({ username: 'bjorn', displayName: 'Bjørn 北京 "quoted" \\ back', email: 'bjorn@example.test', password: PASSWORD }, 'member');
    const { token } = await accounts.login('zoe', PASSWORD);
    await users.updateSettings({ name: 'Réquirement 室 😀', registration: 'open', editWindowMinutes: 15 });
    await users.secret('csrf');
    await users.createInvite({ id: hashToken('an invitation'), createdBy: zoe.id, createdAt: new Date(), expiresAt: new Date(Date.now() + 86_400_000), maxUses: 3, uses: 1, role: 'guest', revoked: false });

    const rooms = createRoomStore(pool, db);
    const general = await rooms.create({ kind: 'channel', name: 'général', topic: 'ça va ? ✓\nsecond line', ownerId: zoe.id });
    const group = await rooms.create({ kind: 'group', name: 'secret', topic: '', ownerId: zoe.id });
    const dm = await rooms.dm([zoe.id, bjorn.id]);
    for (const room of [general, group]) await rooms.addMember(room.id, zoe.id);
    await rooms.addMember(general.id, bjorn.id);

    const messages = createMessageStore(pool, db);
    const roomIds = [general.id, group.id, dm.id];
    const sent = [];
    for (let i = 0; i < 240; i += 24) {
      const batch = Array.from({ length: 24 }, (_, k) => messages.insert({ id: randomUUID(), room: roomIds[(i + k) % 3], body: `message ${i + k}: ünïcödé 🎉 “curly” \\ \u2028 <b>&amp;</b>\nand a line`, author: { id: zoe.id, name: zoe.displayName } }));
      for (const res of await Promise.all(batch)) sent.push(res.message);
    }
    await messages.edit(sent[0].id, 'edited: ✎ ñ');
    await messages.react(sent[3].id, zoe.id, '👍', true);
    await messages.react(sent[3].id, bjorn.id, '👍', true);
    await messages.react(sent[3].id, bjorn.id, '🎉', true);
    await messages.remove(sent[6].id);
    await rooms.setRead(general.id, bjorn.id, sent[9].sent, sent[9].id);
    await pool.run(r.db(db).table(RATE_LIMITS).insert({ id: 'login:0123abcd', points: 2, expire: Date.now() + 600_000 }));

    const chunk = randomBytes(200_000);
    // A table the app's schema does not know, with an index of its own: restore remakes both from
    // the archive's definitions.
    await r.db(db).tableCreate('legacy_chunks').run(conn);
    await r.db(db).table('legacy_chunks').indexCreate('file_n', (c: RDatum) => [c('fileId'), c('n')]).run(conn);
    await r.db(db).table('legacy_chunks').indexWait().run(conn);
    await r.db(db).table('legacy_chunks').insert([
      { id: 'f1:0', fileId: 'f1', n: 0, data: chunk, at: r.time(2024, 2, 29, 23, 59, 59.5, '-07:00') },
      { id: 'f1:1', fileId: 'f1', n: 1, data: Buffer.alloc(0), at: r.time(1969, 12, 31, 23, 0, 0, '+05:30') },
      { id: 'f2:0', fileId: 'f2', n: 0, data: Buffer.from([0, 255, 10, 13]), meta: { a: [1, 2.5, null, true, { deep: 'ü' }], big: 2 ** 53 - 1, tiny: -1e-7, empty: {} } },
    ]).run(conn);
    return { token, rooms: { general: general.id, group: group.id, dm: dm.id }, chunk };
  } finally {
    await pool.close();
  }
}

t.test('back up, wipe, restore: every row, index and session as it was', async (t) => {
  const db = await startDb(t);
  const conn = await connect(t, db.address);
  const seeded = await seedWorkspace(db.address, db.dbName, conn);
  const before = await dump(conn, db.dbName);
  t.equal(before.rows[MESSAGES].length, 240);
  const dir = mkdtempSync(join(tmpdir(), 'chat-backup-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'workspace.jsonl.gz');
  const env = { RETHINKDB_URL: db.url };

  const made = await command('backup', ['--out', file], env);
  t.equal(made.code, 0, made.err);
  const total = Object.values(before.rows).reduce((n, rows) => n + rows.length, 0).toLocaleString('en-US');
  t.match(made.out, new RegExp(`${total} rows in ${Object.keys(before.rows).length} tables of ${db.dbName}`));
  t.match(made.out, /rows\/s, [\d.]+ MB\/s; sha256 [0-9a-f]{64}/);
  t.notOk(made.err.includes('ünïcödé') || made.out.includes('ünïcödé'), 'no row content is printed');
  t.same(readdirSync(dir), ['workspace.jsonl.gz'], 'the partial file is renamed into place');

  await r.dbDrop(db.dbName).run(conn);
  const restored = await command('restore', [file], env);
  t.equal(restored.code, 0, restored.err);
  t.comment(restored.out.trim());
  t.match(restored.out, new RegExp(`into ${db.dbName}: ${total} rows in ${Object.keys(before.rows).length} tables`));
  t.match(restored.out, /rows written in [\d.]+ s \([\d,]+ rows\/s, [\d.]+ MB\/s\); indexes and counts checked/);
  const after = await dump(conn, db.dbName);
  t.strictSame(after.rows, before.rows, 'every row of every table is identical, times (with their zones) and binaries too');
  t.strictSame(after.indexes, before.indexes, 'every index is there, the hand-made one too');

  const q = r.db(db.dbName);
  const roomOrder = (await q.table(MESSAGES).between([seeded.rooms.general, r.minval], [seeded.rooms.general, r.maxval], { index: 'room_sent' }).orderBy({ index: 'room_sent' })('id').run(conn)) as string[];
  t.equal(roomOrder.length, 80, 'the room_sent index answers');
  const expected = (before.rows[MESSAGES] as Array<{ id: string; room: string; sent: { epoch_time: number } }>).filter((m) => m.room === seeded.rooms.general).sort((a, b) => a.sent.epoch_time - b.sent.epoch_time || (a.id < b.id ? -1 : 1)).map((m) => m.id);
  t.strictSame(roomOrder, expected, 'in the order it had');
  t.equal(Number(await q.table(MESSAGES).between([seeded.rooms.general, r.minval, r.minval], [seeded.rooms.general, r.maxval, r.maxval], { index: 'room_updated' }).count().run(conn)), 3, 'room_updated holds the changed messages of the room');
  t.equal(Number(await q.table('members').getAll(seeded.rooms.general, { index: 'roomId' }).count().run(conn)), 2);
  t.equal(Number(await q.table('rooms').getAll('group', { index: 'kind' }).count().run(conn)), 1);
  const chunk = (await q.table('legacy_chunks').getAll(['f1', 0], { index: 'file_n' }).run(conn)) as Array<{ data: Buffer; at: Date }>;
  t.ok(chunk[0].data.equals(seeded.chunk), 'a binary chunk comes back byte for byte, through its index');

  const again = await command('restore', [file], env);
  t.equal(again.code, 1);
  t.match(again.err, new RegExp(`restore: the database ${db.dbName} is not empty \\(rows in .*messages.*\\): restore into an empty database, or add --force`));
  const forced = await command('restore', [file, '--force'], env);
  t.equal(forced.code, 0, forced.err);
  t.match(forced.out, /replaced the tables .*messages.*\(--force\)/);
  t.strictSame((await dump(conn, db.dbName)).rows, before.rows, 'with --force: the same rows again, not twice');

  const app = await startApp(t, db.url);
  const agent = new Agent(app.url);
  agent.cookies.set('sid', seeded.token);
  const me = await agent.get('/api/me');
  t.equal(me.status, 200, 'a session from before the backup still logs in');
  t.match(me.json(), { user: { username: 'zoe', displayName: 'Zoë 🦊 Ångström', role: 'owner' } });
  const history = await agent.get(`/api/rooms/${seeded.rooms.general}/messages?limit=10`);
  t.equal(history.status, 200, 'the room\'s history');
  t.strictSame(history.json<{ messages: Array<{ id: string }> }>().messages.map((m) => m.id), expected.slice(-10), 'the app reads the room\'s history from the restored index');
});

/** A small database: the schema and a few thousand messages. */
async function smallDb(t: Test, db: TestDb): Promise<void> {
  const conn = await connect(t, db.address);
  await ensureSchema(conn, db.dbName, { log: testLog(), staleMs: 60_000 });
  await r.db(db.dbName).table(MESSAGES).insert(Array.from({ length: 3000 }, (_, i) => ({ id: randomUUID(), room: `room-${i % 7}`, body: `line ${i} ✓`, author: { name: 'filler' }, sent: new Date(1_700_000_000_000 + i) }))).run(conn);
}

t.test('a damaged archive, bad input: refused, with nothing written', async (t) => {
  const db = await startDb(t);
  const conn = await connect(t, db.address);
  const dir = mkdtempSync(join(tmpdir(), 'chat-backup-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const good = join(dir, 'good.jsonl.gz');
  await smallDb(t, db);
  const made = await command('backup', ['--out', good], { RETHINKDB_URL: db.url });
  t.equal(made.code, 0, made.err);
  const bytes = readFileSync(good);
  const lines = gunzipSync(bytes).toString('utf8').split(/(?<=\n)/);
  const target = otherDb(t, db, 'restored');

  const variants: Array<[string, Buffer, RegExp]> = [];
  for (const at of [0.2, 0.5, 0.8]) {
    const flipped = Buffer.from(bytes);
    flipped[Math.floor(bytes.length * at)] ^= 0x40;
    variants.push([`a byte flipped at ${at * 100}%`, flipped, /corrupt/]);
  }
  variants.push(['cut short', bytes.subarray(0, bytes.length - 200), /truncated/]);
  variants.push(['cut at a line, recompressed', gzipSync(lines.slice(0, -1).join('')), /no manifest at its end: truncated/]);
  variants.push(['a row changed, recompressed', gzipSync(lines.map((l, i) => (i === 5 ? l.replace('✓', '✗') : l)).join('')), /the rows of the table messages do not match their checksum: corrupt/]);
  variants.push(['a row taken out, recompressed', gzipSync(lines.filter((_, i) => i !== 5).join('')), /the table messages holds 2999 rows, its manifest says 3000/]);
  variants.push(['not gzip at all', Buffer.from('hello\n'), /not a whole gzip stream/]);
  variants.push(['another gzip file', gzipSync('{"some":"json"}\n'), /not a backup of this app/]);
  // Each from a file of its own, all at once (each is a process of its own).
  const refused = await Promise.all(
    variants.map(([, content], i) => {
      const file = join(dir, `bad-${i}.jsonl.gz`);
      writeFileSync(file, content);
      return command('restore', [file], { RETHINKDB_URL: target.url });
    }),
  );
  variants.forEach(([what, , message], i) => {
    t.equal(refused[i].code, 1, `${what}: exit 1`);
    t.match(refused[i].err, message, what);
  });
  t.notOk((await r.dbList().run(conn)).includes(target.name), 'none of them wrote anything');

  const usage: Array<['backup' | 'restore', string[], RegExp]> = [
    ['restore', [], /FILE is required/],
    ['restore', ['a', 'b'], /one FILE, not 2/],
    ['restore', [good, '--bogus'], /Unknown option/],
    ['backup', [], /--out FILE or --out DIR\/ is required/],
    ['backup', ['--out', join(dir, 'x.gz'), '--keep', '2'], /--keep needs --out to name a directory/],
    ['backup', ['--out', `${dir}/`, '--keep', 'none'], /--keep must be a whole number/],
  ];
  const answers = await Promise.all(usage.map(([name, args]) => command(name, args, { RETHINKDB_URL: target.url })));
  usage.forEach(([name, args, message], i) => {
    t.equal(answers[i].code, 2, `${name} ${args.join(' ')}: exit 2`);
    t.match(answers[i].err, message);
  });
  const missing = await command('restore', [join(dir, 'nowhere.jsonl.gz')], { RETHINKDB_URL: target.url });
  t.equal(missing.code, 1);
  t.match(missing.err, /cannot read .*nowhere\.jsonl\.gz/);
  const noDb = await command('backup', ['--out', join(dir, 'none.jsonl.gz')], { RETHINKDB_URL: urlOf(db.address, `${db.dbName}_absent`) });
  t.equal(noDb.code, 1);
  t.match(noDb.err, /there is no database .*_absent to back up/);
  t.notOk(readdirSync(dir).some((f) => f.startsWith('none')), 'a failed backup leaves no file');
  const unwritable = await command('backup', ['--out', join(dir, 'no', 'such', 'place.jsonl.gz')], { RETHINKDB_URL: db.url });
  t.equal(unwritable.code, 1);
  t.match(unwritable.err, /backup: ENOENT: no such file or directory, open '.*place\.jsonl\.gz\.partial'/, 'a file that cannot be written: said so');
});

t.test('--out DIR/ --keep N: the newest N of this database are kept', async (t) => {
  const db = await startDb(t);
  const dir = mkdtempSync(join(tmpdir(), 'chat-backup-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'nightly');
  mkdirSync(out);
  const foreign = ['notes.txt', 'other-2020-01-01T00-00-00.000Z.jsonl.gz'];
  for (const f of foreign) writeFileSync(join(out, f), 'not ours');
  await smallDb(t, db);
  const made: string[] = [];
  for (let i = 0; i < 3; i++) {
    const res = await command('backup', ['--out', `${out}/`, '--keep', '2'], { RETHINKDB_URL: db.url });
    t.equal(res.code, 0, res.err);
    made.push(/^backup: (\S+): /m.exec(res.out)![1]);
    if (i === 2) t.match(res.out, /deleted .* \(keeping the newest 2\)/);
  }
  const names = made.map((f) => f.slice(out.length + 1));
  for (const n of names) t.match(n, new RegExp(`^${db.dbName}-\\d{4}-\\d\\d-\\d\\dT\\d\\d-\\d\\d-\\d\\d\\.\\d{3}Z\\.jsonl\\.gz$`));
  t.strictSame(readdirSync(out).sort(), [...foreign, ...names.slice(1)].sort(), 'the oldest is gone, the others and files not ours stay');
});

t.test('a backup taken while messages are being written completes, and restores', async (t) => {
  const db = await startDb(t);
  const conn = await connect(t, db.address);
  await ensureSchema(conn, db.dbName, { log: testLog(), staleMs: 60_000 });
  const table = r.db(db.dbName).table(MESSAGES);
  const filler = (n: number) => Array.from({ length: n }, (_, i) => ({ id: randomUUID(), room: `room-${i % 20}`, body: `an ordinary line of chat, number ${i}`, author: { name: 'filler' }, sent: new Date(1_700_000_000_000 + i) }));
  for (let i = 0; i < 10; i++) await table.insert(filler(1000), { durability: 'soft' }).run(conn);
  const stable = (await table.orderBy({ index: 'id' }).run(conn, RAW)) as Array<{ id: string }>;

  const writer = await connect(t, db.address);
  let writing = true;
  let written = 0;
  const writes = (async () => {
    while (writing) {
      const rows = filler(20);
      await r.db(db.dbName).table(MESSAGES).insert(rows).run(writer);
      written += rows.length;
    }
  })();
  const dir = mkdtempSync(join(tmpdir(), 'chat-backup-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'live.jsonl.gz');
  const made = await command('backup', ['--out', file], { RETHINKDB_URL: db.url });
  writing = false;
  await writes;
  t.equal(made.code, 0, made.err);
  t.ok(written > 0, `${written} messages were written during the backup`);

  const target = otherDb(t, db, 'live');
  const restored = await command('restore', [file], { RETHINKDB_URL: target.url });
  t.equal(restored.code, 0, restored.err);
  const back = new Map(((await r.db(target.name).table(MESSAGES).run(conn, RAW)) as Array<{ id: string }>).map((m) => [m.id, m]));
  t.ok(back.size >= stable.length && back.size <= stable.length + written, `${back.size} messages restored: those from before, and some of those written meanwhile`);
  t.equal(stable.filter((m) => !isDeepStrictEqual(back.get(m.id), m)).length, 0, 'every message stored before the backup began is in it, as it was');
  const source = new Map(((await table.run(conn, RAW)) as Array<{ id: string }>).map((m) => [m.id, m]));
  t.ok([...back.values()].every((m) => source.has(m.id)), 'and nothing that was never written');
});

t.test('on the embedded database in DATA_DIR: from the running app, into a data directory of its own', async (t) => {
  const source = mkdtempSync(join(tmpdir(), 'chat-backup-src-'));
  const restoredDir = mkdtempSync(join(tmpdir(), 'chat-backup-dst-'));
  t.teardown(() => {
    rmSync(source, { recursive: true, force: true });
    rmSync(restoredDir, { recursive: true, force: true });
  });
  await spawnApp(t, { DATA_DIR: source, RETHINKDB_URL: '' });
  const [host, port] = readFileSync(embeddedPortFile(source), 'utf8').trim().split(':');
  const appDb: DbAddress = { servers: [{ host, port: Number(port) }], user: 'admin', password: '' };
  const conn = await connect(t, appDb);
  await seedWorkspace(appDb, 'chat', conn);
  const file = join(source, 'running.jsonl.gz');
  const made = await command('backup', ['--out', file], { DATA_DIR: source });
  t.equal(made.code, 0, made.err);
  const before = await dump(conn, 'chat');

  const restored = await command('restore', [file], { DATA_DIR: restoredDir });
  t.equal(restored.code, 0, `with no app running it opens the data directory itself: ${restored.err}`);
  const reql = await startReqlServer({ dataDir: join(restoredDir, 'reql') });
  t.teardown(() => reql.close());
  const check = await connect(t, { servers: [{ host: reql.host, port: reql.port }], user: 'admin', password: '' });
  const after = await dump(check, 'chat');
  t.strictSame(after.indexes, before.indexes, 'the restored data directory has the same tables and indexes');
  // The running app may rewrite rows of its own at any time: the tables the test wrote are compared.
  const written = [MESSAGES, USERS, CLAIMS, SESSIONS, WORKSPACE, INVITES, ROOMS, MEMBERS, RATE_LIMITS, 'legacy_chunks'];
  for (const table of written) t.strictSame(after.rows[table], before.rows[table], `${table}: the same rows`);
});
