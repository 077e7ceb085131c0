// `npm run status` and GET /api/admin/status: two app processes on one database, each with
// real sockets, are both listed alive with their socket counts, from the command (a real
// process) and from either app; one killed with SIGKILL is gone within three heartbeats; one
// stopped cleanly takes its row with it; the tables are listed ready; admins see the status
// over HTTP and members do not. Then an app on the embedded database in DATA_DIR: its size
// on disk, while the app runs and with no app running.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';
import t from 'tap';
import type { Status } from '../src/ops/status.js';
import { CHROMIUM_ARGS, findChromium } from './fixtures/browser.js';
import { Agent } from './fixtures/http.js';
import { clientFor, onRealRethinkdb, sleep, spawnApp, startDb } from './fixtures/chat.js';

const execFileP = promisify(execFile);
const version = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;
const BEAT_SECONDS = 1;

interface Run {
  code: number;
  out: string;
  err: string;
}

/** The command as an operator runs it: its own process, on the database `env` names. */
async function statusCommand(env: Record<string, string>, args: string[] = ['--json']): Promise<Run> {
  const options = { env: { ...process.env, RETHINKDB_URL: '', DATA_DIR: '', ...env }, timeout: 30_000 };
  try {
    const { stdout, stderr } = await execFileP(process.execPath, ['--import', 'tsx', 'src/ops/status-cli.ts', ...args], options);
    return { code: 0, out: stdout, err: stderr };
  } catch (e) {
    const failed = e as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? -1, out: failed.stdout ?? '', err: failed.stderr ?? '' };
  }
}

async function statusJson(env: Record<string, string>): Promise<Status> {
  const run = await statusCommand(env);
  if (run.code !== 0) throw new Error(`npm run status exited ${run.code}: ${run.err}`);
  return JSON.parse(run.out) as Status;
}

