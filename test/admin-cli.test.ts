// `npm run admin`: the operator's tool, run as a command against the app's database (the
// embedded one while the app runs, the embedded one with no app running, or RETHINKDB_URL).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runAdmin } from './fixtures/admin.js';
import { Agent } from './fixtures/http.js';
import { spawnApp, startDb } from './fixtures/chat.js';

// Each command is a process of its own (tsx and a connection each): on a loaded machine the
// file takes about two minutes on a real RethinkDB, tap's default limit.
t.setTimeout(300_000);

const admin = (env: Record<string, string>, args: string[], stdin = '') => runAdmin(args, env, stdin);

t.test('while the app runs on the embedded database', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'chat-admin-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const app = await spawnApp(t, { DATA_DIR: dataDir, RETHINKDB_URL: '' });
  const env = { DATA_DIR: dataDir };

  const made = await admin(env, ['create-user', 'root', '--role', 'owner', '--email', 'root@example.test'], 'a long enough password\n');
  t.equal(made.code, 0, made.err);
  t.match(made.out, /created user root \(owner, id [0-9a-f-]{36}\)/);
  const a = new Agent(app.url);
  t.equal((await a.login('root', 'a long enough password')).status, 200, 'the new account logs in to the running app');
  t.match((await a.get('/api/me')).json(), { user: { role: 'owner' } });
  t.notOk((await new Agent(app.url).get('/signup')).text.includes('You are the first here'), 'an owner made here is the workspace\'s owner');

  const reset = await admin(env, ['reset-password', 'root'], 'another long password\n');
  t.equal(reset.code, 0, reset.err);
  t.match(reset.out, /reset the password of root; every session of theirs has ended/);
  t.equal((await a.get('/api/me')).status, 401, 'the session the app had is gone');
  t.equal((await new Agent(app.url).login('root', 'a long enough password')).status, 401);
  t.equal((await new Agent(app.url).login('root', 'another long password')).status, 200);

  const last = await admin(env, ['set-role', 'root', 'member']);
  t.equal(last.code, 2);
  t.match(last.err, /root is the last owner/, 'the last owner cannot be demoted');

  t.match((await admin(env, ['list-users'])).out, /^root\towner\troot$/m);
  const invite = await admin(env, ['create-invite', '--uses', '2', '--role', 'guest']);
  const token = /\/signup\?invite=([\w-]+)/.exec(invite.out)?.[1];
  t.ok(token, invite.out.trim());
  const g = await new Agent(app.url).signup({ username: 'guest1', invite: token });
  t.equal(g.json<{ user: { role: string } }>().user.role, 'guest', 'the printed invitation works, with its role');
  t.match((await admin(env, ['set-registration', 'open'])).out, /registration is now open/);
  t.equal((await new Agent(app.url).signup({ username: 'walkin' })).status, 201);
  const disabled = await admin(env, ['disable-user', 'walkin']);
  t.match(disabled.out, /walkin is disabled/);
  t.equal((await new Agent(app.url).login('walkin')).status, 401, 'a disabled account cannot log in');

  const list = join(dataDir, 'rooms.txt');
  writeFileSync(list, '# rooms for the team\ngeneral, default\nrandom\n\nleadership, private\nRelease Notes, default\n');
  const first = await admin(env, ['create-rooms', list]);
  t.equal(first.code, 0, first.err);
  t.match(first.out, /channel general: created, a default room/);
  t.match(first.out, /group leadership: created/);
  const second = await admin(env, ['create-rooms', list]);
  t.equal(second.code, 0);
  t.same(second.out.trim().split('\n').map((l) => l.replace(/: .*/, '')), ['channel general', 'channel random', 'group leadership', 'channel Release Notes']);
  t.ok(second.out.trim().split('\n').every((l) => /exists, unchanged$/.test(l)), 'run twice: the same rooms, nothing new');
  const newcomer = new Agent(app.url);
  t.equal((await newcomer.signup({ username: 'newcomer' })).status, 201);
  t.same((await newcomer.get('/api/rooms')).json<{ rooms: Array<{ name: string }> }>().rooms.map((r) => r.name).sort(), ['Release Notes', 'general'], 'a new account is in the default channels');
  t.notOk((await newcomer.get('/api/channels')).json<{ channels: Array<{ name: string }> }>().channels.some((c) => c.name === 'leadership'), 'the private group is in no list');
  const bad = join(dataDir, 'bad.txt');
  writeFileSync(bad, 'ok room\nsecret, private, default\n');
  const refused = await admin(env, ['create-rooms', bad]);
  t.equal(refused.code, 2);
  t.match(refused.err, /line 2: a private group cannot be a default room/);
});

t.test('bad input: a clear message and a non-zero exit', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'chat-admin-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const env = { DATA_DIR: dataDir };
  const cases: Array<[string[], string, RegExp]> = [
    [[], '', /no command given/],
    [['frobnicate'], '', /unknown command frobnicate/],
    [['create-user', 'x y', '--role', 'member'], 'a long enough password', /USERNAME: may hold only/],
    [['create-user', 'newbie', '--role', 'king'], 'a long enough password', /--role: /],
    [['create-user', 'newbie', '--role', 'member'], 'short', /the password: must be at least 10 characters/],
    [['reset-password', 'nobody'], 'a long enough password', /there is no user nobody/],
    [['set-registration', 'sometimes'], '', /the registration mode/],
    [['create-user', 'newbie', '--bogus'], '', /Unknown option/],
  ];
  for (const [args, stdin, message] of cases) {
    const res = await admin(env, args, stdin);
    t.equal(res.code, 2, `admin ${args.join(' ')}: exit 2`);
    t.match(res.err, message);
  }
  const ok = await admin(env, ['create-user', 'newbie', '--role', 'member'], 'a long enough password');
  t.equal(ok.code, 0, 'with no app running it opens the embedded database itself');
  const dup = await admin(env, ['create-user', 'NEWBIE', '--role', 'member'], 'a long enough password');
  t.equal(dup.code, 1);
  t.match(dup.err, /that username is taken/);
});

t.test('on RETHINKDB_URL', { skip: process.env.RETHINKDB_URL ? false : 'RETHINKDB_URL is not set' }, async (t) => {
  const db = await startDb(t);
  const res = await admin({ RETHINKDB_URL: db.url }, ['create-user', 'remote', '--role', 'admin'], 'a long enough password');
  t.equal(res.code, 0, res.err);
  t.match((await admin({ RETHINKDB_URL: db.url }, ['list-users'])).out, /^remote\tadmin/m);
});
