// The rooms API under /api: the sidebar, browsing channels, creating rooms and DMs, joining,
// leaving, members, renaming and archiving, deleting, history (paged by index cursor) and
// posting, editing, deleting and reacting to messages. Every route asks
// the access module; a room the viewer may not see is a 404, exactly as a room that does
// not exist. Bodies are parsed by the schemas in src/rooms/schema.ts.
import { randomUUID } from 'node:crypto';
import express from 'express';
import { z } from 'zod';
import { isRoomId, type Access, type Action, type Checked, type MessageAction, type Viewer } from '../chat/access.js';
import { messageBody, text, toWire } from '../chat/protocol.js';
import type { Message } from '../chat/message.js';
import type { AccountStore } from '../accounts/store.js';
import { IdConflictError, TooManyReactionsError, type MessageStore } from '../db/messages.js';
import { levelBody, newDm, newRoom, roomPatch, MAX_DM_PEOPLE, type Room } from '../rooms/schema.js';
import { PostRefused, type Posting } from '../chat/posting.js';
import { RoomNameTakenError, type RoomStore } from '../rooms/store.js';
import { ApiError, invalid } from './api.js';
import { endpoints, type ApiDoc } from './endpoints.js';
import { publicUser } from './auth.js';

export interface RoomsApiOptions {
  access: Access;
  rooms: RoomStore;
  users: AccountStore;
  messages: MessageStore;
  posting: Posting;
  historyLimit: number;
  doc: ApiDoc;
}

