// Every query on accounts, sessions, invitations and workspace settings. Uniqueness (usernames,
// e-mail addresses, the first owner) rests on primary keys inserted with conflict 'error', the
// only unique constraint RethinkDB has.
import { randomUUID } from 'node:crypto';
import { r, type RCursor, type RDatum } from 'rethinkdb-ts';
import { z } from 'zod';
import type { Pool } from '../db/pool.js';
import { CLAIMS, INVITES, SESSIONS, USERS, WORKSPACE } from '../db/schema.js';
import { KEEP_FOREVER, inviteRow, normalEmail, normalUsername, sessionRow, settingsRow, userRow, type Invite, type Role, type Session, type Settings, type User } from './schema.js';

export class TakenError extends Error {
  override name = 'TakenError';
  constructor(readonly field: 'username' | 'email') {
    super(`that ${field === 'email' ? 'e-mail address' : field} is taken`);
  }
}

const writeResult = z.object({ inserted: z.number().optional(), replaced: z.number().optional(), unchanged: z.number().optional(), errors: z.number(), first_error: z.string().optional() });

const DEFAULT_SETTINGS: Settings = { id: 'settings', name: 'Chatroom of Requirement', registration: 'invite', editWindowMinutes: 0, deletedMessages: 'tombstone', bigRoomMembers: 50, fileRetentionDays: KEEP_FOREVER, messageRetentionDays: KEEP_FOREVER, fileQuotaMiB: 0, allowPrivateHookTargets: false, ownersMayCreateHooks: false };

export interface NewUser {
  username: string;
  displayName: string;
  email: string;
  passwordHash: string;
  role: Role;
  bot?: boolean;
}

export interface AccountStore {
  /** Creates a user, claiming its username and e-mail first; throws TakenError. */
  createUser(u: NewUser): Promise<User>;
  userById(id: string): Promise<User | undefined>;
  /** by username or e-mail address */
  userByLogin(login: string): Promise<User | undefined>;
  updateUser(id: string, patch: Partial<Pick<User, 'role' | 'disabled' | 'passwordHash' | 'displayName'>>): Promise<void>;
  countUsers(): Promise<number>;
  /** every user, by username */
  listUsers(): Promise<User[]>;
  /** True for the one caller that makes `userId` the workspace's first owner. */
  claimFirstOwner(userId: string): Promise<boolean>;
  hasOwner(): Promise<boolean>;
  /** the account that became the workspace's first owner */
  firstOwner(): Promise<User | undefined>;
  settings(): Promise<Settings>;
  updateSettings(patch: Partial<Omit<Settings, 'id'>>): Promise<Settings>;
  /** A secret shared by every process (made once, then read). */
  secret(name: string): Promise<string>;

  createSession(s: Session): Promise<void>;
  session(id: string): Promise<Session | undefined>;
  touchSession(id: string, lastUsedAt: Date, expiresAt: Date): Promise<void>;
  deleteSession(id: string): Promise<void>;
  /** every session of a user, but `except` */
  deleteUserSessions(userId: string, except?: string): Promise<number>;
  /** Ids of sessions as they are deleted, on every process. */
  sessionDeletions(): Promise<{ close(): Promise<void>; [Symbol.asyncIterator](): AsyncIterator<string> }>;

  createInvite(i: Invite): Promise<void>;
  /** Takes one use of an invitation, if it is valid now; returns it. */
  useInvite(id: string, now: Date): Promise<Invite | undefined>;
  revokeInvite(id: string): Promise<void>;
}

