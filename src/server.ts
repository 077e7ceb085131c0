// The composition root: config in, database pool, schema, room feeds, sockets and HTTP wired
// together here and nowhere else. `npm start` runs main() below.
import { createServer, type Server } from 'node:http';
import { randomUUID } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Logger } from 'pino';
import { ConfigError, loadConfig, type Config, type DbAddress } from './config.js';
import { createAccounts } from './accounts/service.js';
import { createAccountStore } from './accounts/store.js';
import { createIdentityStore, createSso } from './accounts/oidc.js';
import { oidcRoutes } from './http/oidc.js';
import { createMessageStore } from './db/messages.js';
import { connectAny, openPool } from './db/pool.js';
import { ensureSchema } from './db/schema.js';
import { createHttpApp } from './http/app.js';
import { authRoutes } from './http/auth.js';
import { createLimits } from './http/limits.js';
import { roomsApi } from './http/rooms.js';
import { peopleApi } from './http/people.js';
import { statusApi } from './http/status.js';
import { searchApi } from './http/search.js';
import { createSearch } from './search/service.js';
import { createApiDoc } from './http/endpoints.js';
import { docsApi } from './http/docs.js';
import { metricsEndpoint } from './http/metrics.js';
import { createLogger } from './ops/log.js';
import { createMetrics } from './ops/metrics.js';
import { createHeartbeat } from './ops/heartbeat.js';
import { readStatus } from './ops/status.js';
import { createAccess } from './chat/access.js';
import { createPosting } from './chat/posting.js';
import { createHooks } from './integrations/hooks.js';
import { createOutbox } from './integrations/outbox.js';
import { createTokens } from './integrations/tokens.js';
import { hooksApi, incomingHooks } from './http/hooks.js';
import { tokensApi } from './http/tokens.js';
import { migrateLegacyRooms } from './rooms/legacy.js';
import { createRoomStore } from './rooms/store.js';
import { createRoomFeeds, type RoomFeeds } from './realtime/room-feeds.js';
import { attachRealtime, type Realtime } from './realtime/sockets.js';
import { createPresence, type Presence } from './realtime/presence.js';
import { createSignals } from './realtime/signals.js';
import { startReqlServer } from './reql/index.js';
import { databaseBlobs, directoryBlobs } from './files/blobs.js';
import { createFiles } from './files/store.js';
import { createLease } from './files/lease.js';
import { createRetention } from './files/retention.js';
import { filesApi } from './http/files.js';

export type AppConfig = Config & { database: DbAddress };

export interface App {
  /** `metricsPort`: where /metrics is served when METRICS_PORT is set */
  start(): Promise<{ port: number; metricsPort?: number }>;
  /** Stops accepting, tells sockets to reconnect elsewhere, closes feeds and the pool. */
  stop(): Promise<void>;
  stats(): { sockets: number } & ReturnType<RoomFeeds['stats']>;
}

const CONNECT_TIMEOUT_MS = 30_000;

/** `embeddedDataDir`: the embedded database's directory, when this process runs it (its size
 *  goes into the heartbeat). */
