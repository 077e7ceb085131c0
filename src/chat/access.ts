// The one place that decides what a viewer may do with a room. Every socket frame and every
// HTTP route asks here; none decides for itself. `decide` is the rule, a pure function of
// who asks, the room and their membership, tested case by case; `createAccess` fetches those
// from the database and asks it. A room the viewer may not see answers exactly like a room
// that does not exist (not_found), so names and ids cannot be probed.
import { atLeast, type User } from '../accounts/schema.js';
import type { Room } from '../rooms/schema.js';
import type { RoomStore } from '../rooms/store.js';

/** Who is asking: a signed-in user (from the session), or nobody. */
export interface Viewer {
  user?: User;
}

export const ANONYMOUS: Viewer = Object.freeze({});

export const ACTIONS = ['see', 'read', 'post', 'join', 'leave', 'manage', 'delete', 'add_member', 'remove_member'] as const;
export type Action = (typeof ACTIONS)[number];

export type Decision = { ok: true } | { ok: false; code: 'not_found' | 'forbidden'; reason: string };

const ALLOW: Decision = Object.freeze({ ok: true });
const NOT_FOUND: Decision = Object.freeze({ ok: false, code: 'not_found', reason: 'no such room' });
const no = (reason: string): Decision => ({ ok: false, code: 'forbidden', reason });

export interface AccessRules {
  /** ANONYMOUS_ROOMS: the article's open rooms exist */
  anonymousRooms: boolean;
}

/** The rule. `room` undefined: no such room. */
export function decide(viewer: Viewer, room: Room | undefined, isMember: boolean, action: Action, rules: AccessRules): Decision {
  if (!room) return NOT_FOUND;
  if (room.kind === 'open') {
    if (!rules.anonymousRooms) return NOT_FOUND;
    if (action === 'see' || action === 'read' || action === 'join' || action === 'leave' || action === 'post') return ALLOW;
    return no('an open room has no owner to manage it');
  }
  const user = viewer.user;
  if (!user || user.disabled) return NOT_FOUND;
  const admin = atLeast(user.role, 'admin');
  const guest = user.role === 'guest';
  const roomOwner = room.ownerId === user.id;

  // Who may see the room at all: members; for a public channel, every member of the
  // workspace but guests. Private groups and DMs are invisible to everyone else, admins too.
  const visible = isMember || (room.kind === 'channel' && !guest);
  if (!visible) return NOT_FOUND;

  switch (action) {
    case 'see':
    case 'read':
      return ALLOW;
    case 'post':
      if (!isMember) return no(room.kind === 'channel' ? 'join the channel first' : 'you are not in this room');
      if (room.archived) return no('the room is archived: read-only');
      if (room.announcement && !(admin || roomOwner)) return no("only admins and the room's owner post here");
      return ALLOW;
    case 'join':
      if (isMember) return ALLOW;
      if (room.kind !== 'channel') return NOT_FOUND;
      if (room.archived) return no('the room is archived');
      return ALLOW;
    case 'leave':
      if (!isMember) return no('you are not in this room');
      if (room.kind === 'dm') return no('a direct message cannot be left');
      return ALLOW;
    case 'manage':
    case 'delete':
    case 'add_member':
    case 'remove_member':
      if (room.kind === 'dm') return no('a direct message has no owner to manage it');
      // For a private group (seen only by its members), its owner or a workspace admin who
      // is in it; for a channel, its owner or any workspace admin.
      if (roomOwner || admin) return ALLOW;
      return no(action === 'add_member' || action === 'remove_member' ? "only the room's owner or an admin adds and removes people" : "only the room's owner or an admin may do that");
  }
}

export const MESSAGE_ACTIONS = ['edit', 'delete', 'react'] as const;
export type MessageAction = (typeof MESSAGE_ACTIONS)[number];

/** What the rule needs of a message. */
export interface MessageFacts {
  room: string;
  authorId?: string;
  sent: Date;
  deleted?: boolean;
}

export interface MessageRules {
  /** authors may edit for this long after sending (0: always) */
  editWindowMs: number;
}

/**
 * The rule for a message: a viewer who may not read its room gets not_found, as for a message
 * that does not exist. Authors edit their own (within the edit window) and delete their own;
 * the room's owner and admins (who may manage the room) delete any; members react. Nothing
 * changes in an archived room, and a deleted message is only deleted.
 */
