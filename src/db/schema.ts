// The database schema, declared once with endex and ensured at start (and by `npm run schema`,
// the release phase).
//
// Several dynos may start at once. On a RethinkDB cluster, concurrent tableCreate calls for
// one name sent through different nodes create several tables with that name, but dbCreate is
// safe: exactly one of them succeeds. So schema work is serialized by a lock that is a
// database: whoever creates `<db>_schema_lock` runs endex and then drops it; the others wait
// until the schema is complete. A lock left by a crashed process is broken once it has stood
// unchanged for `staleMs`.
import { setTimeout as sleep } from 'node:timers/promises';
import endex from 'endex';
import { r, type Connection, type RDatum } from 'rethinkdb-ts';
import type { Logger } from 'pino';

export const MESSAGES = 'messages';
export const USERS = 'users';
/** claims that keep a value unique (only primary keys are): id is `username:<name>` or `email:<address>` */
export const CLAIMS = 'claims';
export const SESSIONS = 'sessions';
/** one document per setting group ('settings'), plus the one-time claims ('owner', 'secrets') */
export const WORKSPACE = 'workspace';
export const INVITES = 'invites';
export const ROOMS = 'rooms';
/** who is in which room: id `<roomId>/<userId>` */
export const MEMBERS = 'members';
/** rate limits shared by every process: id `<rule>:<key>`, points taken, expiry (epoch ms) */
export const RATE_LIMITS = 'rate_limits';
/** one row per running app process, rewritten by its heartbeat (src/ops/heartbeat.ts) */
export const PROCESSES = 'processes';
/** who is online: one row per user per process that has their sockets (src/realtime/presence.ts) */
export const PRESENCE = 'presence';
/** short-lived signals to a room's sockets on every process: who is typing (`<room>/<user>`) */
export const SIGNALS = 'signals';
/** single sign-on links: id is the sha256 of `<issuer>\n<subject>` (the unique key), to a user */
export const IDENTITIES = 'identities';
/** an uploaded file's metadata (src/files/): id (128 random bits), room, owner, name, type, size */
export const FILES = 'files';
/** the bytes of files kept in the database: id `<fileId>:<n>`, in order (src/files/blobs.ts) */
export const FILE_CHUNKS = 'file_chunks';
/** leases that let one process at a time do a job (the file retention sweep): id the job's name */
export const LEASES = 'leases';
/** personal API tokens: id is the sha256 of the token (src/integrations/tokens.ts) */
export const TOKENS = 'tokens';
/** incoming and outgoing webhooks (src/integrations/hooks.ts) */
export const HOOKS = 'hooks';
/** outgoing-webhook deliveries, claimed by one process at a time (src/integrations/outbox.ts) */
export const OUTBOX = 'outbox';

/** A secondary index: its function, and whether each element of the array it returns is a key. */
type IndexSpec = ((row: RDatum) => unknown) | { fn: (row: RDatum) => unknown; multi: true };

/** A reply shown only in its thread, not in the room's own history. */
const threadOnly = (m: RDatum) => m.hasFields('thread').and(m('alsoRoom').default(false).not());

