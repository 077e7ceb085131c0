// A chat message as stored and as the rest of the app sees it. The author is {id?, name} so
// that accounts can come later without a migration; rows written by the 2015 article's app
// (author as a plain string) read as {name}.
import { z } from 'zod';

export const authorSchema = z.union([
  z.string().transform((name) => ({ name })),
  z.object({ id: z.string().optional(), name: z.string() }),
]);
export type Author = z.output<typeof authorSchema>;

export const messageEvent = z.object({ type: z.enum(['member_added', 'member_removed']), userId: z.string() });
export type MessageEvent = z.output<typeof messageEvent>;

/** A Slack-style attachment as stored: already made safe at the boundary (plain text, a
 *  colour of #rrggbb, links http(s) only); clients still show the text as text. */
export const attachmentRow = z.object({
  fallback: z.string().optional(),
  pretext: z.string().optional(),
  title: z.string().optional(),
  title_link: z.string().optional(),
  text: z.string().optional(),
  color: z.string().optional(),
  fields: z.array(z.object({ title: z.string(), value: z.string(), short: z.boolean() })).optional(),
});
export type Attachment = z.output<typeof attachmentRow>;

/** Who shows as the author of a webhook's message (Slack's username / icon overrides). */
export const displayRow = z.object({ username: z.string().optional(), iconUrl: z.string().optional(), iconEmoji: z.string().optional() });
export type Display = z.output<typeof displayRow>;

/** A file attached to a message (src/files/): what the room shows of it; the bytes are served
 *  by id to those who may read the room. `thumb`: an image with a thumbnail. */
export const fileAttachment = z.object({
  id: z.string(),
  name: z.string(),
  type: z.string(),
  size: z.number(),
  width: z.number().optional(),
  height: z.number().optional(),
  thumb: z.boolean().optional(),
});
export type FileAttachment = z.output<typeof fileAttachment>;

/** A row of the messages table, checked as it comes out of the database. */
export const messageRow = z.object({
  id: z.string(),
  room: z.string(),
  body: z.string(),
  author: authorSchema,
  /** the database's clock (r.now()) when it stored the message */
  sent: z.date(),
  /** a system message about the room itself (someone added or removed) */
  event: messageEvent.optional(),
  /** the database's clock at the last change (an edit, a deletion, a reaction); absent on a
   *  message never changed. Catch-up after a reconnect is a range of [room, updated, id]. */
  updated: z.date().optional(),
  /** when its author last edited it */
  edited: z.date().optional(),
  /** deleted: its text is gone (body ''), the row stays as a tombstone */
  deleted: z.boolean().optional(),
  /** who reacted with what: emoji -> user ids, each once */
  reactions: z.record(z.string(), z.array(z.string())).optional(),
  /** a reply: the id of the message that starts its thread */
  thread: z.string().optional(),
  /** a reply also shown in the room (otherwise only in its thread) */
  alsoRoom: z.boolean().optional(),
  /** a thread's start: how many replies it has, and when the last came */
  replies: z.number().optional(),
  lastReply: z.date().optional(),
  /** a thread's start: who is told of its replies (its author, repliers, who followed it) */
  followers: z.array(z.string()).optional(),
  /** who is asked to look: the users named by @username (and, on a reply, the thread's followers) */
  mentions: z.array(z.string()).optional(),
  /** @room: everyone in the room is asked to look */
  mentionsRoom: z.literal(true).optional(),
  /** a file or image message (the body is its caption, maybe empty) */
  file: fileAttachment.optional(),
  /** written by a bot account or a webhook: never starts an outgoing webhook */
  bot: z.literal(true).optional(),
  /** a webhook's username and icon, shown instead of its bot's */
  display: displayRow.optional(),
  attachments: z.array(attachmentRow).optional(),
});
export type Message = z.output<typeof messageRow>;

/** The most kinds of reaction one message holds. */
export const MAX_REACTION_KINDS = 50;

/** What the app hands the database; `sent` is added there. */
export interface NewMessage {
  id: string;
  room: string;
  body: string;
  author: Author;
  event?: MessageEvent;
  thread?: string;
  alsoRoom?: boolean;
  mentions?: string[];
  mentionsRoom?: true;
  file?: FileAttachment;
  bot?: true;
  display?: Display;
  attachments?: Attachment[];
}

/**
 * The one order of a room, identical for every process and client: by the database's
 * timestamp, ties broken by id. It is the order of the `room_sent` index ([room, sent, id]).
 */
export function compareMessages(a: Message, b: Message): number {
  return a.sent.getTime() - b.sent.getTime() || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}
