// Membership, live: one changefeed on the members table per process, routed to the watching
// sockets of the user it concerns. A socket that watches is told when its user is added to a
// room (and starts receiving it), removed from one (and stops), or when their read position
// moves on another device. After a gap in the feed (it reopened), every watcher reads its
// user's rooms again, so that what changed meanwhile is not missed.
import type { Logger } from 'pino';
import { follow } from '../db/follow.js';
import type { Member } from '../rooms/schema.js';
import type { MemberChange, RoomStore } from '../rooms/store.js';

export interface Watcher {
  readonly userId: string;
  added(member: Member): void;
  removed(roomId: string): void;
  read(member: Member): void;
  /** the member chose what they are told of (on any device) */
  level(member: Member): void;
  /** the feed had a gap (it reopened): read the user's rooms again */
  resync(): void;
}

export function createWatchHub(opts: { rooms: RoomStore; log: Logger; /** someone joined or left this room */ membersChanged?: (roomId: string) => void }) {
  const byUser = new Map<string, Set<Watcher>>();

  function dispatch(c: MemberChange): void {
    if (c.kind === 'added' || c.kind === 'removed') opts.membersChanged?.(c.member.roomId);
    const watchers = byUser.get(c.member.userId);
    if (!watchers) return;
    for (const w of watchers) {
      try {
        if (c.kind === 'added') w.added(c.member);
        else if (c.kind === 'removed') w.removed(c.member.roomId);
        else if (c.kind === 'read') w.read(c.member);
        else w.level(c.member);
      } catch (e) {
        opts.log.warn({ err: String(e) }, 'a watcher failed');
      }
    }
  }

  function resyncAll(): void {
    for (const set of byUser.values()) for (const w of set) w.resync();
  }

  const feed = follow('membership', () => opts.rooms.memberChanges(), dispatch, { log: opts.log, onReopen: resyncAll });

  return {
    ready: feed.ready,
    add(w: Watcher): void {
      const set = byUser.get(w.userId) ?? new Set();
      set.add(w);
      byUser.set(w.userId, set);
    },
    delete(w: Watcher): void {
      const set = byUser.get(w.userId);
      set?.delete(w);
      if (set?.size === 0) byUser.delete(w.userId);
    },
    stop: () => feed.stop(),
  };
}