/** tables and their secondary indexes */
const TABLES: Record<string, Record<string, IndexSpec>> = {
  [MESSAGES]: {
    // One room's messages in the one order every client shows: by the database's clock,
    // ties broken by id. History, resume and backfill are all ranges of this index.
    room_sent: (m: RDatum) => [m('room'), m('sent'), m('id')],
    // What changed in a room (edits, deletions, reactions), by the database's clock at the
    // change: a reconnecting client catches up on these. Messages never changed have no
    // `updated` and are not in it.
    room_updated: (m: RDatum) => [m('room'), m('updated'), m('id')],
    // The room as its reader scrolls it: room_sent without the replies kept in their thread
    // (those are filed under `<room>#thread`, a key no room range asks for). History pages
    // and unread counts are ranges of this one; the room's feed still carries every row.
    room_main: (m: RDatum) => [r.branch(threadOnly(m), m('room').add('#thread'), m('room')), m('sent'), m('id')],
    // A thread's replies, in room order (rows that are not replies have no `thread`).
    thread_sent: (m: RDatum) => [m('thread'), m('sent'), m('id')],
    // Who is asked to look: each user named by @username (and a thread's followers, on a
    // reply), by room and time, so that a mention badge is an index count after the read
    // position.
    attention: { fn: (m: RDatum) => m('mentions').map((u: RDatum) => [u, m('room'), m('sent'), m('id')]), multi: true },
    // Messages that name the whole room (@room): only those rows have `mentionsRoom`.
    room_all: (m: RDatum) => [m('room'), m('mentionsRoom'), m('sent'), m('id')],
    // Search (src/search/): one entry per stored term (words, their prefixes, facets), by room
    // and time, so a word in a room is a range from the newest down. Messages without terms
    // (deleted, system, stored before search: npm run admin -- reindex-search) are not in it.
    search: { fn: (m: RDatum) => m('terms').map((t: RDatum) => [m('room'), t, m('sent'), m('id')]), multi: true },
    // The same entries across rooms, by term and time: a viewer who reads many rooms finds a
    // word's newest messages in one range instead of one range per room (src/search/service.ts).
    term_sent: { fn: (m: RDatum) => m('terms').map((t: RDatum) => [t, m('sent'), m('id')]), multi: true },
  },
  [USERS]: {},
  [CLAIMS]: {},
  [SESSIONS]: { userId: (s: RDatum) => s('userId') },
  [WORKSPACE]: {},
  [INVITES]: {},
  [ROOMS]: { kind: (room: RDatum) => room('kind') },
  [MEMBERS]: { userId: (m: RDatum) => m('userId'), roomId: (m: RDatum) => m('roomId') },
  [RATE_LIMITS]: { expire: (l: RDatum) => l('expire') },
  // Rows whose last beat is long past are swept by this index.
  [PROCESSES]: { beat: (p: RDatum) => p('beat') },
  [PRESENCE]: { proc: (p: RDatum) => p('proc') },
  // Old signals are swept by time.
  [SIGNALS]: { at: (s: RDatum) => s('at') },
  [IDENTITIES]: { userId: (i: RDatum) => i('userId') },
  // The retention sweep walks files by age; a user's quota sums their files.
  [FILES]: { created: (f: RDatum) => [f('created'), f('id')], owner: (f: RDatum) => f('owner') },
  [FILE_CHUNKS]: {},
  [LEASES]: {},
  [TOKENS]: { userId: (t: RDatum) => t('userId') },
  // An incoming hook is found by the sha256 of its URL's secret; outgoing ones by room.
  [HOOKS]: { secretHash: (h: RDatum) => h('secretHash'), roomId: (h: RDatum) => h('roomId') },
  // Deliveries due: pending ones by when they may next be tried; failed ones for the admin page.
  [OUTBOX]: { state_next: (o: RDatum) => [o('state'), o('nextAt')], hookId: (o: RDatum) => o('hookId') },
};

function declaration(db: string) {
  const e = endex({ r }).db(db);
  for (const [table, indexes] of Object.entries(TABLES)) {
    e.table(table);
    // endex reads index(name, fn) without options as index(name, options): pass {}.
    for (const [name, spec] of Object.entries(indexes)) {
      if (typeof spec === 'function') e.index(name, spec, {});
      else e.index(name, spec.fn, { multi: spec.multi });
    }
  }
  return e;
}

/** How many copies and shards every table has (RETHINKDB_REPLICAS, RETHINKDB_SHARDS); a
 *  number left out is not changed on existing tables, and is 1 for new ones. */
export interface Layout {
  replicas?: number;
  shards?: number;
}

interface TableConfig {
  shards: Array<{ replicas: string[] }>;
}

/** True when a table's configuration has the layout's numbers. */
function hasLayout(config: TableConfig, layout: Layout): boolean {
  return (layout.shards === undefined || config.shards.length === layout.shards) && (layout.replicas === undefined || config.shards.every((s) => s.replicas.length === layout.replicas));
}

/** True when the database, every table and every index exist, the indexes are built, and
 *  every table has the layout. */
export async function isSchemaReady(conn: Connection, db: string, layout: Layout = {}): Promise<boolean> {
  if (!(await r.dbList().run(conn)).includes(db)) return false;
  const tables = await r.db(db).tableList().run(conn);
  const checkLayout = layout.replicas !== undefined || layout.shards !== undefined;
  for (const [table, indexes] of Object.entries(TABLES)) {
    if (!tables.includes(table)) return false;
    const status = await r.db(db).table(table).indexStatus().run(conn);
    for (const name of Object.keys(indexes)) {
      if (!status.some((s) => s.index === name && s.ready)) return false;
    }
    if (checkLayout && !hasLayout((await r.db(db).table(table).config().run(conn)) as unknown as TableConfig, layout)) return false;
  }
  return true;
}

/** How long a reconfiguration may take to have every replica ready, per table. */
const LAYOUT_WAIT_SECONDS = 300;