/** Asks until `check` is satisfied; returns the last status read. */
async function statusUntil(read: () => Promise<Status>, check: (s: Status) => boolean, what: string, timeoutMs = 20_000): Promise<Status> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await read();
    if (check(s)) return s;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(s.processes)}`);
    await sleep(200);
  }
}

async function adminAgent(url: string): Promise<Agent> {
  // The first sign-up on an empty workspace owns it.
  const owner = new Agent(url);
  const made = await owner.signup({ username: 'root' });
  if (made.status !== 201) throw new Error(`sign-up: ${made.status} ${made.text}`);
  return owner;
}

t.test('two processes on one database', async (t) => {
  const db = await startDb(t);
  const env = { RETHINKDB_URL: db.url, HEARTBEAT_SECONDS: String(BEAT_SECONDS) };
  const [one, two] = await Promise.all([spawnApp(t, { ...env, DYNO: 'web.1' }), spawnApp(t, { ...env, DYNO: 'web.2' })]);
  const command = () => statusJson({ RETHINKDB_URL: db.url });

  const onOne = [clientFor(t, one.url), clientFor(t, one.url), clientFor(t, one.url)];
  const onTwo = [clientFor(t, two.url), clientFor(t, two.url)];
  await Promise.all([...onOne, ...onTwo].map((c) => c.hello()));
  await Promise.all([onOne[0].join('alpha'), onOne[1].join('beta'), onTwo[0].join('alpha')]);

  const s = await statusUntil(command, (s) => s.processes.find((p) => p.dyno === 'web.1')?.sockets === 3 && s.processes.find((p) => p.dyno === 'web.2')?.sockets === 2, 'both processes with their sockets');
  const p1 = s.processes.find((p) => p.dyno === 'web.1')!;
  const p2 = s.processes.find((p) => p.dyno === 'web.2')!;
  t.ok(p1.alive && p2.alive, 'both alive');
  t.equal(s.processes.length, 2, 'and nothing else');
  t.match(p1, { pid: one.pid, host: hostname(), version, feeds: { rooms: 2, openFeeds: 2 } }, 'web.1: its pid, host, version, and its two rooms\' feeds');
  t.match(p2, { pid: two.pid, feeds: { rooms: 1, openFeeds: 1 } }, 'web.2: one room');
  t.ok(p1.uptimeSeconds >= 0 && p1.lastBeatSecondsAgo <= 3 * BEAT_SECONDS, `web.1 beat ${p1.lastBeatSecondsAgo} s ago`);
  t.equal(s.database.kind, onRealRethinkdb ? 'rethinkdb' : 'embedded', 'which database server it is');
  t.ok(s.servers.length >= 1 && s.servers.every((v) => /rethinkdb/.test(v.version)), `servers: ${s.servers.map((v) => `${v.name} ${v.version}`).join('; ')}`);
  const names = s.tables.map((x) => x.name);
  for (const name of ['messages', 'users', 'sessions', 'rooms', 'members', 'processes']) t.ok(names.includes(name), `table ${name} listed`);
  t.ok(s.tables.every((x) => x.ready && x.readyForWrites && x.replicas === 1 && x.shards.length === 1), 'every table ready, one shard of one replica');
  if (onRealRethinkdb) t.ok(s.tables.every((x) => typeof x.dataBytes === 'number'), 'RethinkDB says each table\'s size on disk');
  else t.equal(s.tables.find((x) => x.name === 'processes')?.rows, 2, 'the embedded server counts rows: two processes');
  t.same(s.issues, [], 'no issues');
  // The test's embedded server runs in the test, not in an app process: its size is not known.
  t.same(s.unavailable.map((u) => u.replace(/:.*/, '')), onRealRethinkdb ? [] : ['embedded data size'], 'nothing else it could not tell');

  const text = await statusCommand({ RETHINKDB_URL: db.url }, []);
  t.equal(text.code, 0, text.err);
  t.match(text.out, /processes: 2 alive/);
  t.match(text.out, /^ {2}web\.1 +alive .* 3 +2 +2 +\S/m, 'a row per process: sockets, rooms, feeds');
  t.match(text.out, /^ {2}messages +1 +1 +ready/m, 'a row per table');
  t.match(text.out, /issues: none/);
  const viaNpmFlag = await statusCommand({ RETHINKDB_URL: db.url, npm_config_json: 'true' }, []);
  t.match(JSON.parse(viaNpmFlag.out), { processes: [{ dyno: 'web.1' }, { dyno: 'web.2' }] }, '`npm run status --json` (npm keeps the flag, in npm_config_json) prints JSON');

  // Over HTTP, from either process: admins only.
  const admin = await adminAgent(one.url);
  const viaTwo = new Agent(two.url);
  viaTwo.cookies.set('sid', admin.cookies.get('sid')!);
  const answer = await viaTwo.get('/api/admin/status');
  t.equal(answer.status, 200);
  t.match(answer.json<{ status: Status }>().status, { processes: [{ dyno: 'web.1', alive: true, sockets: 3 }, { dyno: 'web.2', alive: true, sockets: 2 }] }, 'the same from the other process');
  t.equal((await admin.request('PATCH', '/api/workspace', { json: { registration: 'open' }, headers: { 'x-csrf-token': await admin.csrf() } })).status, 200);
  const member = new Agent(one.url);
  t.equal((await member.signup({ username: 'member1' })).status, 201);
  const refused = await member.get('/api/admin/status');
  t.equal(refused.status, 403, 'a member is refused, as on every admin route');
  t.notOk(refused.text.includes('processes'), 'and sees nothing of it');
  t.equal((await new Agent(one.url).get('/api/admin/status')).status, 401, 'so is someone not signed in');
  await t.test('the admin page shows it', { skip: findChromium() ? false : 'no Chromium was found (apt-get install chromium)' }, async (t) => {
    const browser = await chromium.launch({ executablePath: findChromium(), args: CHROMIUM_ARGS });
    t.teardown(() => browser.close());
    const context = await browser.newContext();
    await context.addCookies([{ name: 'sid', value: admin.cookies.get('sid')!, url: one.url }]);
    const page = await context.newPage();
    await page.goto(`${one.url}/admin`);
    await page.waitForSelector('#status table td:has-text("web.2")');
    const rows = await page.$$eval('#status table:first-of-type tbody tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
    t.match(rows, [['web.1', 'alive', hostname(), /\d+/, /[\d.]+/, '3'], ['web.2', 'alive', hostname(), /\d+/, /[\d.]+/, '2']], 'a row per process, with its sockets');
    t.match(await page.textContent('#status'), /messages.*ready/, 'and the tables');
  });

  // web.2 killed outright: gone within three beats, by the database's clock.
  await two.kill();
  const killed = performance.now();
  const readOverHttp = async () => (await admin.get('/api/admin/status')).json<{ status: Status }>().status;
  const after = await statusUntil(readOverHttp, (s) => s.processes.find((p) => p.dyno === 'web.2')?.alive === false, 'web.2 gone', 10_000);
  const took = (performance.now() - killed) / 1000;
  t.comment(`web.2 counted gone ${took.toFixed(1)} s after SIGKILL`);
  t.ok(took <= 3 * BEAT_SECONDS + 1.5, `gone within three beats of ${BEAT_SECONDS} s (and a poll): ${took.toFixed(1)} s`);
  t.match(after.processes, [{ dyno: 'web.1', alive: true }, { dyno: 'web.2', alive: false }], 'alive first; the killed one still listed, as gone');
  const fromCommand = await command();
  t.match(fromCommand.processes, [{ dyno: 'web.1', alive: true }, { dyno: 'web.2', alive: false }], 'the command says the same');

  // web.1 stopped cleanly: its row goes with it.
  await one.stop();
  const stopped = await command();
  t.notOk(stopped.processes.some((p) => p.dyno === 'web.1'), 'a process that stops cleanly deletes its row');
  t.same(stopped.processes.map((p) => p.dyno), ['web.2'], 'the killed one stays until swept');
});

t.test('an app on the embedded database in DATA_DIR', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'chat-status-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const app = await spawnApp(t, { DATA_DIR: dataDir, RETHINKDB_URL: '', HEARTBEAT_SECONDS: String(BEAT_SECONDS), DYNO: 'web.solo' });
  const env = { DATA_DIR: dataDir };

  const running = await statusJson(env);
  t.equal(running.database.kind, 'embedded', 'the embedded server');
  t.match(running.processes, [{ dyno: 'web.solo', alive: true, pid: app.pid }], 'the app process');
  t.equal(running.embedded?.dataDir, join(dataDir, 'reql'), 'its data directory');
  t.ok((running.embedded?.bytes ?? 0) > 0, `the data directory holds ${running.embedded?.bytes} bytes`);
  t.ok(running.tables.length >= 9 && running.tables.every((x) => x.ready && typeof x.rows === 'number'), 'every table ready, with its row count');

  const admin = await adminAgent(app.url);
  const s = await statusUntil(async () => (await admin.get('/api/admin/status')).json<{ status: Status }>().status, (s) => s.embedded !== undefined, 'the size in the heartbeat', 5000);
  t.equal(s.embedded?.dataDir, join(dataDir, 'reql'), 'over HTTP, the size as the process running the database reports it');

  await app.stop();
  const alone = await statusJson(env);
  t.same(alone.processes, [], 'no app runs: none listed');
  t.ok((alone.embedded?.bytes ?? 0) > 0, 'the command opens the data directory itself and measures it');
  t.ok(alone.tables.some((x) => x.name === 'users' && x.rows === 1), 'and reads it: one user');
});

t.test('a database that cannot be reached', async (t) => {
  const run = await statusCommand({ RETHINKDB_URL: 'rethinkdb://127.0.0.1:1/chat' });
  t.equal(run.code, 1, 'exits 1');
  t.match(run.err, /status: cannot reach the database at 127\.0\.0\.1:1 \(RETHINKDB_URL\)/, 'and says which database');
  t.equal(run.out, '', 'prints nothing on stdout');
  const bad = await statusCommand({ RETHINKDB_URL: 'rethinkdb://127.0.0.1:1/chat' }, ['--nonsense']);
  t.equal(bad.code, 2, 'an unknown option exits 2');
});
