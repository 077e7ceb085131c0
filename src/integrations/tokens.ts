// Personal API tokens (people's and bots'): a random secret shown once, stored as its sha256
// (the row's id), with scopes, a last-used time and a revoked mark. A token stands for its
// user: whatever it does is asked of the access module as that user would be.
import { randomBytes } from 'node:crypto';
import { r } from 'rethinkdb-ts';
import { z } from 'zod';
import { hashToken } from '../accounts/service.js';
import type { AccountStore } from '../accounts/store.js';
import type { User } from '../accounts/schema.js';
import type { Pool } from '../db/pool.js';
import { TOKENS } from '../db/schema.js';

export const SCOPES = ['read', 'post', 'manage'] as const;
export type Scope = (typeof SCOPES)[number];

export const tokenRow = z.object({
  /** sha256 of the token, hex */
  id: z.string(),
  userId: z.string(),
  name: z.string(),
  scopes: z.array(z.enum(SCOPES)),
  createdAt: z.date(),
  lastUsedAt: z.date().nullable(),
  revoked: z.boolean(),
});
export type TokenRow = z.output<typeof tokenRow>;

/** The public handle of a token (never the secret, nor its whole hash). */
export const tokenHandle = (row: TokenRow) => row.id.slice(0, 16);

export const newToken = z.object({
  name: z.string().trim().min(1, 'must not be empty').max(64, 'must be at most 64 characters').regex(/^[^\p{Cc}]*$/u, 'must not contain control characters'),
  scopes: z.array(z.enum(SCOPES)).min(1, 'name at least one scope').max(3).transform((s) => [...new Set(s)]),
});

/** `read,post` (the command line's --scopes) */
export const scopesArg = z
  .string()
  .transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean))
  .pipe(newToken.shape.scopes);

/** A token is at most this long: a longer Authorization header is not looked up. */
const MAX_TOKEN_LENGTH = 200;
/** lastUsedAt is written at most this often per token (not on every request). */
const TOUCH_EVERY_MS = 60_000;

export interface Tokens {
  create(user: User, input: z.output<typeof newToken>): Promise<{ token: string; row: TokenRow }>;
  list(userId: string): Promise<TokenRow[]>;
  /** Revokes the user's token with this handle; false when there is none. */
  revoke(userId: string, handle: string): Promise<boolean>;
  /** The user and scopes of a bearer token, if it is valid now; notes its use. */
  resolve(token: string): Promise<{ user: User; scopes: Scope[]; row: TokenRow } | undefined>;
}

export function createTokens(opts: { pool: Pool; db: string; users: AccountStore; now?: () => number }): Tokens {
  const { pool, db, users } = opts;
  const now = opts.now ?? Date.now;
  const t = () => r.db(db).table(TOKENS);
  return {
    async create(user, input) {
      const token = `cor_${randomBytes(32).toString('base64url')}`;
      const row: TokenRow = { id: hashToken(token), userId: user.id, name: input.name, scopes: input.scopes, createdAt: new Date(now()), lastUsedAt: null, revoked: false };
      await pool.run(t().insert(row, { conflict: 'error' }));
      return { token, row };
    },
    async list(userId) {
      const rows: unknown[] = await pool.run(t().getAll(userId, { index: 'userId' }));
      return rows.map((x) => tokenRow.parse(x)).sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());
    },
    async revoke(userId, handle) {
      const mine = (await this.list(userId)).find((x) => tokenHandle(x) === handle);
      if (!mine) return false;
      await pool.run(t().get(mine.id).update({ revoked: true }));
      return true;
    },
    async resolve(token) {
      if (token.length === 0 || token.length > MAX_TOKEN_LENGTH) return undefined;
      const raw: unknown = await pool.run(t().get(hashToken(token)));
      if (raw === null) return undefined;
      const row = tokenRow.parse(raw);
      if (row.revoked) return undefined;
      const user = await users.userById(row.userId);
      if (!user || user.disabled) return undefined;
      const at = now();
      if (!row.lastUsedAt || at - row.lastUsedAt.getTime() > TOUCH_EVERY_MS) {
        row.lastUsedAt = new Date(at);
        await pool.run(t().get(row.id).update({ lastUsedAt: row.lastUsedAt }));
      }
      return { user, scopes: row.scopes, row };
    },
  };
}
