// What an account is, as stored and as input: one schema each, types derived from them.
import { z } from 'zod';
import { text } from '../chat/protocol.js';

export const ROLES = ['owner', 'admin', 'member', 'guest'] as const;
export type Role = (typeof ROLES)[number];

/** true when `role` has every right of `than` (the ladder: owner > admin > member > guest) */
export function atLeast(role: Role, than: Role): boolean {
  return ROLES.indexOf(role) <= ROLES.indexOf(than);
}

export const REGISTRATION_MODES = ['open', 'invite', 'closed'] as const;
export type RegistrationMode = (typeof REGISTRATION_MODES)[number];

export const userRow = z.object({
  id: z.string(),
  username: z.string(),
  displayName: z.string(),
  email: z.string(),
  role: z.enum(ROLES),
  passwordHash: z.string(),
  disabled: z.boolean(),
  createdAt: z.date(),
  /** a bot account (made by an admin): no password, acts through API tokens and webhooks */
  bot: z.boolean().optional(),
});
export type User = z.output<typeof userRow>;

export const sessionRow = z.object({
  /** sha256 of the token, hex: the token itself is never stored */
  id: z.string(),
  userId: z.string(),
  createdAt: z.date(),
  lastUsedAt: z.date(),
  expiresAt: z.date(),
  /** how it was opened: a password, or single sign-on (its log-out also ends the provider's) */
  via: z.enum(['password', 'oidc']).optional(),
});
export type Session = z.output<typeof sessionRow>;

export const DELETED_MESSAGES = ['tombstone', 'hide'] as const;


/** Days after which something is deleted, per kind of room (0: kept). */
export const retentionDays = z.object({ channel: z.number().int().min(0).max(36_500), group: z.number().int().min(0).max(36_500), dm: z.number().int().min(0).max(36_500) });
export type RetentionDays = z.output<typeof retentionDays>;
export const KEEP_FOREVER: RetentionDays = Object.freeze({ channel: 0, group: 0, dm: 0 });

export const settingsRow = z.object({
  id: z.literal('settings'),
  name: z.string(),
  registration: z.enum(REGISTRATION_MODES),
  /** authors may edit a message for this many minutes after sending it (0: always) */
  editWindowMinutes: z.number().int().min(0).max(525_600).default(0),
  /** a deleted message shows as "message deleted", or is hidden */
  deletedMessages: z.enum(DELETED_MESSAGES).default('tombstone'),
  /** a channel of more members is big: its members are told only of mentions unless they
   *  choose more, and only admins and its owner may name @room in it */
  bigRoomMembers: z.number().int().min(1).max(100_000).default(50),
  /** files older than this many days are deleted (their messages stay, without the file) */
  fileRetentionDays: retentionDays.default(KEEP_FOREVER),
  /** messages older than this many days are deleted, with their files */
  messageRetentionDays: retentionDays.default(KEEP_FOREVER),
  /** the most one user may have uploaded and still kept, in MiB (0: no limit) */
  fileQuotaMiB: z.number().int().min(0).max(100_000_000).default(0),
  /** outgoing webhooks may call private and loopback addresses (off: refused) */
  allowPrivateHookTargets: z.boolean().default(false),
  /** a room's owner may make webhooks for the room (otherwise only admins) */
  ownersMayCreateHooks: z.boolean().default(false),
});
export type Settings = z.output<typeof settingsRow>;

export const inviteRow = z.object({
  id: z.string(),
  createdBy: z.string(),
  createdAt: z.date(),
  expiresAt: z.date(),
  maxUses: z.number(),
  uses: z.number(),
  role: z.enum(['member', 'guest']),
  revoked: z.boolean(),
});
export type Invite = z.output<typeof inviteRow>;

// ---- input ----------------------------------------------------------------------------

const noControl = /^[^\p{Cc}]*$/u;

/** Usernames: what @mentions and URLs can hold. Compared in lower case. */
export const username = text()
  .trim()
  .min(2, 'must be at least 2 characters')
  .max(32, 'must be at most 32 characters')
  .regex(/^[a-zA-Z0-9][a-zA-Z0-9._-]*$/, 'may hold only letters, digits, dot, dash and underscore, and start with a letter or digit');

export const displayName = text().trim().min(1, 'must not be empty').max(64, 'must be at most 64 characters').regex(noControl, 'must not contain control characters');

export const email = text()
  .trim()
  .max(254, 'must be at most 254 characters')
  .pipe(z.email('must be an e-mail address'));

/** Long passphrases are welcome; argon2 takes any length, a limit keeps requests small. */
export const password = text().min(10, 'must be at least 10 characters').max(1024, 'must be at most 1024 characters');

export const registration = z.object({ username, displayName, email, password, invite: z.string().max(200).optional() });
export type Registration = z.output<typeof registration>;

export const login = z.object({ login: text().trim().min(1, 'must not be empty').max(254), password: text().max(1024) });

export const passwordChange = z.object({ current: text().max(1024), password });

export const normalUsername = (u: string) => u.trim().toLowerCase();
export const normalEmail = (e: string) => e.trim().toLowerCase();
