// People and the workspace under /api: the member list (guests see only those who share a
// room with them), and for admins: roles, disabling, password resets, workspace settings and
// invitation links. An admin cannot demote, disable or reset an owner; the last owner cannot
// be demoted or disabled.
import { randomBytes } from 'node:crypto';
import express from 'express';
import { z } from 'zod';
import { atLeast, retentionDays, username, DELETED_MESSAGES, displayName, password, REGISTRATION_MODES, ROLES, type Settings, type User } from '../accounts/schema.js';
import { hashToken, type Accounts } from '../accounts/service.js';
import type { AccountStore } from '../accounts/store.js';
import type { RoomStore } from '../rooms/store.js';
import { ApiError } from './api.js';
import { endpoints, type ApiDoc } from './endpoints.js';
import { publicUser } from './auth.js';

const userPatch = z
  .object({ role: z.enum(ROLES), disabled: z.boolean(), displayName })
  .partial()
  .refine((p) => Object.keys(p).length > 0, 'name at least one of role, disabled, displayName');
const settingsPatch = z
  .object({ name: displayName, registration: z.enum(REGISTRATION_MODES), editWindowMinutes: z.number().int().min(0).max(525_600), deletedMessages: z.enum(DELETED_MESSAGES), bigRoomMembers: z.number().int().min(1).max(100_000), fileRetentionDays: retentionDays, messageRetentionDays: retentionDays, fileQuotaMiB: z.number().int().min(0).max(100_000_000), allowPrivateHookTargets: z.boolean(), ownersMayCreateHooks: z.boolean() })
  .partial();
const viewSettings = (s: Settings) => ({ name: s.name, registration: s.registration, editWindowMinutes: s.editWindowMinutes, deletedMessages: s.deletedMessages, bigRoomMembers: s.bigRoomMembers, fileRetentionDays: s.fileRetentionDays, messageRetentionDays: s.messageRetentionDays, fileQuotaMiB: s.fileQuotaMiB, allowPrivateHookTargets: s.allowPrivateHookTargets, ownersMayCreateHooks: s.ownersMayCreateHooks });
const passwordBody = z.object({ password });
const lookupQuery = z
  .object({ id: z.string().min(1).max(64).optional(), username: username.optional() })
  .refine((q) => (q.id === undefined) !== (q.username === undefined), 'give one of id, username');
const newInvite = z.object({
  maxUses: z.number().int().min(1).max(10_000).default(1),
  days: z.number().min(0.01).max(365).default(7),
  role: z.enum(['member', 'guest']).default('member'),
});

export function peopleApi(opts: { accounts: Accounts; users: AccountStore; rooms: RoomStore; doc: ApiDoc }): express.Router {
  const { accounts, users, rooms } = opts;
  const router = express.Router();

  const define = endpoints(router, opts.doc);

  async function lastOwner(u: User): Promise<boolean> {
    if (u.role !== 'owner') return false;
    return (await users.listUsers()).filter((x) => x.role === 'owner' && !x.disabled).length <= 1;
  }

  /** What `me` may know of `u`: admins see e-mail and whether disabled. */
  const view = (me: User, u: User) => ({ ...publicUser(u), ...(atLeast(me.role, 'admin') ? { disabled: u.disabled, email: u.email } : {}) });
  /** The people a guest may know of: themselves and whoever shares a room with them. */
  async function knownTo(me: User): Promise<Set<string>> {
    const known = new Set<string>([me.id]);
    for (const room of await rooms.roomsOf(me.id)) for (const m of await rooms.members(room.id)) known.add(m.userId);
    return known;
  }

  define({ method: 'get', path: '/api/users', tag: 'users', summary: 'The people of the workspace (for a guest: those who share a room with them)' }, async ({ me }) => {
    const all = (await users.listUsers()).filter((u) => atLeast(me.role, 'admin') || !u.disabled);
    if (me.role !== 'guest') return { users: all.map((u) => view(me, u)) };
    const known = await knownTo(me);
    return { users: all.filter((u) => known.has(u.id)).map(publicUser) };
  });

  define({ method: 'get', path: '/api/users/lookup', tag: 'users', summary: 'One person, by id or by username', query: lookupQuery }, async ({ me, query }) => {
    const u = query.id !== undefined ? await users.userById(query.id) : await users.userByLogin(query.username!);
    // Someone a guest may not know of, or disabled (to all but admins), is not found.
    if (!u || (u.disabled && !atLeast(me.role, 'admin')) || (me.role === 'guest' && !(await knownTo(me)).has(u.id))) throw new ApiError(404, 'not_found', 'no such user');
    return { user: view(me, u) };
  });

  define({ method: 'patch', path: '/api/users/:id', tag: 'users', summary: "Change someone's role, name, or disable them", needs: 'admin', body: userPatch }, async ({ me, param, body: p }) => {
    const target = await users.userById(param('id'));
    if (!target) throw new ApiError(404, 'not_found', 'no such user');
    if (target.role === 'owner' && me.role !== 'owner') throw new ApiError(403, 'forbidden', 'an admin cannot change an owner');
    if (p.role === 'owner' && me.role !== 'owner') throw new ApiError(403, 'forbidden', 'only an owner makes owners');
    if ((p.role !== undefined && p.role !== 'owner') || p.disabled) {
      if (await lastOwner(target)) throw new ApiError(409, 'last_owner', 'this is the last owner: make another owner first');
    }
    await users.updateUser(target.id, p);
    if (p.disabled) await users.deleteUserSessions(target.id);
    const after = await users.userById(target.id);
    return { user: after && { ...publicUser(after), disabled: after.disabled } };
  });

  define({ method: 'post', path: '/api/users/:id/password', tag: 'users', summary: "Reset someone's password", needs: 'admin', body: passwordBody }, async ({ me, param, body }) => {
    const target = await users.userById(param('id'));
    if (!target) throw new ApiError(404, 'not_found', 'no such user');
    if (target.role === 'owner' && me.role !== 'owner') throw new ApiError(403, 'forbidden', "an admin cannot reset an owner's password");
    await accounts.resetPassword(target.id, body.password);
    return undefined;
  });

  define({ method: 'get', path: '/api/workspace', tag: 'workspace', summary: "The workspace's settings" }, async () => {
    return { workspace: viewSettings(await users.settings()) };
  });

  define({ method: 'patch', path: '/api/workspace', tag: 'workspace', summary: "Change the workspace's settings", needs: 'admin', body: settingsPatch }, async ({ body }) => {
    return { workspace: viewSettings(await users.updateSettings(body)) };
  });

  define({ method: 'post', path: '/api/invites', tag: 'workspace', summary: 'Make an invitation link (shown once)', needs: 'admin', body: newInvite, status: 201 }, async ({ me, body }) => {
    const token = randomBytes(24).toString('base64url');
    const now = new Date();
    const id = hashToken(token);
    await users.createInvite({ id, createdBy: me.id, createdAt: now, expiresAt: new Date(now.getTime() + body.days * 86_400_000), maxUses: body.maxUses, uses: 0, role: body.role, revoked: false });
    // The link is shown once: only its hash is kept.
    return { invite: { id, path: `/signup?invite=${token}`, role: body.role, maxUses: body.maxUses, expiresAt: new Date(now.getTime() + body.days * 86_400_000).toISOString() } };
  });

  define({ method: 'delete', path: '/api/invites/:id', tag: 'workspace', summary: 'Revoke an invitation link', needs: 'admin' }, async ({ param }) => {
    await users.revokeInvite(param('id'));
    return undefined;
  });

  return router;
}
