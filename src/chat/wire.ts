// What the server sends, as clients read it. No dependencies, so that the browser client, the
// load generator and the tests share these types and the one room order.

export interface WireAuthor {
  id?: string;
  name: string;
}

export type ErrorCode =
  | 'bad_frame'
  | 'unknown_type'
  | 'rate_limited'
  | 'forbidden'
  /** no such room, or one the viewer may not see: the same answer */
  | 'not_found'
  | 'id_conflict'
  | 'unavailable'
  /** the session ended: log in again */
  | 'unauthenticated';

export type Protocol = 1 | 2;

/** A message on the wire. Protocol 1 (the article's client) shows `author` as text. */
export interface WireMessage {
  id: string;
  room: string;
  body: string;
  author: WireAuthor | string;
  /** ISO 8601, the database's clock */
  sent: string;
  /** a system message: someone was added to or removed from the room */
  event?: { type: 'member_added' | 'member_removed'; userId: string };
  /** protocol 2: the database's clock at its last change; a newer state replaces an older */
  updated?: string;
  /** protocol 2: when its author last edited it */
  edited?: string;
  /** protocol 2: deleted (the text is gone) */
  deleted?: true;
  /** protocol 2: emoji -> the ids of who reacted with it */
  reactions?: Record<string, string[]>;
  /** protocol 2: a reply, in the thread of this message */
  thread?: string;
  /** protocol 2: a reply also shown in the room (otherwise it is only in its thread) */
  alsoRoom?: true;
  /** protocol 2, a thread's start: its replies, the last one's time, who follows it */
  replies?: number;
  lastReply?: string;
  followers?: string[];
  /** protocol 2: the users asked to look (named by @username, or following the thread) */
  mentions?: string[];
  /** protocol 2: @room, everyone in it is asked to look */
  mentionsRoom?: true;
  /** protocol 2: a file or image (GET /api/files/:id, and /api/files/:id/thumb when `thumb`) */
  file?: WireFile;
  /** protocol 2: from a bot account or a webhook */
  bot?: true;
  /** protocol 2: a webhook's username and icon, shown instead of its bot's name */
  display?: { username?: string; iconUrl?: string; iconEmoji?: string };
  /** protocol 2: Slack-style attachments (plain text; colour #rrggbb; links http(s)) */
  attachments?: Array<{ fallback?: string; pretext?: string; title?: string; title_link?: string; text?: string; color?: string; fields?: Array<{ title: string; value: string; short: boolean }> }>;
}

/** A message's file as clients see it. */
export interface WireFile {
  id: string;
  name: string;
  type: string;
  size: number;
  width?: number;
  height?: number;
  thumb?: boolean;
}

/** What a member is told of in a room: every message, mentions only, or nothing (muted). */
export type WireLevel = 'all' | 'mentions' | 'none';

/** True when a reply belongs in its thread only, not in the room's own history. */
export const inThreadOnly = (m: Pick<WireMessage, 'thread' | 'alsoRoom'>): boolean => m.thread !== undefined && m.alsoRoom !== true;

/** True when the message asks this user to look (a mention, @room, a reply they follow). */
export const asksToLook = (m: Pick<WireMessage, 'mentions' | 'mentionsRoom' | 'author'>, userId: string): boolean =>
  (typeof m.author !== 'object' || m.author.id !== userId) && (m.mentionsRoom === true || (m.mentions?.includes(userId) ?? false));

/** True when a message should raise a notification for this user at their level: never their
 *  own; with 'all' every message of the room (a reply kept in its thread only when it asks
 *  them to look), with 'mentions' only what asks them to look, with 'none' nothing. */
export function notifies(level: WireLevel, m: Pick<WireMessage, 'mentions' | 'mentionsRoom' | 'author' | 'thread' | 'alsoRoom' | 'event'>, userId: string): boolean {
  if (typeof m.author === 'object' && m.author.id === userId) return false;
  if (level === 'none' || m.event) return false;
  if (asksToLook(m, userId)) return true;
  return level === 'all' && !inThreadOnly(m);
}

/** A room as the sidebar shows it. */
export interface WireRoom {
  id: string;
  kind: 'channel' | 'group' | 'dm' | 'open';
  name: string;
  topic: string;
  archived: boolean;
  announcement: boolean;
  /** messages after the user's read position, counted up to 100 */
  unread: number;
  /** of those, the ones that ask the user to look (mentions, @room, replies they follow) */
  mentions: number;
  /** what the user is told of here; `levelChosen` says they chose it (else it is the default) */
  level: WireLevel;
  levelChosen: boolean;
  /** the newest message the user has read (an "unread" divider goes after it) */
  readId?: string;
}

export type OutboundFrame =
  /** `reorderWindowMs`: how much later than its timestamp a message may still arrive, the
   *  span of `have` in a resuming joinRoom */
  | { type: 'hello'; protocol: 2; reorderWindowMs: number }
  | { type: 'deliverMessage'; message: WireMessage }
  /** protocol 2: a message held changed (edited, deleted, reacted to): its whole new state */
  | { type: 'messageChanged'; message: WireMessage }
  /** protocol 2: history of a room just joined, oldest first; `resumed` means it continues from `since` */
  | { type: 'joined'; room: string; resumed: boolean; messages: WireMessage[] }
  | { type: 'ack'; clientId?: string; id: string; room: string; sent: string }
  /** after `watch`: every room the user is in, with unread counts */
  | { type: 'rooms'; rooms: WireRoom[] }
  /** the user was added to a room (on any device, by anyone): it is watched from now on */
  | { type: 'roomAdded'; room: WireRoom }
  /** the user left or was removed, or the room was deleted: nothing more comes from it */
  | { type: 'roomRemoved'; room: string }
  /** the user's read position in a room moved (on any device) */
  | { type: 'read'; room: string; id: string; unread: number; mentions: number }
  /** who of the people asked about is online, away or offline (then each change) */
  | { type: 'presence'; users: Record<string, 'online' | 'away' | 'offline'> }
  /** someone is typing in a room (shown for a few seconds) */
  | { type: 'typing'; room: string; userId: string; name: string }
  /** the room's state for the user changed (what they are told of, on any device) */
  | { type: 'roomUpdated'; room: WireRoom }
  /** `clientId`: the createMessage it answers; `room`: the joinRoom it answers */
  | { type: 'error'; code: ErrorCode; message: string; clientId?: string; room?: string; retryAfterMs?: number };

/** The one room order on the wire, as clients apply it: server time, then id. */
export function compareWire(a: Pick<WireMessage, 'sent' | 'id'>, b: Pick<WireMessage, 'sent' | 'id'>): number {
  return Date.parse(a.sent) - Date.parse(b.sent) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** True when `next` is a newer state of the message than `held` (or as new): apply it. */
export function isNewerState(held: Pick<WireMessage, 'updated'>, next: Pick<WireMessage, 'updated'>): boolean {
  if (next.updated === undefined) return held.updated === undefined;
  return held.updated === undefined || Date.parse(next.updated) >= Date.parse(held.updated);
}
