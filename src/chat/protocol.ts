// The socket protocol: one schema for every frame a client may send, and the shapes the
// server sends back. The 2015 article's frames keep working unchanged (protocol 1); a client
// that says {type:'hello', protocol:2} gets the additive capabilities: ids it chooses, acks,
// history in one frame, resume from the last message it saw.
import { z } from 'zod';
import type { Author, Message } from './message.js';
import type { ErrorCode, Protocol, WireMessage } from './wire.js';

export { compareWire, type ErrorCode, type OutboundFrame, type Protocol, type WireMessage } from './wire.js';

export const LIMITS = Object.freeze({ room: 100, body: 2000, name: 50, id: 128, have: 1000 });

const noControlChars = /^[^\p{Cc}]*$/u;

/**
 * Text from outside: a string that is well-formed UTF-16. A lone surrogate cannot be stored
 * (RethinkDB refuses the whole query, or keeps U+FFFD in its place), so it is refused here,
 * at the boundary, with an error that says why.
 */
export const text = () => z.string().refine((s) => s.isWellFormed(), 'must be well-formed Unicode text (it holds a lone surrogate)');

/** Any name is a room (the article's lobby is ''); only length and control characters are refused. */
export const roomName = text()
  .max(LIMITS.room, `must be at most ${LIMITS.room} characters`)
  .regex(noControlChars, 'must not contain control characters');

const authorName = text()
  .trim()
  .max(LIMITS.name, `must be at most ${LIMITS.name} characters`)
  .regex(noControlChars, 'must not contain control characters')
  .transform((name) => name || 'Anonymous');

// A client may send {id, name}, but without accounts an id from a client proves nothing: it
// is dropped here, and set from the session once sessions exist.
const inboundAuthor = z
  .union([authorName, z.object({ name: authorName })])
  .transform((a): Author => (typeof a === 'string' ? { name: a } : { name: a.name }));

/** A message's text: what a socket frame and the API both take. */
export const messageBody = text()
  .max(LIMITS.body, `must be at most ${LIMITS.body} characters`)
  .refine((s) => s.trim() !== '', 'must not be empty');

const messageId = text().min(1, 'must not be empty').max(LIMITS.id, `must be at most ${LIMITS.id} characters`);

export const inboundFrame = z.discriminatedUnion('type', [
  z.object({ type: z.literal('hello'), protocol: z.literal(2) }),
  z.object({
    type: z.literal('joinRoom'),
    room: roomName,
    /** protocol 2: the id of the newest message (in room order) this client holds; the
     *  server sends what it may have missed: every message from `reorderWindowMs` before it on */
    since: messageId.optional(),
    /** protocol 2, with `since`: the ids this client holds from `reorderWindowMs` before
     *  `since` on, which the server then does not send again */
    have: z.array(messageId).max(LIMITS.have, `must list at most ${LIMITS.have} ids`).optional(),
    /** protocol 2: the newest change (`updated`) this client holds in the room: changes from
     *  `reorderWindowMs` before it on come as messageChanged frames */
    changedSince: z.iso.datetime({ offset: true }).optional(),
  }),
  z.object({ type: z.literal('leaveRoom') }),
  /** protocol 2, signed in: follow every room the user is in; resume those named */
  z.object({
    type: z.literal('watch'),
    rooms: z
      .record(messageId, z.object({ since: messageId.optional(), have: z.array(messageId).max(LIMITS.have).optional(), changedSince: z.iso.datetime({ offset: true }).optional() }))
      .refine((r) => Object.keys(r).length <= 500, 'at most 500 rooms')
      // A frame holds at most 64 KiB; ids a resume does not list come again (and are dropped).
      .refine((r) => Object.values(r).reduce((n, x) => n + (x.have?.length ?? 0), 0) <= LIMITS.have, `list at most ${LIMITS.have} held ids in all`)
      .optional(),
  }),
  /** protocol 2, signed in: the user has read the room up to this message */
  z.object({ type: z.literal('read'), room: roomName, id: messageId }),
  /** signed in: tell me who of these people is online (replaces the previous list) */
  z.object({ type: z.literal('presence'), users: z.array(messageId).max(500, 'at most 500 people') }),
  /** signed in: this page is idle or hidden (away), or in use again */
  z.object({ type: z.literal('away'), away: z.boolean() }),
  /** signed in: the user is typing in the room (sent at most every few seconds) */
  z.object({ type: z.literal('typing'), room: roomName }),
  z.object({
    type: z.literal('createMessage'),
    message: z.object({
      /** protocol 2: chosen by the client so that a resent message is stored once */
      id: z.uuid('must be a UUID').optional(),
      room: roomName,
      body: messageBody,
      author: inboundAuthor.default({ name: 'Anonymous' }),
      /** signed in: a reply in the thread of this message */
      thread: messageId.optional(),
      /** with thread: also shown in the room */
      alsoRoom: z.boolean().optional(),
    }),
  }),
]);
export type InboundFrame = z.output<typeof inboundFrame>;

