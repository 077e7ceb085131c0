// The rooms API under /api: the sidebar, browsing channels, creating rooms and DMs, joining,
// leaving, members, renaming and archiving, deleting, history (paged by index cursor) and
// posting, editing, deleting and reacting to messages. Every route asks
// the access module; a room the viewer may not see is a 404, exactly as a room that does
// not exist. Bodies are parsed by the schemas in src/rooms/schema.ts.
import { randomUUID } from 'node:crypto';
import express, { type Request, type Response } from 'express';
import { z } from 'zod';
import { isRoomId, type Access, type Action, type Checked, type MessageAction, type Viewer } from '../chat/access.js';
import { messageBody, text, toWire } from '../chat/protocol.js';
import type { Message } from '../chat/message.js';
import type { AccountStore } from '../accounts/store.js';
import { IdConflictError, TooManyReactionsError, type MessageStore } from '../db/messages.js';
import { levelBody, newDm, newRoom, roomPatch, MAX_DM_PEOPLE, type Room } from '../rooms/schema.js';
import { PostRefused, type Posting } from '../chat/posting.js';
import { RoomNameTakenError, type RoomStore } from '../rooms/store.js';
import { apiRoute, ApiError, invalid } from './api.js';
import { publicUser } from './auth.js';

export interface RoomsApiOptions {
  access: Access;
  rooms: RoomStore;
  users: AccountStore;
  messages: MessageStore;
  posting: Posting;
  historyLimit: number;
}

const postBody = z.object({ id: z.uuid('must be a UUID').optional(), body: messageBody, thread: z.string().min(1).max(128).optional(), alsoRoom: z.boolean().optional() });
const threadQuery = z.object({ limit: z.coerce.number().int().min(1).max(100).optional(), after: z.string().min(1).max(128).optional() });
const editBody = z.object({ body: messageBody });
/** an emoji (or a :short_code:): one short token, no spaces or control characters */
const emoji = text().min(1, 'must not be empty').max(32, 'must be at most 32 characters').regex(/^[^\s\p{Cc}]+$/u, 'must be one emoji or :code:, without spaces');
const reactionBody = z.object({ emoji });
const PAGE_MAX = 100;
const historyQuery = z.object({
  limit: z.coerce.number().int().min(1).max(PAGE_MAX).optional(),
  /** the page before this message (scrolling up) */
  before: z.string().min(1).max(128).optional(),
  /** the page after it */
  after: z.string().min(1).max(128).optional(),
  /** this message with context on both sides (a permalink) */
  around: z.string().min(1).max(128).optional(),
}).refine((q) => [q.before, q.after, q.around].filter((x) => x !== undefined).length <= 1, 'give at most one of before, after, around');

const err = (status: number, code: string, message: string) => new ApiError(status, code, message);

function viewRoom(room: Room, isMember: boolean) {
  return { id: room.id, kind: room.kind, name: room.name, topic: room.topic, ownerId: room.ownerId, archived: room.archived, announcement: room.announcement, isDefault: room.isDefault, isMember };
}