/** Creates the missing tables with the layout, and reconfigures the others to it. */
async function applyLayout(conn: Connection, db: string, layout: Layout, log: Logger): Promise<void> {
  if (!(await r.dbList().run(conn)).includes(db)) await r.dbCreate(db).run(conn);
  const existing = await r.db(db).tableList().run(conn);
  const wanted = { replicas: layout.replicas ?? 1, shards: layout.shards ?? 1 };
  for (const table of Object.keys(TABLES)) {
    if (!existing.includes(table)) {
      await r.db(db).tableCreate(table, wanted).run(conn);
      continue;
    }
    const config = (await r.db(db).table(table).config().run(conn)) as unknown as TableConfig;
    if (hasLayout(config, layout)) continue;
    const to = { shards: layout.shards ?? config.shards.length, replicas: layout.replicas ?? config.shards[0]?.replicas.length ?? 1 };
    log.info({ table, from: { shards: config.shards.length, replicas: config.shards[0]?.replicas.length }, to }, 'reconfiguring a table');
    await r.db(db).table(table).reconfigure(to).run(conn);
  }
  for (const table of Object.keys(TABLES)) {
    await r.db(db).table(table).wait({ waitFor: 'all_replicas_ready', timeout: LAYOUT_WAIT_SECONDS }).run(conn);
    const config = (await r.db(db).table(table).config().run(conn)) as unknown as TableConfig;
    if (!hasLayout(config, layout)) {
      throw new Error(`the table ${table} has ${config.shards.length} shard(s) of ${config.shards[0]?.replicas.length ?? 0} replica(s) after reconfiguring, not the ${JSON.stringify(layout)} asked for: this database server does not apply them`);
    }
  }
}

export interface EnsureOptions {
  log: Logger;
  /** a lock unchanged this long is taken to be left by a crashed process */
  staleMs: number;
  /** how often a waiter looks again (default 250 ms) */
  pollMs?: number;
  /** the tables' replicas and shards (unset numbers: left as they are) */
  layout?: Layout;
}

/**
 * Makes sure the schema exists. `conn` is used for this alone (endex calls conn.use(db)).
 * Returns 'present' when there was nothing to do, 'ensured' when this call ran endex.
 */
export async function ensureSchema(conn: Connection, db: string, opts: EnsureOptions): Promise<'present' | 'ensured'> {
  const { log, staleMs } = opts;
  const pollMs = opts.pollMs ?? 250;
  const layout = opts.layout ?? {};
  const lock = `${db}_schema_lock`;
  let seen: { id: string; since: number } | undefined;

  for (;;) {
    if (await isSchemaReady(conn, db, layout)) return 'present';
    if (await tryCreateDb(conn, lock)) {
      try {
        // The previous holder may have finished between our look and our lock.
        if (await isSchemaReady(conn, db, layout)) return 'present';
        log.info({ db, layout }, 'ensuring the database schema');
        // Tables first, with their replicas and shards; then endex adds what is missing.
        await applyLayout(conn, db, layout, log);
        await declaration(db).run(conn);
        for (const table of Object.keys(TABLES)) await r.db(db).table(table).indexWait().run(conn);
        return 'ensured';
      } finally {
        await r.dbDrop(lock).run(conn).catch((e: unknown) => log.warn({ err: String(e) }, 'could not drop the schema lock'));
      }
    }
    // Someone else holds the lock: wait for them, unless the lock is stale.
    const id = await lockId(conn, lock);
    if (id !== undefined) {
      if (seen?.id !== id) seen = { id, since: Date.now() };
      else if (Date.now() - seen.since > staleMs) {
        log.warn({ lock }, `breaking a schema lock held for more than ${staleMs} ms`);
        // Between reading the lock's id and dropping it the holder could, in theory, have been
        // replaced; the lock is meant for a rare crash, and the next holder's endex is idempotent.
        await r.dbDrop(lock).run(conn).catch(() => undefined);
        seen = undefined;
        continue;
      }
    }
    await sleep(pollMs);
  }
}

async function tryCreateDb(conn: Connection, name: string): Promise<boolean> {
  try {
    await r.dbCreate(name).run(conn);
    return true;
  } catch (e) {
    if (/already exists/i.test(String((e as Error).message))) return false;
    throw e;
  }
}

async function lockId(conn: Connection, name: string): Promise<string | undefined> {
  try {
    const config: { id: string } = await r.db(name).config().run(conn);
    return config.id;
  } catch {
    return undefined; // dropped meanwhile
  }
}
