// Who is online, the same on every process. Each process writes one row per user it has
// sockets for (`<process>/<user>`: online, or away when all of that user's sockets here are
// idle or hidden), and only when that changes; the row goes when the user's last socket
// here closes. Every process follows the presence table with one changefeed and keeps it in
// memory, so answering "who of these is online" reads nothing. A row counts only while its
// process beats (src/ops/heartbeat.ts): a process killed outright takes its users offline
// once its heartbeat is missed, and its rows are swept later by whoever notices.
import { setTimeout as sleep } from 'node:timers/promises';
import { r, type RDatum } from 'rethinkdb-ts';
import type { Logger } from 'pino';
import { z } from 'zod';
import { follow, type Feed } from '../db/follow.js';
import type { Pool } from '../db/pool.js';
import { PRESENCE, PROCESSES } from '../db/schema.js';
import { MISSED_BEATS } from '../ops/heartbeat.js';

export type PresenceState = 'online' | 'away' | 'offline';

const presenceRow = z.object({ id: z.string(), userId: z.string(), proc: z.string(), state: z.enum(['online', 'away']) });
type PresenceRow = z.output<typeof presenceRow>;
const change = z.object({ old_val: presenceRow.nullish(), new_val: presenceRow.nullish() });

export interface SocketPresence {
  /** the socket's page is idle or hidden (away), or in use again */
  away(on: boolean): void;
  /** the socket closed */
  detach(): void;
}

export interface Presence {
  readonly ready: Promise<void>;
  /** A socket of this user opened on this process. */
  attach(userId: string): SocketPresence;
  /** Calls `listener` whenever one of these users' state changes; returns the unwatch. */
  watch(userIds: Iterable<string>, listener: (userId: string, state: PresenceState) => void): () => void;
  stateOf(userId: string): PresenceState;
  stop(): Promise<void>;
}

export interface PresenceOptions {
  pool: Pick<Pool, 'run'>;
  db: string;
  log: Logger;
  /** this process's heartbeat id */
  procId: string;
  /** how often the live processes are read (ms, default 2000) */
  checkEveryMs?: number;
}

/** How often rows of processes gone are deleted. */
const SWEEP_EVERY_MS = 30_000;

