// People and the workspace under /api: the member list (guests see only those who share a
// room with them), and for admins: roles, disabling, password resets, workspace settings and
// invitation links. An admin cannot demote, disable or reset an owner; the last owner cannot
// be demoted or disabled.
import { randomBytes } from 'node:crypto';
import express from 'express';
import { z } from 'zod';
import { atLeast, retentionDays, DELETED_MESSAGES, displayName, password, REGISTRATION_MODES, ROLES, type Settings, type User } from '../accounts/schema.js';
import { hashToken, type Accounts } from '../accounts/service.js';
import type { AccountStore } from '../accounts/store.js';
import type { RoomStore } from '../rooms/store.js';
import { apiRoute, ApiError, invalid } from './api.js';
import { publicUser } from './auth.js';

const userPatch = z
  .object({ role: z.enum(ROLES), disabled: z.boolean(), displayName })
  .partial()
  .refine((p) => Object.keys(p).length > 0, 'name at least one of role, disabled, displayName');
const settingsPatch = z
  .object({ name: displayName, registration: z.enum(REGISTRATION_MODES), editWindowMinutes: z.number().int().min(0).max(525_600), deletedMessages: z.enum(DELETED_MESSAGES), bigRoomMembers: z.number().int().min(1).max(100_000), fileRetentionDays: retentionDays, messageRetentionDays: retentionDays, fileQuotaMiB: z.number().int().min(0).max(100_000_000), allowPrivateHookTargets: z.boolean(), ownersMayCreateHooks: z.boolean() })
  .partial();
const viewSettings = (s: Settings) => ({ name: s.name, registration: s.registration, editWindowMinutes: s.editWindowMinutes, deletedMessages: s.deletedMessages, bigRoomMembers: s.bigRoomMembers, fileRetentionDays: s.fileRetentionDays, messageRetentionDays: s.messageRetentionDays, fileQuotaMiB: s.fileQuotaMiB, allowPrivateHookTargets: s.allowPrivateHookTargets, ownersMayCreateHooks: s.ownersMayCreateHooks });
const newInvite = z.object({
  maxUses: z.number().int().min(1).max(10_000).default(1),
  days: z.number().min(0.01).max(365).default(7),
  role: z.enum(['member', 'guest']).default('member'),
});

export function peopleApi(opts: { accounts: Accounts; users: AccountStore; rooms: RoomStore }): express.Router {
  const { accounts, users, rooms } = opts;
  const router = express.Router();

  const route = apiRoute;

  async function lastOwner(u: User): Promise<boolean> {
    if (u.role !== 'owner') return false;
    return (await users.listUsers()).filter((x) => x.role === 'owner' && !x.disabled).length <= 1;
  }

  router.get('/api/users', route('user', async (_req, _res, me) => {
    const all = (await users.listUsers()).filter((u) => atLeast(me.role, 'admin') || !u.disabled);
    if (me.role !== 'guest') return { users: all.map((u) => ({ ...publicUser(u), ...(atLeast(me.role, 'admin') ? { disabled: u.disabled, email: u.email } : {}) })) };
    const known = new Set<string>([me.id]);
    for (const room of await rooms.roomsOf(me.id)) for (const m of await rooms.members(room.id)) known.add(m.userId);
    return { users: all.filter((u) => known.has(u.id)).map(publicUser) };
  }));

  router.patch('/api/users/:id', route('admin', async (req, _res, me) => {
    const target = await users.userById(String(req.params.id));
    if (!target) throw new ApiError(404, 'not_found', 'no such user');
    const parsed = userPatch.safeParse(req.body);
    if (!parsed.success) throw invalid(parsed.error);
    const p = parsed.data;
    if (target.role === 'owner' && me.role !== 'owner') throw new ApiError(403, 'forbidden', 'an admin cannot change an owner');
    if (p.role === 'owner' && me.role !== 'owner') throw new ApiError(403, 'forbidden', 'only an owner makes owners');
    if ((p.role !== undefined && p.role !== 'owner') || p.disabled) {
      if (await lastOwner(target)) throw new ApiError(409, 'last_owner', 'this is the last owner: make another owner first');
    }
    await users.updateUser(target.id, p);
    if (p.disabled) await users.deleteUserSessions(target.id);
    const after = await users.userById(target.id);
    return { user: after && { ...publicUser(after), disabled: after.disabled } };
  }));

  router.post('/api/users/:id/password', route('admin', async (req, _res, me) => {
    const target = await users.userById(String(req.params.id));
    if (!target) throw new ApiError(404, 'not_found', 'no such user');
    if (target.role === 'owner' && me.role !== 'owner') throw new ApiError(403, 'forbidden', "an admin cannot reset an owner's password");
    const parsed = z.object({ password }).safeParse(req.body);
    if (!parsed.success) throw invalid(parsed.error);
    await accounts.resetPassword(target.id, parsed.data.password);
    return undefined;
  }));

  router.get('/api/workspace', route('user', async () => {
    return { workspace: viewSettings(await users.settings()) };
  }));

  router.patch('/api/workspace', route('admin', async (req) => {
    const parsed = settingsPatch.safeParse(req.body);
    if (!parsed.success) throw invalid(parsed.error);
    return { workspace: viewSettings(await users.updateSettings(parsed.data)) };
  }));

  router.post('/api/invites', route('admin', async (req, res, me) => {
    const parsed = newInvite.safeParse(req.body ?? {});
    if (!parsed.success) throw invalid(parsed.error);
    const token = randomBytes(24).toString('base64url');
    const now = new Date();
    const id = hashToken(token);
    await users.createInvite({ id, createdBy: me.id, createdAt: now, expiresAt: new Date(now.getTime() + parsed.data.days * 86_400_000), maxUses: parsed.data.maxUses, uses: 0, role: parsed.data.role, revoked: false });
    res.status(201);
    // The link is shown once: only its hash is kept.
    return { invite: { id, path: `/signup?invite=${token}`, role: parsed.data.role, maxUses: parsed.data.maxUses, expiresAt: new Date(now.getTime() + parsed.data.days * 86_400_000).toISOString() } };
  }));

  router.delete('/api/invites/:id', route('admin', async (req) => {
    await users.revokeInvite(String(req.params.id));
    return undefined;
  }));

  return router;
}
