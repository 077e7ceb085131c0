// Posting a signed-in user's message in a room: what the socket's createMessage and the API's
// POST both do, once. The access module has said the user may post; this settles what the
// message means before it is stored: a reply goes to its thread's first message, @username
// names members of the room (who are asked to look), @room names everyone (in a big room only
// an admin or the room's owner may), a reply asks the thread's followers to look, and the
// thread's start is brought up to date (reply count, last reply, followers).
import type { Logger } from 'pino';
import type { AccountStore } from '../accounts/store.js';
import type { User } from '../accounts/schema.js';
import type { MessageStore } from '../db/messages.js';
import type { Room } from '../rooms/schema.js';
import type { RoomStore } from '../rooms/store.js';
import type { FileAttachment } from './message.js';
import type { Attachment, Display, Message } from './message.js';

export interface PostInput {
  id: string;
  body: string;
  /** reply in the thread of this message */
  thread?: string;
  /** a reply also shown in the room */
  alsoRoom?: boolean;
  /** a file uploaded for this message (src/http/files.ts); the body is its caption */
  file?: FileAttachment;
  /** a webhook's username and icon (only for a bot's post) */
  display?: Display;
  /** Slack-style attachments, made safe already (src/integrations/slack.ts) */
  attachments?: Attachment[];
}

/** A post refused for what it asks (not for the database): not_found or forbidden. */
export class PostRefused extends Error {
  override name = 'PostRefused';
  constructor(
    readonly code: 'not_found' | 'forbidden',
    message: string,
  ) {
    super(message);
  }
}

export interface Posting {
  post(user: User, room: Room, input: PostInput): Promise<{ message: Message; duplicate: boolean }>;
}

/** The most users one message names (more @names are left as text). */
export const MAX_MENTIONS = 20;

/** Words that name the whole room. */
const ROOM_WORDS = new Set(['room', 'channel', 'here', 'all', 'everyone']);

/**
 * The @names in a message's text, lower-cased, in order and each once, and whether it names
 * the whole room. Code (`inline` and fenced) is left out: a mention in code is not one.
 */
export function mentionsIn(body: string): { names: string[]; room: boolean } {
  const text = body.replace(/```[\s\S]*?(```|$)/g, ' ').replace(/`[^`\n]*`/g, ' ');
  const names = new Set<string>();
  let room = false;
  // A name starts after a space, a line start or punctuation that is not part of a word or
  // an e-mail address; it may not end with the dot or dash of a sentence.
  for (const match of text.matchAll(/(?<![\p{L}\p{N}_.@-])@([a-zA-Z0-9][a-zA-Z0-9._-]{0,31})/gu)) {
    const name = match[1].replace(/[.-]+$/, '').toLowerCase();
    if (ROOM_WORDS.has(name)) room = true;
    else if (name.length >= 2) names.add(name);
  }
  return { names: [...names], room };
}

export interface PostingOptions {
  messages: MessageStore;
  rooms: RoomStore;
  users: AccountStore;
  log: Logger;
  /** after a person's message is stored (again on a resend, so it must be idempotent): the
   *  outgoing webhooks. Never called for a bot's or a webhook's message, so bots cannot loop. */
  afterPost?: (message: Message, room: Room, user: User) => Promise<void>;
}

export function createPosting(opts: PostingOptions): Posting {
  const { messages, rooms, users, log } = opts;

  /** The members of the room named by these @names (not the author, not disabled). */
  async function named(names: string[], room: Room, authorId: string): Promise<string[]> {
    const ids: string[] = [];
    for (const name of names.slice(0, MAX_MENTIONS)) {
      const u = await users.userByLogin(name);
      if (!u || u.disabled || u.id === authorId || ids.includes(u.id)) continue;
      if (await rooms.member(room.id, u.id)) ids.push(u.id);
    }
    return ids;
  }

  return {
    async post(user, room, input) {
      let thread: Message | undefined;
      if (input.thread !== undefined) {
        const parent = await messages.get(input.thread);
        // A reply to a reply goes to the same thread.
        const start = parent?.thread !== undefined ? await messages.get(parent.thread) : parent;
        if (!start || start.room !== room.id || start.deleted || start.event) throw new PostRefused('not_found', 'no such message in this room to reply to');
        thread = start;
      }
      const said = mentionsIn(input.body);
      if (said.room) {
        const bigRoom = (await users.settings()).bigRoomMembers;
        const mayAll = user.role === 'owner' || user.role === 'admin' || room.ownerId === user.id || room.kind === 'dm';
        if (!mayAll && (await rooms.memberCount(room.id)) > bigRoom) {
          throw new PostRefused('forbidden', `@room in a room of more than ${bigRoom} members is for admins and the room's owner`);
        }
      }
      const mentions = new Set(await named(said.names, room, user.id));
      if (thread) {
        const starter = 'id' in thread.author ? thread.author.id : undefined;
        for (const id of thread.followers ?? (starter ? [starter] : [])) if (id !== user.id) mentions.add(id);
      }
      const result = await messages.insert({
        id: input.id,
        room: room.id,
        body: input.body,
        author: { id: user.id, name: user.displayName },
        ...(thread ? { thread: thread.id, alsoRoom: input.alsoRoom === true } : {}),
        ...(mentions.size > 0 ? { mentions: [...mentions] } : {}),
        ...(said.room ? { mentionsRoom: true as const } : {}),
        ...(input.file ? { file: input.file } : {}),
        ...(user.bot ? { bot: true as const, ...(input.display ? { display: input.display } : {}) } : {}),
        ...(input.attachments && input.attachments.length > 0 ? { attachments: input.attachments } : {}),
      });
      if (!user.bot && !result.message.bot && opts.afterPost) {
        await opts.afterPost(result.message, room, user).catch((e: unknown) => log.warn({ err: String(e) }, 'could not queue the outgoing webhooks of a message'));
      }
      if (thread) {
        // Stored already: should this fail, the thread's next reply (or a resend) puts it right.
        await messages.touchThread(thread.id, user.id).catch((e: unknown) => log.warn({ err: String(e) }, 'could not count a reply on its thread'));
      }
      // What one writes, one has read (a reply kept in its thread is not in the room's reading).
      if (!thread || input.alsoRoom) await rooms.setRead(room.id, user.id, result.message.sent, result.message.id).catch(() => undefined);
      return result;
    },
  };
}
