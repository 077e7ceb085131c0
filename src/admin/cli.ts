// `npm run admin -- COMMAND ...`: the operator's scripting tool (like Mattermost's mmctl). It
// works on the database the app uses (RETHINKDB_URL, or the embedded one in DATA_DIR: through
// the running app's port when the app runs, otherwise by opening it itself), prints what it
// did, and exits non-zero with a message on bad input. Passwords are read from standard input.
//
//   create-user USERNAME --role ROLE [--email E] [--display-name NAME]
//   reset-password USERNAME          the way back in when everything else is locked
//   set-role USERNAME ROLE
//   disable-user USERNAME / enable-user USERNAME
//   set-registration open|invite|closed
//   create-invite [--uses N] [--days D] [--role member|guest]
//   list-users
//   create-rooms FILE [--owner USERNAME]   one room a line: NAME[, private][, default]
//   create-bot USERNAME [--display-name NAME]
//   create-token USERNAME --scopes read,post[,manage] [--name NAME]   prints the token, once
//   create-webhook ROOM [--bot NAME] [--rate N] [--url URL [--trigger W1,W2]]   prints its URL (or
//                                    an outgoing hook's signing secret and token)
//   allow-private-hook-targets on|off
//   reindex-search                   search terms for messages stored before search existed
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { z } from 'zod';
import { ROLES, REGISTRATION_MODES, displayName as displayNameSchema, email as emailSchema, password as passwordSchema, username as usernameSchema } from '../accounts/schema.js';
import { AccountError, createAccounts, hashToken } from '../accounts/service.js';
import { createAccountStore } from '../accounts/store.js';
import { loadConfig } from '../config.js';
import { connectAny, openPool } from '../db/pool.js';
import { ensureSchema } from '../db/schema.js';
import { roomName as roomNameSchema } from '../rooms/schema.js';
import { createRoomStore, type RoomStore } from '../rooms/store.js';
import { appDatabase } from './database.js';
import { reindexSearch } from '../search/reindex.js';
import { createHooks, HookInputError, hookUrl, newHook } from '../integrations/hooks.js';
import { createTokens, newToken, scopesArg } from '../integrations/tokens.js';

class UsageError extends Error {}

const USAGE = `usage: npm run admin -- COMMAND
  create-user USERNAME --role owner|admin|member|guest [--email E] [--display-name NAME]   (password on stdin)
  reset-password USERNAME                                                                (password on stdin)
  set-role USERNAME ROLE
  disable-user USERNAME
  enable-user USERNAME
  set-registration open|invite|closed
  create-invite [--uses N] [--days D] [--role member|guest]
  list-users
  create-rooms FILE [--owner USERNAME]       one room a line: NAME[, private][, default]; run twice, same result
  create-bot USERNAME [--display-name NAME]
  create-token USERNAME --scopes read,post[,manage] [--name NAME]     prints the token (shown only now)
  create-webhook ROOM [--bot NAME] [--rate PER_MINUTE]                 an incoming hook: prints its URL
  create-webhook ROOM --url URL [--trigger W1,W2] [--bot NAME]         an outgoing hook: prints its secrets
  allow-private-hook-targets on|off          may outgoing hooks call private and loopback addresses
  reindex-search                             search terms for messages stored before search (run once after upgrading)`;

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write('password (then Enter, then Ctrl-D): ');
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

function check<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (!r.success) throw new UsageError(`${what}: ${r.error.issues.map((i) => i.message).join('; ')}`);
  return r.data;
}