export function decideMessage(viewer: Viewer, room: Room | undefined, isMember: boolean, message: MessageFacts | undefined, action: MessageAction, rules: AccessRules & MessageRules, now = Date.now()): Decision {
  const read = decide(viewer, room, isMember, 'read', rules);
  if (!read.ok) return read;
  if (!room || !message || message.room !== room.id) return { ok: false, code: 'not_found', reason: 'no such message' };
  const user = viewer.user!;
  const own = message.authorId !== undefined && message.authorId === user.id;
  if (room.archived) return no('the room is archived: read-only');
  if (message.deleted && action !== 'delete') return no('the message was deleted');
  switch (action) {
    case 'edit':
      if (!own) return no('only its author edits a message');
      if (!isMember) return no('you are not in this room');
      if (rules.editWindowMs > 0 && now - message.sent.getTime() > rules.editWindowMs) return no(`messages can be edited for ${Math.round(rules.editWindowMs / 60_000)} minutes after they are sent`);
      return ALLOW;
    case 'delete':
      if (own && isMember) return ALLOW;
      return decide(viewer, room, isMember, 'manage', rules).ok ? ALLOW : no("only its author, the room's owner or an admin deletes a message");
    case 'react':
      return isMember ? ALLOW : no(room.kind === 'channel' ? 'join the channel first' : 'you are not in this room');
  }
}

/** Account rooms have UUID ids; any other id is an open room's name. */
export const isRoomId = (id: string) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id);

export function openRoom(name: string): Room {
  return { id: name, kind: 'open', name, topic: '', ownerId: null, createdAt: new Date(0), archived: false, announcement: false, isDefault: false };
}

export type Checked = { ok: true; room: Room; isMember: boolean } | { ok: false; code: 'not_found' | 'forbidden'; reason: string };

export type CheckedMessage = Checked;

export type Access = ReturnType<typeof createAccess>;

export function createAccess(opts: { rooms: RoomStore; rules: AccessRules }) {
  const { rooms, rules } = opts;

  /** The answer at once when it needs no database (open rooms), else undefined. */
  function checkNow(viewer: Viewer, roomId: string, action: Action): Checked | undefined {
    if (isRoomId(roomId)) return undefined;
    const d = decide(viewer, openRoom(roomId), false, action, rules);
    return d.ok ? { ok: true, room: openRoom(roomId), isMember: false } : d;
  }

  return {
    rules,
    checkNow,
    /** May `viewer` do `action` with room `roomId`? Reads the room and the membership. */
    async check(viewer: Viewer, roomId: string, action: Action): Promise<Checked> {
      const now = checkNow(viewer, roomId, action);
      if (now) return now;
      const room = await rooms.room(roomId);
      const isMember = Boolean(room && viewer.user && (await rooms.member(room.id, viewer.user.id)));
      const d = decide(viewer, room, isMember, action, rules);
      if (!d.ok) return d;
      return room ? { ok: true, room, isMember } : { ok: false, code: 'not_found', reason: 'no such room' };
    },
    /** May `viewer` do `action` with message `messageId` of room `roomId`? */
    async checkMessage(viewer: Viewer, roomId: string, message: (MessageFacts & { id: string }) | undefined, action: MessageAction, messageRules: MessageRules): Promise<CheckedMessage> {
      if (!isRoomId(roomId)) return { ok: false, code: 'not_found', reason: 'no such room' };
      const room = await rooms.room(roomId);
      const isMember = Boolean(room && viewer.user && (await rooms.member(room.id, viewer.user.id)));
      const d = decideMessage(viewer, room, isMember, message, action, { ...rules, ...messageRules });
      if (!d.ok) return d;
      return room ? { ok: true, room, isMember } : { ok: false, code: 'not_found', reason: 'no such room' };
    },
    /** Every account room `viewer` may read right now, by the same rule as `check`: the rooms
     *  they are in, and (but for guests) the public channels. What search ranges over. */
    async readableRooms(viewer: Viewer): Promise<Array<{ room: Room; isMember: boolean }>> {
      const user = viewer.user;
      if (!user || user.disabled) return [];
      const mine = await rooms.roomsOf(user.id);
      const memberOf = new Set(mine.map((room) => room.id));
      const channels = user.role === 'guest' ? [] : (await rooms.byKind('channel')).filter((room) => !memberOf.has(room.id));
      return [...mine, ...channels]
        .filter((room) => decide(viewer, room, memberOf.has(room.id), 'read', rules).ok)
        .map((room) => ({ room, isMember: memberOf.has(room.id) }));
    },
    /** May this viewer create rooms (guests may not)? */
    mayCreateRooms(viewer: Viewer): boolean {
      return Boolean(viewer.user && !viewer.user.disabled && viewer.user.role !== 'guest');
    },
  };
}
