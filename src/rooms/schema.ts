// What a room and a membership are. Four kinds: public channels, private groups, direct
// messages (one-to-one or a group of up to 8), and the article's open rooms (anyone, by name,
// when ANONYMOUS_ROOMS is on). Messages refer to their room by id, so a rename keeps them.
import { z } from 'zod';
import { text } from '../chat/protocol.js';

export const ROOM_KINDS = ['channel', 'group', 'dm', 'open'] as const;
export type RoomKind = (typeof ROOM_KINDS)[number];

export const roomRow = z.object({
  id: z.string(),
  kind: z.enum(ROOM_KINDS),
  name: z.string(),
  topic: z.string(),
  /** the room's owner: its creator, or whom an admin made owner (none for DMs and open rooms) */
  ownerId: z.string().nullable(),
  createdAt: z.date(),
  archived: z.boolean(),
  /** only admins and the room's owner post */
  announcement: z.boolean(),
  /** every new account joins it (public channels only) */
  isDefault: z.boolean(),
});
export type Room = z.output<typeof roomRow>;

export const memberRow = z.object({
  id: z.string(),
  roomId: z.string(),
  userId: z.string(),
  joinedAt: z.date(),
  /** the read position: the newest message (room order) the user has read */
  readSent: z.date().optional(),
  readId: z.string().optional(),
  /** what the member is told of: set by them; absent, the room's default (notifyDefault) */
  level: z.enum(['all', 'mentions', 'none']).optional(),
});
export type Member = z.output<typeof memberRow>;

export const NOTIFY_LEVELS = ['all', 'mentions', 'none'] as const;
export type NotifyLevel = (typeof NOTIFY_LEVELS)[number];

/** A member who chose nothing is told of every message in DMs, private groups and small
 *  channels, and only of mentions in channels of more than `bigRoom` members. */
export function notifyDefault(kind: RoomKind, members: number, bigRoom: number): NotifyLevel {
  return kind === 'channel' && members > bigRoom ? 'mentions' : 'all';
}

export const MAX_DM_PEOPLE = 8;

export const roomName = text()
  .trim()
  .min(1, 'must not be empty')
  .max(80, 'must be at most 80 characters')
  .regex(/^[^\p{Cc}]*$/u, 'must not contain control characters');
export const topic = text().trim().max(250, 'must be at most 250 characters').regex(/^[^\p{Cc}]*$/u, 'must not contain control characters');

export const newRoom = z.object({ kind: z.enum(['channel', 'group']), name: roomName, topic: topic.default(''), announcement: z.boolean().default(false) });
export const roomPatch = z
  .object({ name: roomName, topic, archived: z.boolean(), announcement: z.boolean(), isDefault: z.boolean() })
  .partial()
  .refine((p) => Object.keys(p).length > 0, 'name at least one of name, topic, archived, announcement, isDefault');
export const levelBody = z.object({ level: z.enum(NOTIFY_LEVELS).nullable() });
export const newDm = z.object({ userIds: z.array(z.string().min(1).max(64)).min(1, 'name at least one person').max(MAX_DM_PEOPLE - 1, `a DM holds at most ${MAX_DM_PEOPLE} people`) });

export const memberId = (roomId: string, userId: string) => `${roomId}/${userId}`;
export const normalRoomName = (n: string) => n.trim().toLowerCase();
