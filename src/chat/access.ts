// The one place that decides who may read or write a room. Every socket handler and HTTP
// route asks here; none decides for itself. Today every visitor may use any room whose name
// is valid (a room exists once someone joins it); accounts and private rooms change only
// this module.

/** Who is asking. Anonymous until accounts exist; then `userId` comes from the session. */
export interface Viewer {
  userId?: string;
}

export const ANONYMOUS: Viewer = Object.freeze({});

export type Decision = { ok: true } | { ok: false; code: 'forbidden'; reason: string };

const ALLOW: Decision = Object.freeze({ ok: true });

// The room name has already been validated by the protocol schema at the boundary.
export function mayRead(_viewer: Viewer, _room: string): Decision {
  return ALLOW;
}

export function mayWrite(_viewer: Viewer, _room: string): Decision {
  return ALLOW;
}