export function roomsApi(opts: RoomsApiOptions): express.Router {
  const { access, rooms, users, messages } = opts;
  const router = express.Router();

  /** An /api handler for a signed-in viewer (src/http/api.ts). */
  const route = (fn: (req: Request, res: Response, viewer: Viewer) => Promise<unknown>) => apiRoute('user', (req, res, me) => fn(req, res, { user: me }));

  /** A system message in the room: who came or went. A removal is written after the
   *  membership is gone, so every process's feed of the room carries it before any message
   *  posted later, and the removed user's sockets stop right there. */
  async function announce(roomId: string, actor: { id: string; displayName: string }, body: string, event: { type: 'member_added' | 'member_removed'; userId: string }): Promise<void> {
    await messages.insert({ id: randomUUID(), room: roomId, body, author: { id: actor.id, name: actor.displayName }, event });
  }
  const nameOf = async (id: string) => (await users.userById(id))?.displayName ?? 'someone';

  async function allowed(viewer: Viewer, roomId: string, action: Action): Promise<Extract<Checked, { ok: true }>> {
    // The article's open rooms are reached by name over the socket only.
    if (!isRoomId(roomId)) throw err(404, 'not_found', 'no such room');
    const c = await access.check(viewer, roomId, action);
    if (c.ok) return c;
    throw c.code === 'not_found' ? err(404, 'not_found', 'no such room') : err(403, 'forbidden', c.reason);
  }
  const param = (req: Request, name: string) => String(req.params[name] ?? '');

  // The sidebar: every room the viewer is in.
  router.get('/api/rooms', route(async (_req, _res, viewer) => {
    const mine = await rooms.roomsOf(viewer.user!.id);
    return { rooms: mine.map((r) => viewRoom(r, true)) };
  }));

  // Public channels to browse and join (not for guests).
  router.get('/api/channels', route(async (_req, _res, viewer) => {
    if (!access.mayCreateRooms(viewer)) throw err(403, 'forbidden', 'guests see only the rooms they were invited to');
    const mine = new Set((await rooms.roomsOf(viewer.user!.id)).map((r) => r.id));
    const all = await rooms.byKind('channel');
    return { channels: all.sort((a, b) => a.name.localeCompare(b.name)).map((r) => viewRoom(r, mine.has(r.id))) };
  }));

  router.post('/api/rooms', route(async (req, res, viewer) => {
    if (!access.mayCreateRooms(viewer)) throw err(403, 'forbidden', 'guests cannot create rooms');
    const parsed = newRoom.safeParse(req.body);
    if (!parsed.success) throw invalid(parsed.error);
    try {
      const room = await rooms.create({ ...parsed.data, ownerId: viewer.user!.id });
      await rooms.addMember(room.id, viewer.user!.id);
      res.status(201);
      return { room: viewRoom(room, true) };
    } catch (e) {
      if (e instanceof RoomNameTakenError) throw err(409, 'taken', e.message);
      throw e;
    }
  }));

  // A DM with these people (the viewer included), opened or made.
  router.post('/api/dms', route(async (req, res, viewer) => {
    const parsed = newDm.safeParse(req.body);
    if (!parsed.success) throw invalid(parsed.error);
    const me = viewer.user!;
    const others = [...new Set(parsed.data.userIds.filter((id) => id !== me.id))];
    if (others.length === 0) throw err(400, 'invalid', 'userIds: name someone other than yourself');
    if (others.length + 1 > MAX_DM_PEOPLE) throw err(400, 'invalid', `a DM holds at most ${MAX_DM_PEOPLE} people`);
    for (const id of others) {
      const u = await users.userById(id);
      // A guest knows only the people who share a room with them: anyone else is not found.
      if (!u || u.disabled || (me.role === 'guest' && !(await rooms.share(me.id, id)))) throw err(404, 'not_found', 'no such user');
    }
    const room = await rooms.dm([me.id, ...others]);
    res.status(201);
    return { room: viewRoom(room, true) };
  }));

  router.get('/api/rooms/:id', route(async (req, _res, viewer) => {
    const c = await allowed(viewer, param(req, 'id'), 'see');
    return { room: viewRoom(c.room, c.isMember) };
  }));

  router.patch('/api/rooms/:id', route(async (req, _res, viewer) => {
    const c = await allowed(viewer, param(req, 'id'), 'manage');
    const parsed = roomPatch.safeParse(req.body);
    if (!parsed.success) throw invalid(parsed.error);
    if (parsed.data.isDefault && c.room.kind !== 'channel') throw err(400, 'invalid', 'only a public channel can be a default room');
    try {
      return { room: viewRoom(await rooms.update(c.room.id, parsed.data), c.isMember) };
    } catch (e) {
      if (e instanceof RoomNameTakenError) throw err(409, 'taken', e.message);
      throw e;
    }
  }));

  router.delete('/api/rooms/:id', route(async (req, _res, viewer) => {
    const c = await allowed(viewer, param(req, 'id'), 'delete');
    await rooms.delete(c.room.id);
    return undefined;
  }));

  router.post('/api/rooms/:id/join', route(async (req, _res, viewer) => {
    const c = await allowed(viewer, param(req, 'id'), 'join');
    if (await rooms.addMember(c.room.id, viewer.user!.id)) await announce(c.room.id, viewer.user!, `${viewer.user!.displayName} joined`, { type: 'member_added', userId: viewer.user!.id });
    return { room: viewRoom(c.room, true) };
  }));

  router.post('/api/rooms/:id/leave', route(async (req, _res, viewer) => {
    const c = await allowed(viewer, param(req, 'id'), 'leave');
    if (await rooms.removeMember(c.room.id, viewer.user!.id)) await announce(c.room.id, viewer.user!, `${viewer.user!.displayName} left`, { type: 'member_removed', userId: viewer.user!.id });
    return undefined;
  }));

  router.get('/api/rooms/:id/members', route(async (req, _res, viewer) => {
    const c = await allowed(viewer, param(req, 'id'), 'see');
    const members = await rooms.members(c.room.id);
    const people = await Promise.all(members.map((m) => users.userById(m.userId)));
    return { members: people.filter((u) => u !== undefined).map((u) => publicUser(u)) };
  }));

  router.post('/api/rooms/:id/members', route(async (req, _res, viewer) => {
    const c = await allowed(viewer, param(req, 'id'), 'add_member');
    const parsed = z.object({ userId: z.string().min(1).max(64) }).safeParse(req.body);
    if (!parsed.success) throw invalid(parsed.error);
    const u = await users.userById(parsed.data.userId);
    if (!u || u.disabled) throw err(404, 'not_found', 'no such user');
    if (await rooms.addMember(c.room.id, u.id)) await announce(c.room.id, viewer.user!, `${viewer.user!.displayName} added ${u.displayName}`, { type: 'member_added', userId: u.id });
    return undefined;
  }));

  router.delete('/api/rooms/:id/members/:userId', route(async (req, _res, viewer) => {
    const self = param(req, 'userId') === viewer.user!.id;
    const who = param(req, 'userId');
    const c = await allowed(viewer, param(req, 'id'), self ? 'leave' : 'remove_member');
    if (!(await rooms.removeMember(c.room.id, who))) throw err(404, 'not_found', 'not a member');
    await announce(c.room.id, viewer.user!, self ? `${viewer.user!.displayName} left` : `${viewer.user!.displayName} removed ${await nameOf(who)}`, { type: 'member_removed', userId: who });
    return undefined;
  }));

  // History: the newest page, or a page before/after a message, or a message with context
  // (a permalink): index cursors on [room, sent, id], the same cost at any depth. `more`
  // says whether there is more in that direction (at the room's first message, there is not).
  router.get('/api/rooms/:id/messages', route(async (req, _res, viewer) => {
    const c = await allowed(viewer, param(req, 'id'), 'read');
    const q = historyQuery.safeParse(req.query);
    if (!q.success) throw invalid(q.error);
    const limit = q.data.limit ?? Math.min(opts.historyLimit, PAGE_MAX);
    const wire = (list: Message[]) => list.map((m) => toWire(m, 2));
    const anchorId = q.data.before ?? q.data.after ?? q.data.around;
    if (anchorId === undefined) {
      const list = await messages.latest(c.room.id, limit + 1);
      return { messages: wire(list.slice(-limit)), more: { older: list.length > limit, newer: false } };
    }
    const anchor = await messages.get(anchorId);
    if (!anchor || anchor.room !== c.room.id) throw err(404, 'not_found', 'no such message in this room');
    if (q.data.before !== undefined) {
      const list = await messages.page(c.room.id, anchor, 'older', limit + 1);
      return { messages: wire(list.slice(-limit)), more: { older: list.length > limit, newer: true } };
    }
    if (q.data.after !== undefined) {
      const list = await messages.page(c.room.id, anchor, 'newer', limit + 1);
      return { messages: wire(list.slice(0, limit)), more: { older: true, newer: list.length > limit } };
    }
    const half = Math.max(1, Math.floor(limit / 2));
    const [older, newer] = await Promise.all([messages.page(c.room.id, anchor, 'older', half + 1), messages.page(c.room.id, anchor, 'newer', half + 1)]);
    return { messages: wire([...older.slice(-half), anchor, ...newer.slice(0, half)]), more: { older: older.length > half, newer: newer.length > half } };
  }));

  /** The message and the rule's answer for it; a refusal is thrown as the API's error. */
  async function messageAllowed(req: Request, viewer: Viewer, action: MessageAction): Promise<{ room: Room; message: Message }> {
    const roomId = param(req, 'id');
    const message = await messages.get(param(req, 'messageId'));
    // Only an edit depends on a workspace setting (the edit window): no read for the others.
    const editWindowMs = action === 'edit' ? (await users.settings()).editWindowMinutes * 60_000 : 0;
    const facts = message && { id: message.id, room: message.room, authorId: 'id' in message.author ? message.author.id : undefined, sent: message.sent, deleted: message.deleted };
    const c = await access.checkMessage(viewer, roomId, facts, action, { editWindowMs });
    if (!c.ok) throw c.code === 'not_found' ? err(404, 'not_found', c.reason === 'no such message' ? 'no such message in this room' : 'no such room') : err(403, 'forbidden', c.reason);
    if (!message) throw err(404, 'not_found', 'no such message in this room');
    return { room: c.room, message };
  }
  const gone = () => err(404, 'not_found', 'no such message in this room');

  router.patch('/api/rooms/:id/messages/:messageId', route(async (req, _res, viewer) => {
    const { message } = await messageAllowed(req, viewer, 'edit');
    const parsed = editBody.safeParse(req.body);
    if (!parsed.success) throw invalid(parsed.error);
    const edited = await messages.edit(message.id, parsed.data.body);
    if (!edited) throw gone();
    return { message: toWire(edited, 2) };
  }));

  router.delete('/api/rooms/:id/messages/:messageId', route(async (req, _res, viewer) => {
    const { message } = await messageAllowed(req, viewer, 'delete');
    if (!(await messages.remove(message.id))) throw gone();
    return undefined;
  }));

  router.post('/api/rooms/:id/messages/:messageId/reactions', route(async (req, _res, viewer) => {
    const { message } = await messageAllowed(req, viewer, 'react');
    const parsed = reactionBody.safeParse(req.body);
    if (!parsed.success) throw invalid(parsed.error);
    try {
      const m = await messages.react(message.id, viewer.user!.id, parsed.data.emoji, true);
      if (!m) throw gone();
      return { message: toWire(m, 2) };
    } catch (e) {
      if (e instanceof TooManyReactionsError) throw err(409, 'too_many', e.message);
      throw e;
    }
  }));

  router.delete('/api/rooms/:id/messages/:messageId/reactions/:emoji', route(async (req, _res, viewer) => {
    const { message } = await messageAllowed(req, viewer, 'react');
    const parsed = reactionBody.safeParse({ emoji: param(req, 'emoji') });
    if (!parsed.success) throw invalid(parsed.error);
    const m = await messages.react(message.id, viewer.user!.id, parsed.data.emoji, false);
    if (!m) throw gone();
    return { message: toWire(m, 2) };
  }));

  router.post('/api/rooms/:id/messages', route(async (req, res, viewer) => {
    const c = await allowed(viewer, param(req, 'id'), 'post');
    const parsed = postBody.safeParse(req.body);
    if (!parsed.success) throw invalid(parsed.error);
    try {
      const { message, duplicate } = await opts.posting.post(viewer.user!, c.room, { ...parsed.data, id: parsed.data.id ?? randomUUID() });
      res.status(duplicate ? 200 : 201);
      return { message: toWire(message, 2) };
    } catch (e) {
      if (e instanceof IdConflictError) throw err(409, 'id_conflict', 'that message id is taken; choose another');
      if (e instanceof PostRefused) throw e.code === 'not_found' ? err(404, 'not_found', e.message) : err(403, 'forbidden', e.message);
      throw e;
    }
  }));

  // A thread: its first message and its replies in order, paged after a reply.
  router.get('/api/rooms/:id/messages/:messageId/thread', route(async (req, _res, viewer) => {
    const c = await allowed(viewer, param(req, 'id'), 'read');
    const q = threadQuery.safeParse(req.query);
    if (!q.success) throw invalid(q.error);
    const start = await messages.get(param(req, 'messageId'));
    if (!start || start.room !== c.room.id || start.thread !== undefined) throw gone();
    const after = q.data.after === undefined ? undefined : await messages.get(q.data.after);
    if (q.data.after !== undefined && (!after || after.thread !== start.id)) throw err(404, 'not_found', 'no such reply in this thread');
    const limit = q.data.limit ?? 100;
    const list = await messages.replies(start.id, after, limit + 1);
    return { message: toWire(start, 2), replies: list.slice(0, limit).map((m) => toWire(m, 2)), more: list.length > limit };
  }));

  // Following a thread: told of its replies (repliers and its author follow it already).
  for (const [method, on] of [['post', true], ['delete', false]] as const) {
    router[method]('/api/rooms/:id/messages/:messageId/follow', route(async (req, _res, viewer) => {
      const { message } = await messageAllowed(req, viewer, 'react');
      if (message.thread !== undefined) throw err(400, 'invalid', 'follow the thread\'s first message');
      const m = await messages.follow(message.id, viewer.user!.id, on);
      if (!m) throw gone();
      return { message: toWire(m, 2) };
    }));
  }

  // What the viewer is told of in a room: all, mentions, none (muted); null for the default.
  router.put('/api/rooms/:id/level', route(async (req, _res, viewer) => {
    const c = await allowed(viewer, param(req, 'id'), 'read');
    if (!c.isMember) throw err(403, 'forbidden', 'you are not in this room');
    const parsed = levelBody.safeParse(req.body);
    if (!parsed.success) throw invalid(parsed.error);
    if (!(await rooms.setLevel(c.room.id, viewer.user!.id, parsed.data.level))) throw err(403, 'forbidden', 'you are not in this room');
    return { level: parsed.data.level };
  }));

  return router;
}