export function createApp(config: AppConfig, deps: { log?: Logger; embeddedDataDir?: string } = {}): App {
  const log = deps.log ?? createLogger(config.logLevel);
  // Its gauges read the modules below when scraped (after start).
  const metrics = createMetrics({ sockets: () => realtime?.transports() ?? {}, feeds: () => feeds.stats(), pool: () => pool.stats() });
  const scrape = metricsEndpoint({ scrape: () => metrics.scrape(), tokenHash: config.metrics.tokenHash, log });
  const pool = openPool(config.database, { log, metrics });
  const store = createMessageStore(pool, config.dbName, { retryWritesForMs: config.sendRetryMs, metrics });
  const accountStore = createAccountStore(pool, config.dbName);
  const roomStore = createRoomStore(pool, config.dbName);
  const access = createAccess({ rooms: roomStore, rules: { anonymousRooms: config.anonymousRooms } });
  // Every new account joins the default channels.
  const joinDefaults = async (user: { id: string; role: string }) => {
    if (user.role === 'guest') return;
    for (const room of await roomStore.byKind('channel')) if (room.isDefault && !room.archived) await roomStore.addMember(room.id, user.id);
  };
  // A person's message may start outgoing webhooks: the outbox (below) queues them.
  // Files' bytes in the database (chunks) unless UPLOAD_DIR names a directory every process shares.
  const files = createFiles({ pool, db: config.dbName, blobs: config.files.dir ? directoryBlobs(config.files.dir) : databaseBlobs(pool, config.dbName), thumbMaxPixels: config.files.thumbMaxPixels });
  const posting = createPosting({ messages: store, rooms: roomStore, users: accountStore, log, afterPost: (m, room, user) => outbox.enqueue(m, room, user) });
  const tokens = createTokens({ pool, db: config.dbName, users: accountStore });
  const hooks = createHooks({ pool, db: config.dbName, users: accountStore, rooms: roomStore });
  const accounts = createAccounts({ store: accountStore, log, sessionDays: config.sessionDays, afterSignup: joinDefaults, localLogin: config.localLogin });
  // Single sign-on, when OIDC_ISSUER is set: discovery runs in the background (start() below).
  const sso = config.oidc && createSso({ settings: config.oidc, users: accountStore, identities: createIdentityStore(pool, config.dbName), accounts, log });
  const limits = createLimits({ pool, db: config.dbName, log });
  let stopWatching: (() => Promise<void>) | undefined;
  const feeds = createRoomFeeds({ store, log, historyLimit: config.historyLimit, reorderWindowMs: config.reorderWindowMs, metrics });
  // Retention runs on one process at a time: the one holding the lease.
  const retention = createRetention({ pool, db: config.dbName, files, rooms: roomStore, settings: () => accountStore.settings(), log, lease: createLease({ pool, db: config.dbName, name: 'retention', holder: randomUUID(), ttlMs: 120_000 }) });
  const heartbeat = createHeartbeat({ pool, db: config.dbName, log, everyMs: config.heartbeatMs, dyno: config.dyno, stats: () => ({ sockets: realtime?.connections() ?? 0, ...feeds.stats() }), embeddedDataDir: deps.embeddedDataDir });
  const outbox = createOutbox({ pool, db: config.dbName, hooks, users: accountStore, access, posting, log, procId: `${heartbeat.id}/${process.pid}`, ...config.hooks, allowPrivate: async () => (await accountStore.settings()).allowPrivateHookTargets, metrics });
  let server: Server | undefined;
  let metricsServer: Server | undefined;
  let realtime: Realtime | undefined;
  let presence: Presence | undefined;
  let schemaReady = false;
  let stopping = false;

  async function ready(): Promise<{ ok: boolean; reason?: string }> {
    if (stopping) return { ok: false, reason: 'shutting down' };
    if (!schemaReady) return { ok: false, reason: 'schema not ready' };
    if (!pool.healthy) return { ok: false, reason: 'no database connection' };
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('database did not answer within 2 s')), 2000);
    });
    try {
      await Promise.race([store.ping(), timeout]);
      return { ok: true };
    } catch (e) {
      return { ok: false, reason: (e as Error).message };
    } finally {
      clearTimeout(timer);
    }
  }

  return {
    async start() {
      await pool.waitHealthy(CONNECT_TIMEOUT_MS);
      const conn = await connectAny(config.database, log);
      try {
        await ensureSchema(conn, config.dbName, { log, staleMs: config.schemaLockStaleMs, layout: config.dbLayout });
      } finally {
        await conn.close().catch(() => undefined);
      }
      // The release phase does this too; here it is for the embedded database and the first start.
      const legacy = await migrateLegacyRooms({ pool, db: config.dbName, rooms: roomStore, anonymousRooms: config.anonymousRooms, log });
      if (legacy.rooms > 0) log.info(legacy, 'old open rooms made public channels');
      schemaReady = true;

      const csrfSecret = await accountStore.secret('csrf');
      // Every endpoint declared below is also described in the API's OpenAPI document.
      const doc = createApiDoc();
      sso?.start();
      const ssoPages = sso && oidcRoutes({ sso, accounts, store: accountStore, secret: await accountStore.secret('oidc-tx'), sessionDays: config.sessionDays, csrfToken: (req, res) => auth.csrfToken(req, res), log });
      const auth = authRoutes({ accounts, store: accountStore, csrfSecret, sessionDays: config.sessionDays, limits: config.authLimits, limiter: limits.limiter, metrics, bearer: (token) => tokens.resolve(token), localLogin: config.localLogin, doc, sso: ssoPages && config.oidc && { button: config.oidc.button, endSession: ssoPages.endSession } });
      // Primus puts itself ahead of the app's handler, so the server is made with it first.
      let library = '';
      const rooms = roomsApi({ access, rooms: roomStore, users: accountStore, messages: store, posting, historyLimit: config.historyLimit, doc });
      const people = peopleApi({ accounts, users: accountStore, rooms: roomStore, doc });
      const hooksHttp = { hooks, outbox, access, rooms: roomStore, users: accountStore, posting, metrics, limiter: limits.limiter, perMinute: config.hooks.incomingPerMinute, publicUrl: config.hooks.publicUrl, log, doc };
      const integrations = [hooksApi(hooksHttp), tokensApi({ tokens, hooks, users: accountStore, doc })];
      const docs = docsApi({ doc });
      const status = statusApi({ read: () => readStatus(pool, config.dbName) });
      const filesRoutes = filesApi({ access, files, messages: store, posting, users: accountStore, maxBytes: config.files.maxBytes, log, doc });
      const search = searchApi({ search: createSearch({ pool, db: config.dbName, access, users: accountStore }), doc });
      server = createServer(createHttpApp({ log, ready, auth, rooms, people, status, files: filesRoutes, search, docs, integrations, incomingHooks: incomingHooks(hooksHttp), access, workspaceName: async () => (await accountStore.settings()).name, primusLibrary: () => library, trustProxy: config.trustProxy, sso: ssoPages?.routes, formActions: config.oidc ? [new URL(config.oidc.issuer).origin] : [], metrics: config.metrics.port === undefined ? scrape : undefined }));
      presence = createPresence({ pool, db: config.dbName, log, procId: heartbeat.id });
      const signals = (deliver: Parameters<typeof createSignals>[0]['deliver']) => createSignals({ pool, db: config.dbName, log, deliver });
      const rt = attachRealtime(server, { feeds, store, log, rateLimit: config.rateLimit, reorderWindowMs: config.reorderWindowMs, sendRetryMs: config.sendRetryMs, accounts, access, rooms: roomStore, posting, users: accountStore, presence, signals });
      realtime = rt;
      library = rt.library;
      // A session deleted anywhere (log-out, password change, a disabled user) closes its
      // sockets here; after a gap in the feed, every open socket's session is checked again.
      const watch = accounts.watchRevocations((id) => rt.revoke(id), () => void rt.recheckSessions());
      stopWatching = () => watch.stop();
      await watch.ready;
      await rt.ready;
      await presence.ready;
      const port = await listen(server, config.port, config.host);
      let metricsPort: number | undefined;
      if (config.metrics.port !== undefined) {
        // Its own listener: nothing but /metrics on it.
        metricsServer = createServer((req, res) => {
          if ((req.url ?? '').split('?')[0] === '/metrics' && (req.method === 'GET' || req.method === 'HEAD')) scrape(req, res);
          else res.writeHead(404, { 'content-type': 'text/plain' }).end('Not found\n');
        });
        metricsPort = await listen(metricsServer, config.metrics.port, config.host);
      }
      await heartbeat.start();
      retention.start(config.files.sweepMs);
      await outbox.start();
      log.info({ port, metricsPort, host: config.host, db: config.dbName }, 'listening');
      return { port, metricsPort };
    },

    async stop() {
      if (stopping) return;
      stopping = true;
      await heartbeat.stop();
      await outbox.stop();
      sso?.stop();
      if (realtime && server) {
        const s = server;
        // Sockets and in-flight requests get a moment to finish; then they are cut.
        const cut = setTimeout(() => s.closeAllConnections(), 3000);
        await realtime.close();
        clearTimeout(cut);
      }
      await stopWatching?.();
      await presence?.stop();
      limits.stop();
      await retention.stop();
      await feeds.close();
      await pool.close();
      const m = metricsServer;
      if (m) {
        const closed = new Promise<void>((resolve) => m.close(() => resolve()));
        m.closeAllConnections(); // a scraper's keep-alive connection
        await closed;
      }
      log.info('stopped');
    },

    stats() {
      return { sockets: realtime?.connections() ?? 0, ...feeds.stats() };
    },
  };
}