export function createAccountStore(pool: Pool, db: string): AccountStore {
  const t = (name: string) => r.db(db).table(name);

  async function claim(key: string, userId: string): Promise<boolean> {
    const res = writeResult.parse(await pool.run(t(CLAIMS).insert({ id: key, userId }, { conflict: 'error' })));
    return res.inserted === 1;
  }
  const release = (key: string, userId: string) =>
    pool.run(t(CLAIMS).get(key).replace((c: RDatum) => r.branch(c('userId').eq(userId), null, c)));

  async function settings(): Promise<Settings> {
    const row: unknown = await pool.run(t(WORKSPACE).get('settings'));
    return row === null ? DEFAULT_SETTINGS : settingsRow.parse(row);
  }

  return {
    async createUser(u) {
      const id = randomUUID();
      const nameKey = `username:${normalUsername(u.username)}`;
      const emailKey = `email:${normalEmail(u.email)}`;
      if (!(await claim(nameKey, id))) throw new TakenError('username');
      if (!(await claim(emailKey, id))) {
        await release(nameKey, id);
        throw new TakenError('email');
      }
      const user: User = { id, ...u, username: u.username.trim(), email: normalEmail(u.email), disabled: false, createdAt: new Date() };
      await pool.run(t(USERS).insert(user, { conflict: 'error' }));
      return user;
    },

    async userById(id) {
      const row: unknown = await pool.run(t(USERS).get(id));
      return row === null ? undefined : userRow.parse(row);
    },

    async userByLogin(login) {
      const key = login.includes('@') ? `email:${normalEmail(login)}` : `username:${normalUsername(login)}`;
      const c: unknown = await pool.run(t(CLAIMS).get(key));
      if (c === null) return undefined;
      const { userId } = z.object({ userId: z.string() }).parse(c);
      const row: unknown = await pool.run(t(USERS).get(userId));
      return row === null ? undefined : userRow.parse(row);
    },

    async updateUser(id, patch) {
      await pool.run(t(USERS).get(id).update(patch));
    },

    async countUsers() {
      return Number(await pool.run(t(USERS).count()));
    },

    async listUsers() {
      const rows: unknown[] = await pool.run(t(USERS).orderBy('username'));
      return rows.map((u) => userRow.parse(u));
    },

    async claimFirstOwner(userId) {
      const res = writeResult.parse(await pool.run(t(WORKSPACE).insert({ id: 'owner', userId, at: r.now() }, { conflict: 'error' })));
      return res.inserted === 1;
    },

    async hasOwner() {
      return (await pool.run(t(WORKSPACE).get('owner'))) !== null;
    },

    async firstOwner() {
      const row: unknown = await pool.run(t(WORKSPACE).get('owner'));
      if (row === null) return undefined;
      const u: unknown = await pool.run(t(USERS).get(z.object({ userId: z.string() }).parse(row).userId));
      return u === null ? undefined : userRow.parse(u);
    },

    settings,

    async updateSettings(patch) {
      const next = { ...(await settings()), ...patch, id: 'settings' as const };
      await pool.run(t(WORKSPACE).insert(next, { conflict: 'update' }));
      return next;
    },

    async secret(name) {
      const id = `secret:${name}`;
      const made = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64url');
      await pool.run(t(WORKSPACE).insert({ id, value: made }, { conflict: 'error' }));
      const row: unknown = await pool.run(t(WORKSPACE).get(id));
      return z.object({ value: z.string() }).parse(row).value;
    },

    async createSession(s) {
      await pool.run(t(SESSIONS).insert(s, { conflict: 'error' }));
    },

    async session(id) {
      const row: unknown = await pool.run(t(SESSIONS).get(id));
      return row === null ? undefined : sessionRow.parse(row);
    },

    async touchSession(id, lastUsedAt, expiresAt) {
      await pool.run(t(SESSIONS).get(id).update({ lastUsedAt, expiresAt }));
    },

    async deleteSession(id) {
      await pool.run(t(SESSIONS).get(id).delete());
    },

    async deleteUserSessions(userId, except) {
      const q = t(SESSIONS).getAll(userId, { index: 'userId' });
      const res = z.object({ deleted: z.number() }).parse(await pool.run((except ? q.filter((s: RDatum) => s('id').ne(except)) : q).delete()));
      return res.deleted;
    },

    async sessionDeletions() {
      const cursor: RCursor = await pool.run(t(SESSIONS).changes({ squash: false }));
      const changes = z.object({ old_val: z.object({ id: z.string() }).nullish(), new_val: z.unknown() });
      return {
        close: () => cursor.close(),
        async *[Symbol.asyncIterator]() {
          for await (const raw of cursor as AsyncIterable<unknown>) {
            const ch = changes.parse(raw);
            if (ch.old_val && ch.new_val === null) yield ch.old_val.id;
          }
        },
      };
    },

    async createInvite(i) {
      await pool.run(t(INVITES).insert(i, { conflict: 'error' }));
    },

    async useInvite(id, now) {
      const res = z
        .object({ replaced: z.number(), changes: z.array(z.object({ new_val: inviteRow })).optional() })
        .parse(
          await pool.run(
            t(INVITES)
              .get(id)
              .update(
                (i: RDatum) => r.branch(i('revoked').not().and(i('expiresAt').gt(now)).and(i('uses').lt(i('maxUses'))), { uses: i('uses').add(1) }, {}),
                { returnChanges: true },
              ),
          ),
        );
      return res.replaced === 1 ? res.changes?.[0]?.new_val : undefined;
    },

    async revokeInvite(id) {
      await pool.run(t(INVITES).get(id).update({ revoked: true }));
    },
  };
}