export function createPresence(opts: PresenceOptions): Presence {
  const { pool, log, procId } = opts;
  const table = r.db(opts.db).table(PRESENCE);
  const checkEveryMs = opts.checkEveryMs ?? 2000;

  // ---- this process's sockets and its rows ----------------------------------------------
  /** per user: how many of their sockets here are in use, and how many away */
  const local = new Map<string, { active: number; away: number }>();
  /** what this process's row says for each user (undefined: no row) */
  const written = new Map<string, 'online' | 'away'>();
  /** users whose sockets here changed since their row was last written */
  const dirty = new Set<string>();
  let syncing: Promise<void> | undefined;
  let again = false;
  let stopped = false;

  const wanted = (userId: string): 'online' | 'away' | undefined => {
    const l = local.get(userId);
    if (!l || l.active + l.away === 0) return undefined;
    return l.active > 0 ? 'online' : 'away';
  };

  /** Writes the rows of the users whose sockets here changed; one pass at a time. A write
   *  that fails leaves its user for the next pass (the process check runs one every
   *  couple of seconds). */
  function sync(userId?: string): void {
    if (userId !== undefined) dirty.add(userId);
    if (syncing) {
      again = true;
      return;
    }
    syncing = (async () => {
      do {
        again = false;
        if (dirty.size === 0) break;
        const users = [...dirty];
        dirty.clear();
        for (let i = 0; i < users.length; i++) {
          const userId = users[i];
          const want = wanted(userId);
          if (want === written.get(userId)) {
            if (want === undefined) local.delete(userId);
            continue;
          }
          const id = `${procId}/${userId}`;
          try {
            if (want === undefined) {
              await pool.run(table.get(id).delete());
              written.delete(userId);
              // A socket may have opened meanwhile (a page reloaded): it counts on this entry.
              if (wanted(userId) === undefined) local.delete(userId);
            } else {
              await pool.run(table.insert({ id, userId, proc: procId, state: want, since: r.now() }, { conflict: 'replace' }));
              written.set(userId, want);
            }
          } catch (e) {
            // The database is away: this user and those not reached yet wait for the next pass.
            log.debug({ err: String(e) }, 'could not write presence');
            for (const u of users.slice(i)) dirty.add(u);
            break;
          }
        }
      } while (again && !stopped);
    })().finally(() => (syncing = undefined));
  }

  // ---- everyone's rows, from the feed ---------------------------------------------------
  /** per user: their rows, by process */
  const rows = new Map<string, Map<string, 'online' | 'away'>>();
  /** processes beating now (this one always) */
  let live = new Set<string>([procId]);
  /** the state each watched user was last told in */
  const told = new Map<string, PresenceState>();
  const listeners = new Map<string, Set<(userId: string, state: PresenceState) => void>>();

  function stateOf(userId: string): PresenceState {
    let best: PresenceState = 'offline';
    for (const [proc, state] of rows.get(userId) ?? []) {
      if (!live.has(proc)) continue;
      if (state === 'online') return 'online';
      best = 'away';
    }
    return best;
  }

  function recheck(userId: string): void {
    const set = listeners.get(userId);
    if (!set) return;
    const now = stateOf(userId);
    if (told.get(userId) === now) return;
    told.set(userId, now);
    for (const l of set) {
      try {
        l(userId, now);
      } catch (e) {
        log.warn({ err: String(e) }, 'a presence listener failed');
      }
    }
  }

  function put(row: PresenceRow): void {
    const m = rows.get(row.userId) ?? new Map<string, 'online' | 'away'>();
    m.set(row.proc, row.state);
    rows.set(row.userId, m);
  }
  function drop(row: PresenceRow): void {
    const m = rows.get(row.userId);
    m?.delete(row.proc);
    if (m?.size === 0) rows.delete(row.userId);
  }

  /** while the table is read after the feed (re)opened, its changes wait here */
  let buffer: Array<z.output<typeof change>> | undefined;
  function apply(c: z.output<typeof change>): void {
    if (buffer) return void buffer.push(c);
    if (c.old_val) drop(c.old_val);
    if (c.new_val) put(c.new_val);
    recheck((c.new_val ?? c.old_val)!.userId);
  }

  async function reload(): Promise<void> {
    buffer = [];
    try {
      const all = z.array(presenceRow).parse(await pool.run(table));
      const before = new Set(rows.keys());
      rows.clear();
      for (const row of all) put(row);
      // Changes that came meanwhile, in order, on top of what was read.
      const waiting = buffer;
      buffer = undefined;
      for (const c of waiting) apply(c);
      for (const userId of new Set([...before, ...rows.keys(), ...listeners.keys()])) recheck(userId);
    } catch (e) {
      const waiting = buffer ?? [];
      buffer = undefined;
      for (const c of waiting) apply(c);
      log.warn({ err: String(e) }, 'could not read presence');
    }
  }

  const feed = follow(
    'presence',
    async (): Promise<Feed<z.output<typeof change>>> => {
      const cursor = await pool.run(table.changes());
      void reload();
      return {
        close: () => cursor.close(),
        async *[Symbol.asyncIterator]() {
          for await (const raw of cursor as AsyncIterable<unknown>) yield change.parse(raw);
        },
      };
    },
    apply,
    { log },
  );

  // ---- which processes are alive ---------------------------------------------------------
  let lastSweep = Date.now();
  async function checkProcesses(): Promise<void> {
    const ids = z.array(z.string()).parse(
      await pool.run(r.db(opts.db).table(PROCESSES).filter((p: RDatum) => p('beat').gt(r.now().sub(p('every').mul(MISSED_BEATS))))('id')),
    );
    const next = new Set([procId, ...ids]);
    const changed = [...live, ...next].filter((p) => live.has(p) !== next.has(p));
    live = next;
    if (changed.length > 0) for (const userId of new Set([...rows.keys(), ...listeners.keys()])) recheck(userId);
    if (Date.now() - lastSweep > SWEEP_EVERY_MS) {
      lastSweep = Date.now();
      const keep = [...next];
      await pool.run(table.filter((row: RDatum) => r.expr(keep).contains(row('proc')).not()).delete());
    }
  }
  const checking = (async () => {
    while (!stopped) {
      await checkProcesses().catch((e: unknown) => log.debug({ err: String(e) }, 'could not read the live processes'));
      sync();
      await sleep(checkEveryMs);
    }
  })();

  return {
    ready: feed.ready,

    attach(userId) {
      const l = local.get(userId) ?? { active: 0, away: 0 };
      l.active++;
      local.set(userId, l);
      let away = false;
      let detached = false;
      sync(userId);
      return {
        away(on) {
          if (detached || on === away) return;
          away = on;
          if (on) {
            l.active--;
            l.away++;
          } else {
            l.away--;
            l.active++;
          }
          sync(userId);
        },
        detach() {
          if (detached) return;
          detached = true;
          if (away) l.away--;
          else l.active--;
          sync(userId);
        },
      };
    },

    watch(userIds, listener) {
      const ids = [...new Set(userIds)];
      for (const id of ids) {
        const set = listeners.get(id) ?? new Set();
        set.add(listener);
        listeners.set(id, set);
        if (!told.has(id)) told.set(id, stateOf(id));
      }
      return () => {
        for (const id of ids) {
          const set = listeners.get(id);
          set?.delete(listener);
          if (set?.size === 0) {
            listeners.delete(id);
            told.delete(id);
          }
        }
      };
    },

    stateOf,

    async stop() {
      stopped = true;
      await feed.stop();
      await checking.catch(() => undefined);
      await syncing;
      await pool.run(table.getAll(procId, { index: 'proc' }).delete()).catch((e: unknown) => log.warn({ err: String(e) }, 'could not delete presence rows'));
    },
  };
}
