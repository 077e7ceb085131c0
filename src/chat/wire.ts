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
}

export type OutboundFrame =
  /** `reorderWindowMs`: how much later than its timestamp a message may still arrive, the
   *  span of `have` in a resuming joinRoom */
  | { type: 'hello'; protocol: 2; reorderWindowMs: number }
  | { type: 'deliverMessage'; message: WireMessage }
  /** protocol 2: history of a room just joined, oldest first; `resumed` means it continues from `since` */
  | { type: 'joined'; room: string; resumed: boolean; messages: WireMessage[] }
  | { type: 'ack'; clientId?: string; id: string; room: string; sent: string }
  /** `clientId`: the createMessage it answers; `room`: the joinRoom it answers */
  | { type: 'error'; code: ErrorCode; message: string; clientId?: string; room?: string; retryAfterMs?: number };

/** The one room order on the wire, as clients apply it: server time, then id. */
export function compareWire(a: Pick<WireMessage, 'sent' | 'id'>, b: Pick<WireMessage, 'sent' | 'id'>): number {
  return Date.parse(a.sent) - Date.parse(b.sent) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}
