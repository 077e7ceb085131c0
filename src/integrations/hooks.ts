// Webhooks and the bot accounts they post as. An incoming hook is a secret URL (only the
// secret's sha256 is stored) that posts into its room, or into another room it was allowed,
// as its bot. An outgoing hook calls a URL on a room's messages (on trigger words, or every
// one) and posts the answer as its bot; its signing secret and legacy token are not stored
// either: they are an HMAC of the workspace's hook secret and the hook's id, made again when
// needed and shown once at creation.
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { r } from 'rethinkdb-ts';
import { z } from 'zod';
import { hashToken } from '../accounts/service.js';
import type { AccountStore } from '../accounts/store.js';
import { username as usernameSchema, displayName as displayNameSchema, type User } from '../accounts/schema.js';
import type { Pool } from '../db/pool.js';
import { HOOKS } from '../db/schema.js';
import type { RoomStore } from '../rooms/store.js';

export const hookRow = z.object({
  id: z.string(),
  kind: z.enum(['incoming', 'outgoing']),
  name: z.string(),
  /** the room it posts into (incoming) or listens to (outgoing) */
  roomId: z.string(),
  /** incoming: the rooms a payload's `channel` may name (the hook's own room included) */
  rooms: z.array(z.string()).default([]),
  /** the bot account it posts as */
  botId: z.string(),
  createdBy: z.string(),
  createdAt: z.date(),
  revoked: z.boolean(),
  /** incoming: sha256 of the URL's secret */
  secretHash: z.string().optional(),
  /** incoming: its own rate (posts per minute), else the workspace's */
  perMinute: z.number().int().positive().optional(),
  /** outgoing: where it posts, and the words that start it (none: every message) */
  url: z.string().optional(),
  triggerWords: z.array(z.string()).optional(),
});
export type Hook = z.output<typeof hookRow>;

const words = z.array(z.string().trim().min(1).max(64).regex(/^\S+$/, 'a trigger word has no spaces')).max(20);
export const newIncoming = z.object({ kind: z.literal('incoming'), roomId: z.string().min(1).max(128), name: z.string().trim().min(1).max(64).default('Incoming webhook'), rooms: z.array(z.string().min(1).max(128)).max(50).default([]), perMinute: z.number().int().min(1).max(1_000_000).optional(), bot: usernameSchema.optional() });
export const newOutgoing = z.object({ kind: z.literal('outgoing'), roomId: z.string().min(1).max(128), name: z.string().trim().min(1).max(64).default('Outgoing webhook'), url: z.url().max(2000).regex(/^https?:\/\//i, 'must be an http(s) URL'), triggerWords: words.default([]), bot: usernameSchema.optional() });
export const newHook = z.discriminatedUnion('kind', [newIncoming, newOutgoing]);
export type NewHook = z.output<typeof newHook>;

export const newBot = z.object({ username: usernameSchema, displayName: displayNameSchema.optional() });

export class HookInputError extends Error {
  override name = 'HookInputError';
}

/** The bot that hooks post as when none is named. */
export const DEFAULT_BOT = 'webhook-bot';

export interface Hooks {
  create(input: NewHook, createdBy: string): Promise<{ hook: Hook; secret?: string; signingSecret?: string; token?: string }>;
  byId(id: string): Promise<Hook | undefined>;
  bySecret(secret: string): Promise<Hook | undefined>;
  list(): Promise<Hook[]>;
  /** the outgoing hooks of a room that are not revoked */
  outgoingOf(roomId: string): Promise<Hook[]>;
  revoke(id: string): Promise<boolean>;
  /** an outgoing hook's signing secret and legacy token */
  secretsOf(hook: Hook): Promise<{ signingSecret: string; token: string }>;
  /** Makes a bot account (or finds the bot of that name). */
  bot(username: string, displayName?: string): Promise<User>;
}

export function createHooks(opts: { pool: Pool; db: string; users: AccountStore; rooms: RoomStore }): Hooks {
  const { pool, db, users, rooms } = opts;
  const t = () => r.db(db).table(HOOKS);
  const parse = (raw: unknown[]) => raw.map((x) => hookRow.parse(x));

  async function bot(username: string, displayName?: string): Promise<User> {
    const found = await users.userByLogin(username);
    if (found) {
      if (!found.bot) throw new HookInputError(`${username} is a person's account, not a bot`);
      return found;
    }
    // A bot has no password: the stored hash is not one, so nothing logs in as it.
    return users.createUser({ username, displayName: displayName ?? username, email: `${username.toLowerCase()}@bots.invalid`, passwordHash: '!bot', role: 'member', bot: true });
  }

  async function secretsOf(hook: Hook) {
    const key = await users.secret('hooks');
    const derive = (what: string) => createHmac('sha256', key).update(`${what}:${hook.id}`).digest('base64url');
    return { signingSecret: derive('signing'), token: derive('token') };
  }

  return {
    bot,
    secretsOf,
    async create(input, createdBy) {
      const room = await rooms.room(input.roomId);
      if (!room || room.kind === 'dm' || room.archived) throw new HookInputError('no such room to hook up (a channel or a private group that is not archived)');
      const b = await bot(input.bot ?? DEFAULT_BOT, input.bot ? undefined : 'Webhook');
      const base = { id: randomUUID(), name: input.name, roomId: room.id, botId: b.id, createdBy, createdAt: new Date(), revoked: false };
      if (input.kind === 'incoming') {
        const others: string[] = [];
        for (const id of input.rooms) {
          const other = await rooms.room(id);
          if (!other || other.kind === 'dm' || other.archived) throw new HookInputError(`no such room ${id}`);
          others.push(other.id);
        }
        const allowed = [...new Set([room.id, ...others])];
        // The bot posts only where it is a member: the access module decides as for anyone.
        for (const id of allowed) await rooms.addMember(id, b.id);
        const secret = randomBytes(24).toString('base64url');
        const hook: Hook = { ...base, kind: 'incoming', rooms: allowed, secretHash: hashToken(secret), ...(input.perMinute ? { perMinute: input.perMinute } : {}) };
        await pool.run(t().insert(hook, { conflict: 'error' }));
        return { hook, secret };
      }
      await rooms.addMember(room.id, b.id);
      const hook: Hook = { ...base, kind: 'outgoing', rooms: [room.id], url: input.url, triggerWords: input.triggerWords };
      await pool.run(t().insert(hook, { conflict: 'error' }));
      return { hook, ...(await secretsOf(hook)) };
    },
    async byId(id) {
      const raw: unknown = await pool.run(t().get(id));
      return raw === null ? undefined : hookRow.parse(raw);
    },
    async bySecret(secret) {
      if (secret.length === 0 || secret.length > 200) return undefined;
      const raw: unknown[] = await pool.run(t().getAll(hashToken(secret), { index: 'secretHash' }));
      return parse(raw)[0];
    },
    async list() {
      const raw: unknown[] = await pool.run(t());
      return parse(raw).sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());
    },
    async outgoingOf(roomId) {
      const raw: unknown[] = await pool.run(t().getAll(roomId, { index: 'roomId' }));
      return parse(raw).filter((h) => h.kind === 'outgoing' && !h.revoked);
    },
    async revoke(id) {
      const res = z.object({ replaced: z.number(), unchanged: z.number() }).parse(await pool.run(t().get(id).update({ revoked: true })));
      return res.replaced + res.unchanged > 0;
    },
  };
}

/** The URL of an incoming hook. */
export const hookUrl = (base: string, secret: string) => `${base}/hooks/${secret}`;