const postBody = z.object({ id: z.uuid('must be a UUID').optional(), body: messageBody, thread: z.string().min(1).max(128).optional(), alsoRoom: z.boolean().optional() });
const threadQuery = z.object({ limit: z.coerce.number().int().min(1).max(100).optional(), after: z.string().min(1).max(128).optional() });
const editBody = z.object({ body: messageBody });
/** an emoji (or a :short_code:): one short token, no spaces or control characters */
const emoji = text().min(1, 'must not be empty').max(32, 'must be at most 32 characters').regex(/^[^\s\p{Cc}]+$/u, 'must be one emoji or :code:, without spaces');
const reactionBody = z.object({ emoji });
const memberBody = z.object({ userId: z.string().min(1).max(64) });
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

  const define = endpoints(router, opts.doc);

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

  // The sidebar: every room the viewer is in.
  define({ method: 'get', path: '/api/rooms', tag: 'rooms', summary: 'The rooms you are in' }, async ({ me }) => {
    const mine = await rooms.roomsOf(me.id);
    return { rooms: mine.map((r) => viewRoom(r, true)) };
  });

  // Public channels to browse and join (not for guests).
  define({ method: 'get', path: '/api/channels', tag: 'rooms', summary: 'Public channels to browse and join (not for guests)' }, async ({ me }) => {
    if (!access.mayCreateRooms({ user: me })) throw err(403, 'forbidden', 'guests see only the rooms they were invited to');
    const mine = new Set((await rooms.roomsOf(me.id)).map((r) => r.id));
    const all = await rooms.byKind('channel');
    return { channels: all.sort((a, b) => a.name.localeCompare(b.name)).map((r) => viewRoom(r, mine.has(r.id))) };
  });

  define({ method: 'post', path: '/api/rooms', tag: 'rooms', summary: 'Create a channel or a private group', body: newRoom, status: 201 }, async ({ me, body }) => {
    if (!access.mayCreateRooms({ user: me })) throw err(403, 'forbidden', 'guests cannot create rooms');
    try {
      const room = await rooms.create({ ...body, ownerId: me.id });
      await rooms.addMember(room.id, me.id);
      return { room: viewRoom(room, true) };
    } catch (e) {
      if (e instanceof RoomNameTakenError) throw err(409, 'taken', e.message);
      throw e;
    }
  });

  // A DM with these people (the viewer included), opened or made.
  define({ method: 'post', path: '/api/dms', tag: 'rooms', summary: 'Open (or make) the DM with these people', body: newDm, status: 201 }, async ({ me, body }) => {
    const others = [...new Set(body.userIds.filter((id) => id !== me.id))];
    if (others.length === 0) throw err(400, 'invalid', 'userIds: name someone other than yourself');
    if (others.length + 1 > MAX_DM_PEOPLE) throw err(400, 'invalid', `a DM holds at most ${MAX_DM_PEOPLE} people`);
    for (const id of others) {
      const u = await users.userById(id);
      // A guest knows only the people who share a room with them: anyone else is not found.
      if (!u || u.disabled || (me.role === 'guest' && !(await rooms.share(me.id, id)))) throw err(404, 'not_found', 'no such user');
    }
    const room = await rooms.dm([me.id, ...others]);
    return { room: viewRoom(room, true) };
  });

  define({ method: 'get', path: '/api/rooms/:id', tag: 'rooms', summary: 'One room' }, async ({ me, param }) => {
    const c = await allowed({ user: me }, param('id'), 'see');
    return { room: viewRoom(c.room, c.isMember) };
  });

  define({ method: 'patch', path: '/api/rooms/:id', tag: 'rooms', summary: 'Rename, set the topic, archive, make announcement-only or default', body: roomPatch }, async ({ me, param, body }) => {
    const c = await allowed({ user: me }, param('id'), 'manage');
    if (body.isDefault && c.room.kind !== 'channel') throw err(400, 'invalid', 'only a public channel can be a default room');
    try {
      return { room: viewRoom(await rooms.update(c.room.id, body), c.isMember) };
    } catch (e) {
      if (e instanceof RoomNameTakenError) throw err(409, 'taken', e.message);
      throw e;
    }
  });

  define({ method: 'delete', path: '/api/rooms/:id', tag: 'rooms', summary: 'Delete a room and its history' }, async ({ me, param }) => {
    const c = await allowed({ user: me }, param('id'), 'delete');
    await rooms.delete(c.room.id);
    return undefined;
  });

  define({ method: 'post', path: '/api/rooms/:id/join', tag: 'rooms', summary: 'Join a public channel' }, async ({ me, param }) => {
    const c = await allowed({ user: me }, param('id'), 'join');
    if (await rooms.addMember(c.room.id, me.id)) await announce(c.room.id, me, `${me.displayName} joined`, { type: 'member_added', userId: me.id });
    return { room: viewRoom(c.room, true) };
  });

  define({ method: 'post', path: '/api/rooms/:id/leave', tag: 'rooms', summary: 'Leave a room' }, async ({ me, param }) => {
    const c = await allowed({ user: me }, param('id'), 'leave');
    if (await rooms.removeMember(c.room.id, me.id)) await announce(c.room.id, me, `${me.displayName} left`, { type: 'member_removed', userId: me.id });
    return undefined;
  });

  define({ method: 'get', path: '/api/rooms/:id/members', tag: 'rooms', summary: "A room's members" }, async ({ me, param }) => {
    const c = await allowed({ user: me }, param('id'), 'see');
    const members = await rooms.members(c.room.id);
    const people = await Promise.all(members.map((m) => users.userById(m.userId)));
    return { members: people.filter((u) => u !== undefined).map((u) => publicUser(u)) };
  });

  define({ method: 'post', path: '/api/rooms/:id/members', tag: 'rooms', summary: 'Add someone to a room', body: memberBody }, async ({ me, param, body }) => {
    const c = await allowed({ user: me }, param('id'), 'add_member');
    const u = await users.userById(body.userId);
    if (!u || u.disabled) throw err(404, 'not_found', 'no such user');
    if (await rooms.addMember(c.room.id, u.id)) await announce(c.room.id, me, `${me.displayName} added ${u.displayName}`, { type: 'member_added', userId: u.id });
    return undefined;
  });

  define({ method: 'delete', path: '/api/rooms/:id/members/:userId', tag: 'rooms', summary: 'Remove someone from a room (or leave it)' }, async ({ me, param }) => {
    const who = param('userId');
    const self = who === me.id;
    const c = await allowed({ user: me }, param('id'), self ? 'leave' : 'remove_member');
    if (!(await rooms.removeMember(c.room.id, who))) throw err(404, 'not_found', 'not a member');
    await announce(c.room.id, me, self ? `${me.displayName} left` : `${me.displayName} removed ${await nameOf(who)}`, { type: 'member_removed', userId: who });
    return undefined;
  });

  // History: the newest page, or a page before/after a message, or a message with context
  // (a permalink): index cursors on [room, sent, id], the same cost at any depth. `more`
  // says whether there is more in that direction (at the room's first message, there is not).
  define({ method: 'get', path: '/api/rooms/:id/messages', tag: 'messages', summary: "A page of a room's history", query: historyQuery, description: 'The newest page; or the page before or after a message (scrolling); or a message with context on both sides (a permalink). `more` says whether there is more in each direction.' }, async ({ me, param, query }) => {
    const c = await allowed({ user: me }, param('id'), 'read');
    const limit = query.limit ?? Math.min(opts.historyLimit, PAGE_MAX);
    const wire = (list: Message[]) => list.map((m) => toWire(m, 2));
    const anchorId = query.before ?? query.after ?? query.around;
    if (anchorId === undefined) {
      const list = await messages.latest(c.room.id, limit + 1);
      return { messages: wire(list.slice(-limit)), more: { older: list.length > limit, newer: false } };
    }
    const anchor = await messages.get(anchorId);
    if (!anchor || anchor.room !== c.room.id) throw err(404, 'not_found', 'no such message in this room');
    if (query.before !== undefined) {
      const list = await messages.page(c.room.id, anchor, 'older', limit + 1);
      return { messages: wire(list.slice(-limit)), more: { older: list.length > limit, newer: true } };
    }
    if (query.after !== undefined) {
      const list = await messages.page(c.room.id, anchor, 'newer', limit + 1);
      return { messages: wire(list.slice(0, limit)), more: { older: true, newer: list.length > limit } };
    }
    const half = Math.max(1, Math.floor(limit / 2));
    const [older, newer] = await Promise.all([messages.page(c.room.id, anchor, 'older', half + 1), messages.page(c.room.id, anchor, 'newer', half + 1)]);
    return { messages: wire([...older.slice(-half), anchor, ...newer.slice(0, half)]), more: { older: older.length > half, newer: newer.length > half } };
  });

  /** The message and the rule's answer for it; a refusal is thrown as the API's error. */
  async function messageAllowed(param: (name: string) => string, viewer: Viewer, action: MessageAction): Promise<{ room: Room; message: Message }> {
    const roomId = param('id');
    const message = await messages.get(param('messageId'));
    // Only an edit depends on a workspace setting (the edit window): no read for the others.
    const editWindowMs = action === 'edit' ? (await users.settings()).editWindowMinutes * 60_000 : 0;
    const facts = message && { id: message.id, room: message.room, authorId: 'id' in message.author ? message.author.id : undefined, sent: message.sent, deleted: message.deleted };
    const c = await access.checkMessage(viewer, roomId, facts, action, { editWindowMs });
    if (!c.ok) throw c.code === 'not_found' ? err(404, 'not_found', c.reason === 'no such message' ? 'no such message in this room' : 'no such room') : err(403, 'forbidden', c.reason);
    if (!message) throw err(404, 'not_found', 'no such message in this room');
    return { room: c.room, message };
  }
  const gone = () => err(404, 'not_found', 'no such message in this room');

  define({ method: 'patch', path: '/api/rooms/:id/messages/:messageId', tag: 'messages', summary: 'Edit a message', body: editBody }, async ({ me, param, body }) => {
    const { message } = await messageAllowed(param, { user: me }, 'edit');
    const edited = await messages.edit(message.id, body.body);
    if (!edited) throw gone();
    return { message: toWire(edited, 2) };
  });

  define({ method: 'delete', path: '/api/rooms/:id/messages/:messageId', tag: 'messages', summary: 'Delete a message (its text is gone)' }, async ({ me, param }) => {
    const { message } = await messageAllowed(param, { user: me }, 'delete');
    if (!(await messages.remove(message.id))) throw gone();
    return undefined;
  });

  define({ method: 'post', path: '/api/rooms/:id/messages/:messageId/reactions', tag: 'messages', summary: 'React to a message', body: reactionBody }, async ({ me, param, body }) => {
    const { message } = await messageAllowed(param, { user: me }, 'react');
    try {
      const m = await messages.react(message.id, me.id, body.emoji, true);
      if (!m) throw gone();
      return { message: toWire(m, 2) };
    } catch (e) {
      if (e instanceof TooManyReactionsError) throw err(409, 'too_many', e.message);
      throw e;
    }
  });

  define({ method: 'delete', path: '/api/rooms/:id/messages/:messageId/reactions/:emoji', tag: 'messages', summary: 'Take back a reaction' }, async ({ me, param }) => {
    const { message } = await messageAllowed(param, { user: me }, 'react');
    const parsed = reactionBody.safeParse({ emoji: param('emoji') });
    if (!parsed.success) throw invalid(parsed.error);
    const m = await messages.react(message.id, me.id, parsed.data.emoji, false);
    if (!m) throw gone();
    return { message: toWire(m, 2) };
  });

  define({ method: 'post', path: '/api/rooms/:id/messages', tag: 'messages', summary: 'Post a message (or a reply in a thread)', body: postBody, status: 201, description: 'With `id` (a UUID the client chose), a retry is answered 200 with the message already stored, never stored twice.' }, async ({ me, res, param, body }) => {
    const c = await allowed({ user: me }, param('id'), 'post');
    try {
      const { message, duplicate } = await opts.posting.post(me, c.room, { ...body, id: body.id ?? randomUUID() });
      if (duplicate) res.status(200);
      return { message: toWire(message, 2) };
    } catch (e) {
      if (e instanceof IdConflictError) throw err(409, 'id_conflict', 'that message id is taken; choose another');
      if (e instanceof PostRefused) throw e.code === 'not_found' ? err(404, 'not_found', e.message) : err(403, 'forbidden', e.message);
      throw e;
    }
  });

  // A thread: its first message and its replies in order, paged after a reply.
  define({ method: 'get', path: '/api/rooms/:id/messages/:messageId/thread', tag: 'messages', summary: "A thread: its first message and its replies, paged after a reply", query: threadQuery }, async ({ me, param, query }) => {
    const c = await allowed({ user: me }, param('id'), 'read');
    const start = await messages.get(param('messageId'));
    if (!start || start.room !== c.room.id || start.thread !== undefined) throw gone();
    const after = query.after === undefined ? undefined : await messages.get(query.after);
    if (query.after !== undefined && (!after || after.thread !== start.id)) throw err(404, 'not_found', 'no such reply in this thread');
    const limit = query.limit ?? 100;
    const list = await messages.replies(start.id, after, limit + 1);
    return { message: toWire(start, 2), replies: list.slice(0, limit).map((m) => toWire(m, 2)), more: list.length > limit };
  });

  // Following a thread: told of its replies (repliers and its author follow it already).
  for (const [method, on] of [['post', true], ['delete', false]] as const) {
    define({ method, path: '/api/rooms/:id/messages/:messageId/follow', tag: 'messages', summary: on ? 'Follow a thread (be told of its replies)' : 'Stop following a thread' }, async ({ me, param }) => {
      const { message } = await messageAllowed(param, { user: me }, 'react');
      if (message.thread !== undefined) throw err(400, 'invalid', 'follow the thread\'s first message');
      const m = await messages.follow(message.id, me.id, on);
      if (!m) throw gone();
      return { message: toWire(m, 2) };
    });
  }

  // What the viewer is told of in a room: all, mentions, none (muted); null for the default.
  define({ method: 'put', path: '/api/rooms/:id/level', tag: 'rooms', summary: 'What you are told of in a room: all, mentions, none (muted), or null for the default', body: levelBody }, async ({ me, param, body }) => {
    const c = await allowed({ user: me }, param('id'), 'read');
    if (!c.isMember) throw err(403, 'forbidden', 'you are not in this room');
    if (!(await rooms.setLevel(c.room.id, me.id, body.level))) throw err(403, 'forbidden', 'you are not in this room');
    return { level: body.level };
  });

  return router;
}
