// The socket protocol: one schema for every frame a client may send, and the shapes the
// server sends back. The 2015 article's frames keep working unchanged (protocol 1); a client
// that says {type:'hello', protocol:2} gets the additive capabilities: ids it chooses, acks,
// history in one frame, resume from the last message it saw.
import { z } from 'zod';
import type { Author, Message } from './message.js';

export const LIMITS = Object.freeze({ room: 100, body: 2000, name: 50, id: 128 });

const noControlChars = /^[^\p{Cc}]*$/u;

/** Any name is a room (the article's lobby is ''); only length and control characters are refused. */
export const roomName = z
  .string()
  .max(LIMITS.room, `must be at most ${LIMITS.room} characters`)
  .regex(noControlChars, 'must not contain control characters');

const authorName = z
  .string()
  .trim()
  .max(LIMITS.name, `must be at most ${LIMITS.name} characters`)
  .regex(noControlChars, 'must not contain control characters')
  .transform((name) => name || 'Anonymous');

// A client may send {id, name}, but without accounts an id from a client proves nothing: it
// is dropped here, and set from the session once sessions exist.
const inboundAuthor = z
  .union([authorName, z.object({ name: authorName })])
  .transform((a): Author => (typeof a === 'string' ? { name: a } : { name: a.name }));

const body = z
  .string()
  .max(LIMITS.body, `must be at most ${LIMITS.body} characters`)
  .refine((s) => s.trim() !== '', 'must not be empty');

export const inboundFrame = z.discriminatedUnion('type', [
  z.object({ type: z.literal('hello'), protocol: z.literal(2) }),
  z.object({
    type: z.literal('joinRoom'),
    room: roomName,
    /** protocol 2: the id of the last message this client has; the server sends what came after */
    since: z.string().min(1).max(LIMITS.id).optional(),
  }),
  z.object({ type: z.literal('leaveRoom') }),
  z.object({
    type: z.literal('createMessage'),
    message: z.object({
      /** protocol 2: chosen by the client so that a resent message is stored once */
      id: z.uuid('must be a UUID').optional(),
      room: roomName,
      body,
      author: inboundAuthor.default({ name: 'Anonymous' }),
    }),
  }),
]);
export type InboundFrame = z.output<typeof inboundFrame>;

export type ErrorCode =
  | 'bad_frame'
  | 'unknown_type'
  | 'rate_limited'
  | 'forbidden'
  | 'id_conflict'
  | 'unavailable';

export type ParseResult = { ok: true; frame: InboundFrame } | { ok: false; code: ErrorCode; message: string; clientId?: string };

export function parseFrame(data: unknown): ParseResult {
  const parsed = inboundFrame.safeParse(data);
  if (parsed.success) return { ok: true, frame: parsed.data };
  const type = typeof data === 'object' && data !== null && 'type' in data ? data.type : undefined;
  const known = inboundFrame.options.some((o) => o.shape.type.value === type);
  const clientId = messageIdOf(data);
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
function messageIdOf(data: unknown): string | undefined {
  if (typeof data !== 'object' || data === null || !('message' in data)) return undefined;
  const m = data.message;
  if (typeof m !== 'object' || m === null || !('id' in m) || typeof m.id !== 'string') return undefined;
  return m.id.length <= LIMITS.id ? m.id : undefined;
}

// ---- outbound -------------------------------------------------------------------------

export type Protocol = 1 | 2;

/** A message on the wire. Protocol 1 (the article's client) shows `author` as text. */
export interface WireMessage {
  id: string;
  room: string;
  body: string;
  author: Author | string;
  /** ISO 8601, the database's clock */
  sent: string;
}

export type OutboundFrame =
  | { type: 'hello'; protocol: 2 }
  | { type: 'deliverMessage'; message: WireMessage }
  /** protocol 2: history of a room just joined, oldest first; `resumed` means it continues from `since` */
  | { type: 'joined'; room: string; resumed: boolean; messages: WireMessage[] }
  | { type: 'ack'; clientId?: string; id: string; room: string; sent: string }
  | { type: 'error'; code: ErrorCode; message: string; clientId?: string; retryAfterMs?: number };

/** The one room order on the wire, as clients apply it: server time, then id. */
export function compareWire(a: Pick<WireMessage, 'sent' | 'id'>, b: Pick<WireMessage, 'sent' | 'id'>): number {
  return Date.parse(a.sent) - Date.parse(b.sent) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

export function toWire(m: Message, protocol: Protocol): WireMessage {
  return {
    id: m.id,
    room: m.room,
    body: m.body,
    author: protocol === 1 ? m.author.name : m.author,
    sent: m.sent.toISOString(),
  };
}