async function main(argv: string[]): Promise<string> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      role: { type: 'string' },
      email: { type: 'string' },
      'display-name': { type: 'string' },
      uses: { type: 'string' },
      days: { type: 'string' },
      owner: { type: 'string' },
      scopes: { type: 'string' },
      name: { type: 'string' },
      bot: { type: 'string' },
      rate: { type: 'string' },
      url: { type: 'string' },
      trigger: { type: 'string' },
    },
  });
  const [command, ...args] = positionals;
  if (!command) throw new UsageError('no command given');
  const log = pino({ level: 'silent' });
  const target = await appDatabase(loadConfig(process.env));
  const pool = openPool(target.address, { log, perServer: 1 });
  try {
    await pool.waitHealthy(10_000);
    const conn = await connectAny(target.address, log);
    try {
      await ensureSchema(conn, target.db, { log, staleMs: 60_000 });
    } finally {
      await conn.close();
    }
    const store = createAccountStore(pool, target.db);
    const accounts = createAccounts({ store, log, sessionDays: 30 });
    const userNamed = async (name: string | undefined) => {
      const u = await store.userByLogin(check(usernameSchema, name, 'USERNAME'));
      if (!u) throw new UsageError(`there is no user ${name}`);
      return u;
    };

    switch (command) {
      case 'create-user': {
        const name = check(usernameSchema, args[0], 'USERNAME');
        const role = check(z.enum(ROLES), values.role, '--role');
        const password = check(passwordSchema, await readStdin(), 'the password');
        const mail = check(emailSchema, values.email ?? `${name.toLowerCase()}@localhost.invalid`, '--email');
        const display = check(displayNameSchema, values['display-name'] ?? name, '--display-name');
        const user = await accounts.createUser({ username: name, displayName: display, email: mail, password }, role);
        // An owner made here counts as the workspace's owner, so sign-up is no longer "first".
        if (role === 'owner') await store.claimFirstOwner(user.id);
        return `created user ${user.username} (${user.role}, id ${user.id})`;
      }
      case 'reset-password': {
        const user = await userNamed(args[0]);
        const password = check(passwordSchema, await readStdin(), 'the password');
        await accounts.resetPassword(user.id, password);
        return `reset the password of ${user.username}; every session of theirs has ended`;
      }
      case 'set-role': {
        const user = await userNamed(args[0]);
        const role = check(z.enum(ROLES), args[1], 'ROLE');
        if (user.role === 'owner' && role !== 'owner') {
          const owners = (await store.listUsers()).filter((u) => u.role === 'owner' && !u.disabled);
          if (owners.length <= 1) throw new UsageError(`${user.username} is the last owner: make another owner first`);
        }
        await store.updateUser(user.id, { role });
        return `${user.username} is now ${role} (was ${user.role})`;
      }
      case 'disable-user':
      case 'enable-user': {
        const user = await userNamed(args[0]);
        const disabled = command === 'disable-user';
        await store.updateUser(user.id, { disabled });
        if (disabled) await store.deleteUserSessions(user.id);
        return `${user.username} is ${disabled ? 'disabled; every session of theirs has ended' : 'enabled'}`;
      }
      case 'set-registration': {
        const mode = check(z.enum(REGISTRATION_MODES), args[0], 'the registration mode');
        await store.updateSettings({ registration: mode });
        return `registration is now ${mode}`;
      }
      case 'create-invite': {
        const uses = check(z.coerce.number().int().min(1).max(10_000), values.uses ?? '1', '--uses');
        const days = check(z.coerce.number().min(0.01).max(365), values.days ?? '7', '--days');
        const role = check(z.enum(['member', 'guest']), values.role ?? 'member', '--role');
        const token = randomBytes(24).toString('base64url');
        const now = new Date();
        await store.createInvite({ id: hashToken(token), createdBy: 'admin-cli', createdAt: now, expiresAt: new Date(now.getTime() + days * 86_400_000), maxUses: uses, uses: 0, role, revoked: false });
        return `invitation (${role}, ${uses} use${uses === 1 ? '' : 's'}, ${days} days): /signup?invite=${token}`;
      }
      case 'create-rooms': {
        if (!args[0]) throw new UsageError('create-rooms needs a FILE');
        let textIn: string;
        try {
          textIn = readFileSync(args[0], 'utf8');
        } catch (e) {
          throw new UsageError(`cannot read ${args[0]}: ${(e as Error).message}`);
        }
        const specs = parseRoomList(textIn);
        const owner = values.owner ? await userNamed(values.owner) : await store.firstOwner();
        if (!owner) throw new UsageError('there is no owner yet: name one with --owner USERNAME');
        const rooms = createRoomStore(pool, target.db);
        const lines: string[] = [];
        for (const spec of specs) lines.push(await ensureRoom(rooms, spec, owner.id));
        return lines.join('\n') || '(no rooms in the file)';
      }
      case 'create-bot': {
        const name = check(usernameSchema, args[0], 'USERNAME');
        if (await store.userByLogin(name)) throw new UsageError(`the username ${name} is taken`);
        const bot = await createHooks({ pool, db: target.db, users: store, rooms: createRoomStore(pool, target.db) }).bot(name, values['display-name'] ? check(displayNameSchema, values['display-name'], '--display-name') : undefined);
        return `created bot ${bot.username} (id ${bot.id})`;
      }
      case 'create-token': {
        const user = await userNamed(args[0]);
        const scopes = check(scopesArg, values.scopes ?? '', '--scopes (read, post, manage, comma-separated)');
        const input = check(newToken, { name: values.name ?? 'admin-cli', scopes }, '--name');
        const { token } = await createTokens({ pool, db: target.db, users: store }).create(user, input);
        return token;
      }
      case 'create-webhook': {
        if (!args[0]) throw new UsageError('create-webhook needs a ROOM (its id, or a channel\'s name)');
        const rooms = createRoomStore(pool, target.db);
        const want = args[0].replace(/^#/, '');
        const room = (await rooms.room(want)) ?? (await rooms.byKind('channel')).find((x) => x.name.toLowerCase() === want.toLowerCase());
        if (!room) throw new UsageError(`there is no room ${args[0]}`);
        const hooks = createHooks({ pool, db: target.db, users: store, rooms });
        const input = values.url
          ? check(newHook, { kind: 'outgoing', roomId: room.id, url: values.url, triggerWords: values.trigger ? values.trigger.split(',').map((w) => w.trim()).filter(Boolean) : [], ...(values.bot ? { bot: values.bot } : {}), ...(values.name ? { name: values.name } : {}) }, 'the webhook')
          : check(newHook, { kind: 'incoming', roomId: room.id, ...(values.rate ? { perMinute: Number(values.rate) } : {}), ...(values.bot ? { bot: values.bot } : {}), ...(values.name ? { name: values.name } : {}) }, 'the webhook');
        let made;
        try {
          made = await hooks.create(input, 'admin-cli');
        } catch (e) {
          if (e instanceof HookInputError) throw new UsageError(e.message);
          throw e;
        }
        const config = loadConfig(process.env);
        if (made.secret) return hookUrl(config.hooks.publicUrl ?? `http://localhost:${config.port}`, made.secret);
        return `outgoing webhook ${made.hook.id} on ${room.name}\nsigning secret: ${made.signingSecret}\ntoken: ${made.token}`;
      }
      case 'allow-private-hook-targets': {
        const on = check(z.enum(['on', 'off']), args[0], 'on or off');
        await store.updateSettings({ allowPrivateHookTargets: on === 'on' });
        return `outgoing webhooks ${on === 'on' ? 'may' : 'may not'} call private and loopback addresses`;
      }
      case 'reindex-search': {
        const done = await reindexSearch(pool, target.db, (n) => process.stderr.write(`${n} messages looked at\n`));
        return `gave search terms to ${done.indexed} of ${done.seen} messages (the others had them, or are deleted or system messages)`;
      }
      case 'list-users': {
        const users = await store.listUsers();
        return users.map((u) => `${u.username}\t${u.role}${u.disabled ? '\tdisabled' : ''}\t${u.displayName}`).join('\n') || '(no users)';
      }
      default:
        throw new UsageError(`unknown command ${command}`);
    }
  } finally {
    await pool.close();
    await target.close();
  }
}