export type ParseResult = { ok: true; frame: InboundFrame } | { ok: false; code: ErrorCode; message: string; clientId?: string };

export function parseFrame(data: unknown): ParseResult {
  const parsed = inboundFrame.safeParse(data);
  if (parsed.success) return { ok: true, frame: parsed.data };
  const type = typeof data === 'object' && data !== null && 'type' in data ? data.type : undefined;
  const known = inboundFrame.options.some((o) => o.shape.type.value === type);
  const clientId = clientIdOf(data);
  if (!known) {
    return { ok: false, code: 'unknown_type', message: `unrecognized message type ${describeType(type)}`, clientId };
  }
  const message = parsed.error.issues.map((i) => `${i.path.join('.') || 'frame'}: ${i.message}`).join('; ');
  return { ok: false, code: 'bad_frame', message, clientId };
}

/** A short, safe rendering of a frame's `type` for an error (it may be anything: huge, nested). */
function describeType(type: unknown): string {
  if (typeof type === 'string') return JSON.stringify(type.length > 40 ? `${type.slice(0, 40)}…` : type);
  if (type === undefined || type === null) return 'null';
  if (typeof type === 'number' || typeof type === 'boolean') return String(type);
  return `(${Array.isArray(type) ? 'array' : typeof type})`;
}

/** The client's id of a createMessage frame, if it has a usable one, so an error can name it. */
export function clientIdOf(data: unknown): string | undefined {
  if (typeof data !== 'object' || data === null || !('message' in data)) return undefined;
  const m = data.message;
  if (typeof m !== 'object' || m === null || !('id' in m) || typeof m.id !== 'string') return undefined;
  return m.id.length <= LIMITS.id && m.id.isWellFormed() ? m.id : undefined;
}

// ---- outbound (the shapes are in wire.ts) ------------------------------------------------

export function toWire(m: Message, protocol: Protocol): WireMessage {
  const w: WireMessage = {
    id: m.id,
    room: m.room,
    body: m.body,
    author: protocol === 1 ? m.author.name : m.author,
    sent: m.sent.toISOString(),
  };
  if (m.event) w.event = m.event;
  if (protocol === 2) {
    if (m.updated) w.updated = m.updated.toISOString();
    if (m.edited) w.edited = m.edited.toISOString();
    if (m.deleted) w.deleted = true;
    if (m.reactions && Object.keys(m.reactions).length > 0) w.reactions = m.reactions;
    if (m.thread !== undefined) w.thread = m.thread;
    if (m.alsoRoom) w.alsoRoom = true;
    if (m.replies !== undefined) w.replies = m.replies;
    if (m.lastReply) w.lastReply = m.lastReply.toISOString();
    if (m.followers) w.followers = m.followers;
    if (m.mentions && m.mentions.length > 0) w.mentions = m.mentions;
    if (m.mentionsRoom) w.mentionsRoom = true;
    if (m.file) w.file = m.file;
    if (m.bot) w.bot = true;
    if (m.display) w.display = m.display;
    if (m.attachments && m.attachments.length > 0) w.attachments = m.attachments;
  }
  return w;
}