/** Listens; the port it got (PORT=0 picks one). */
async function listen(s: Server, port: number, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.listen(port, host, () => {
      s.off('error', reject);
      resolve();
    });
  });
  const address = s.address();
  return typeof address === 'object' && address ? address.port : port;
}

/** The database to use: RETHINKDB_URL's, or the embedded server started here on DATA_DIR. */
export async function openDatabase(config: Config, log: Logger): Promise<{ database: DbAddress; close(): Promise<void>; dataDir?: string }> {
  if (config.database) return { database: config.database, close: async () => undefined };
  const dataDir = join(config.dataDir, 'reql');
  const reql = await startReqlServer({ port: 0, host: '127.0.0.1', dataDir, onWarn: (m) => log.warn({ component: 'reql' }, m) });
  log.info({ dataDir, port: reql.port }, 'embedded database started');
  // `npm run admin` finds the running embedded database here (it holds the data directory).
  const portFile = embeddedPortFile(config.dataDir);
  writeFileSync(portFile, `${reql.host}:${reql.port}\n`);
  return {
    database: { servers: [{ host: reql.host, port: reql.port }], user: 'admin', password: '' },
    dataDir,
    async close() {
      rmSync(portFile, { force: true });
      await reql.close();
    },
  };
}

/** Where a running app says which port its embedded database listens on. */
export function embeddedPortFile(dataDir: string): string {
  return join(dataDir, 'reql.port');
}

export function readConfigOrExit(env: NodeJS.ProcessEnv): Config {
  try {
    return loadConfig(env);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    process.stderr.write(`chatroom: ${e.message}\n`);
    process.exit(1);
  }
}

const SHUTDOWN_DEADLINE_MS = 9_500;

async function main(): Promise<void> {
  const config = readConfigOrExit(process.env);
  const log = createLogger(config.logLevel);
  const db = await openDatabase(config, log);
  const app = createApp({ ...config, database: db.database }, { log, embeddedDataDir: db.dataDir });

  let shuttingDown = false;
  const shutdown = (signal: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    log.info({ signal }, 'shutting down');
    setTimeout(() => {
      log.error('shutdown took too long; exiting');
      process.exit(1);
    }, SHUTDOWN_DEADLINE_MS).unref();
    app
      .stop()
      .then(() => db.close())
      .then(
        () => process.exit(0),
        (e: unknown) => {
          log.error({ err: String(e) }, 'error while shutting down');
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));

  try {
    await app.start();
  } catch (e) {
    log.fatal({ err: String(e) }, 'could not start');
    await app.stop().catch(() => undefined);
    await db.close().catch(() => undefined);
    process.exit(1);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e: unknown) => {
    process.stderr.write(`chatroom: could not start: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