interface RoomSpec {
  line: number;
  name: string;
  private: boolean;
  isDefault: boolean;
}

/** `NAME[, private][, default]` a line; blank lines and lines starting with # are skipped. */
function parseRoomList(input: string): RoomSpec[] {
  const out: RoomSpec[] = [];
  const seen = new Set<string>();
  input.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const [nameRaw, ...flags] = line.split(',').map((p) => p.trim());
    const name = check(roomNameSchema, nameRaw, `line ${i + 1}: the name`);
    const known = new Set(['private', 'default']);
    for (const f of flags) if (!known.has(f.toLowerCase())) throw new UsageError(`line ${i + 1}: unknown flag "${f}" (use private, default)`);
    const spec = { line: i + 1, name, private: flags.some((f) => f.toLowerCase() === 'private'), isDefault: flags.some((f) => f.toLowerCase() === 'default') };
    if (spec.private && spec.isDefault) throw new UsageError(`line ${i + 1}: a private group cannot be a default room`);
    const key = `${spec.private ? 'group' : 'channel'}:${name.toLowerCase()}`;
    if (seen.has(key)) throw new UsageError(`line ${i + 1}: ${name} is listed twice`);
    seen.add(key);
    out.push(spec);
  });
  return out;
}

/** Makes the room unless it exists (a channel by its name; a group by the name this tool gave it). */
async function ensureRoom(rooms: RoomStore, spec: RoomSpec, ownerId: string): Promise<string> {
  const kind = spec.private ? 'group' : 'channel';
  const existing = (await rooms.byKind(kind)).find((r) => r.name.toLowerCase() === spec.name.toLowerCase() && (kind === 'channel' || r.ownerId === ownerId));
  if (existing) {
    if (existing.isDefault !== spec.isDefault) {
      await rooms.update(existing.id, { isDefault: spec.isDefault });
      return `${kind} ${spec.name}: exists; now ${spec.isDefault ? 'a default room' : 'not a default room'}`;
    }
    return `${kind} ${spec.name}: exists, unchanged`;
  }
  const room = await rooms.create({ kind, name: spec.name, topic: '', ownerId });
  await rooms.addMember(room.id, ownerId);
  if (spec.isDefault) await rooms.update(room.id, { isDefault: true });
  return `${kind} ${spec.name}: created${spec.isDefault ? ', a default room' : ''} (id ${room.id})`;
}

main(process.argv.slice(2)).then(
  (out) => {
    process.stdout.write(`${out}\n`);
    process.exit(0);
  },
  (e: unknown) => {
    if (e instanceof UsageError || (e instanceof Error && e.name === 'TypeError' && 'code' in e && String(e.code).startsWith('ERR_PARSE_ARGS'))) {
      process.stderr.write(`admin: ${e.message}\n${USAGE}\n`);
      process.exit(2);
    }
    if (e instanceof AccountError) {
      process.stderr.write(`admin: ${e.message}\n`);
      process.exit(1);
    }
    process.stderr.write(`admin: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
