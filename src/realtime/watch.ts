// Membership, live: one changefeed on the members table per process, routed to the watching
// sockets of the user it concerns. A socket that watches is told when its user is added to a
// room (and starts receiving it), removed from one (and stops), or when their read position
// moves on another device.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Member } from '../rooms/schema.js';
import type { MemberChange, RoomStore } from '../rooms/store.js';

export interface Watcher {
  readonly userId: string;
  added(member: Member): void;
  removed(roomId: string): void;
  read(member: Member): void;
}

export function createWatchHub(opts: { rooms: RoomStore; log: Logger }) {
  const byUser = new Map<string, Set<Watcher>>();
  let stopped = false;
  let feed: { close(): Promise<void> } | undefined;
  let opened: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (opened = resolve));

  function dispatch(c: MemberChange): void {
    const watchers = byUser.get(c.member.userId);
    if (!watchers) return;
    for (const w of watchers) {
      try {
        if (c.kind === 'added') w.added(c.member);
        else if (c.kind === 'removed') w.removed(c.member.roomId);
        else w.read(c.member);
      } catch (e) {
        opts.log.warn({ err: String(e) }, 'a watcher failed');
      }
    }
  }

  const loop = (async () => {
    let attempt = 0;
    while (!stopped) {
      try {
        const f = await opts.rooms.memberChanges();
        feed = f;
        // Stopped while it was opening: nobody else will close it.
        if (stopped) {
          await f.close().catch(() => undefined);
          break;
        }
        opened();
        attempt = 0;
        for await (const c of f) dispatch(c);
      } catch (e) {
        if (!stopped) opts.log.warn({ err: String(e) }, 'the membership feed failed; reopening');
      }
      if (stopped) break;
      await sleep(Math.min(5000, 100 * 2 ** ++attempt));
    }
  })();

  return {
    ready,
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
    async stop(): Promise<void> {
      stopped = true;
      opened();
      await feed?.close().catch(() => undefined);
      // A feed caught in a reconnect may not end when asked: the process goes on stopping.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([loop, new Promise((resolve) => (timer = setTimeout(resolve, 2000)))]);
      clearTimeout(timer);
    },
  };
}
