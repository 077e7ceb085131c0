// The server's configuration: the environment, parsed once at start by one schema. A wrong
// value stops the server with a message naming the setting.
import { z } from 'zod';
import { hashMetricsToken } from './http/metrics.js';

export interface DbServer {
  host: string;
  port: number;
}

/** Where the database is and who we are to it (parsed from RETHINKDB_URL). */
export interface DbAddress {
  servers: DbServer[];
  user: string;
  password: string;
}

const DEFAULT_DB = 'chat';
const DEFAULT_REQL_PORT = 28015;

/** `rethinkdb://[user:password@]host:port[,host:port...][/db]` */
export function parseRethinkdbUrl(url: string): { address: DbAddress; db: string } {
  const m = /^rethinkdb:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/?#]+)(?:\/([^/?#]*))?$/.exec(url);
  if (!m) throw new Error('must look like rethinkdb://[user:password@]host:port[,host:port...][/db]');
  const [, user, password, hostList, db] = m;
  const servers = hostList.split(',').map((hp) => {
    const hm = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::(\d+))?$/.exec(hp);
    if (!hm) throw new Error(`has a bad host:port "${hp}"`);
    const port = hm[2] === undefined ? DEFAULT_REQL_PORT : Number(hm[2]);
    if (!(port >= 1 && port <= 65535)) throw new Error(`has a bad port in "${hp}"`);
    return { host: hm[1].replace(/^\[(.*)\]$/, '$1'), port };
  });
  const dbName = db ? decodeURIComponent(db) : DEFAULT_DB;
  if (!/^\w+$/.test(dbName)) throw new Error(`names database "${dbName}"; RethinkDB names are letters, digits and _`);
  return {
    address: {
      servers,
      user: user ? decodeURIComponent(user) : 'admin',
      password: password ? decodeURIComponent(password) : '',
    },
    db: dbName,
  };
}

const int = (min: number, max: number) =>
  z.coerce.number().int(`must be a whole number`).min(min, `must be at least ${min}`).max(max, `must be at most ${max}`);

/** The inverse of parseRethinkdbUrl: RETHINKDB_URL for an address and database. */
export function formatRethinkdbUrl(address: DbAddress, db: string): string {
  const auth = address.password ? `${encodeURIComponent(address.user)}:${encodeURIComponent(address.password)}@` : '';
  const hosts = address.servers.map((s) => `${s.host.includes(':') ? `[${s.host}]` : s.host}:${s.port}`).join(',');
  return `rethinkdb://${auth}${hosts}/${db}`;
}

const envSchema = z.object({
  PORT: int(0, 65535).default(5000),
  /** 127.0.0.1 unless told otherwise (or on a dyno, where DYNO is set: 0.0.0.0). */
  HOST: z.string().min(1).default('127.0.0.1'),
  RETHINKDB_URL: z
    .string()
    .transform((url, ctx) => {
      try {
        return parseRethinkdbUrl(url);
      } catch (e) {
        ctx.addIssue({ code: 'custom', message: (e as Error).message });
        return z.NEVER;
      }
    })
    .optional(),
  /** copies of every table on a RethinkDB cluster (applied at release and start); unset:
   *  new tables get 1 and existing ones are left as they are */
  RETHINKDB_REPLICAS: int(1, 16).optional(),
  /** shards of every table, likewise */
  RETHINKDB_SHARDS: int(1, 64).optional(),
  /** The embedded database keeps its files in DATA_DIR/reql (the same place `npm run db` uses by default). */
  DATA_DIR: z.string().min(1).default('./data'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  HISTORY_LIMIT: int(1, 1000).default(100),
  RATE_LIMIT_BURST: int(1, 10_000).default(30),
  RATE_LIMIT_PER_SECOND: z.coerce.number().positive('must be more than 0').max(10_000).default(5),
  SCHEMA_LOCK_STALE_SECONDS: int(1, 3600).default(60),
  /** how much later than its timestamp a message may commit, plus the clock difference
   *  between database nodes, with nothing lost on resume or backfill */
  REORDER_WINDOW_SECONDS: z.coerce.number().min(1, 'must be at least 1').max(300, 'must be at most 300').default(5),
  /** how long a message is tried again while the database does not take writes (a cluster
   *  electing a new primary), before the sender is told to send it again */
  SEND_RETRY_SECONDS: z.coerce.number().min(0, 'must be at least 0').max(120, 'must be at most 120').default(10),
  /** a session unused this long ends (each use slides it) */
  SESSION_DAYS: int(1, 3650).default(30),
  /** Express's `trust proxy`: the number of proxies in front, `loopback`, or addresses/subnets;
   *  then X-Forwarded-For and -Proto are believed (client address, Secure cookies) */
  TRUST_PROXY: z
    .string()
    .regex(/^(\d+|true|false|loopback|linklocal|uniquelocal|[0-9a-fA-F.:/, ]+)$/, 'must be a number of proxies, true, false, loopback, linklocal, uniquelocal or addresses')
    .optional(),
  /** the article's open rooms: anyone joins one by name and posts under a display name */
  ANONYMOUS_ROOMS: z.enum(['0', '1'], 'must be 0 or 1').default('0'),
  LOGIN_RATE_LIMIT_PER_ACCOUNT: int(1, 100_000).default(10),
  LOGIN_RATE_LIMIT_PER_ADDRESS: int(1, 100_000).default(50),
  SIGNUP_RATE_LIMIT_PER_ADDRESS: int(1, 100_000).default(20),
  /** how often a process writes its heartbeat row (`npm run status`); it counts as gone after
   *  three beats missed */
  HEARTBEAT_SECONDS: z.coerce.number().min(0.2, 'must be at least 0.2').max(60, 'must be at most 60').default(5),
  /** the process's name on a Procfile platform (`web.1`), set by Heroku and Dokku */
  DYNO: z.string().min(1).max(200).optional(),
  /** serve GET /metrics on this port (on HOST) instead of the app's */
  METRICS_PORT: int(0, 65535).optional(),
  /** the largest file one may upload, in bytes (refused with 413 as soon as it is passed) */
  MAX_UPLOAD_BYTES: int(1, 1024 ** 4).default(100 * 1024 * 1024),
  /** keep uploaded files in this directory (shared by every process) instead of the database */
  UPLOAD_DIR: z.string().min(1).optional(),
  /** images of more pixels get no thumbnail: they are refused as a likely decompression bomb */
  THUMB_MAX_MEGAPIXELS: z.coerce.number().min(1, 'must be at least 1').max(1000, 'must be at most 1000').default(50),
  /** how often a process tries to run the file and message retention sweep (one at a time) */
  RETENTION_SWEEP_SECONDS: z.coerce.number().min(1, 'must be at least 1').max(86_400, 'must be at most 86400').default(600),
  /** then /metrics wants `Authorization: Bearer <it>` from everyone (else: this machine only) */
  /** the address people reach the app at, for the webhook URLs the admin tools print */
  PUBLIC_URL: z.url('must be a URL').regex(/^https?:\/\//, 'must be http(s)').optional(),
  /** incoming webhooks: posts per minute one hook takes before 429 (each hook may set its own) */
  INCOMING_HOOK_PER_MINUTE: int(1, 1_000_000).default(60),
  /** outgoing webhooks: how long a target has to answer, the first retry's wait (doubled
   *  each try), and the tries before a delivery is given up as failed */
  OUTGOING_HOOK_TIMEOUT_SECONDS: z.coerce.number().min(0.1, 'must be at least 0.1').max(300, 'must be at most 300').default(10),
  OUTGOING_HOOK_BACKOFF_SECONDS: z.coerce.number().min(0.01, 'must be at least 0.01').max(3600, 'must be at most 3600').default(5),
  OUTGOING_HOOK_MAX_ATTEMPTS: int(1, 100).default(5),
  /** how often each process looks for deliveries due (retries, and claims left by a dead process) */
  OUTGOING_HOOK_POLL_SECONDS: z.coerce.number().min(0.05, 'must be at least 0.05').max(600, 'must be at most 600').default(2),
  METRICS_TOKEN: z.string().min(16, 'must be at least 16 characters').max(1000, 'must be at most 1000 characters').regex(/^\S+$/, 'must have no spaces').optional(),
  /** single sign-on (src/accounts/oidc.ts): the OpenID provider's issuer URL; unset: no SSO */
  OIDC_ISSUER: z.url('must be a URL').optional(),
  OIDC_CLIENT_ID: z.string().min(1).max(255).optional(),
  /** never logged or echoed */
  OIDC_CLIENT_SECRET: z.string().min(1).max(1000).optional(),
  OIDC_SCOPES: z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+( [\x21\x23-\x5b\x5d-\x7e]+)*$/, 'must be scopes separated by single spaces').refine((s) => s.split(' ').includes('openid'), 'must include openid').default('openid email profile'),
  /** where the roles or groups are in the claims, a dotted path (Keycloak's client roles:
   *  resource_access.CLIENT.roles) */
  OIDC_ROLES_CLAIM: z.string().min(1).max(200).default('roles'),
  /** the value in that claim that lets a person in; unset: everyone the provider signs in */
  OIDC_ACCESS_VALUE: z.string().min(1).max(200).optional(),
  /** the value that makes a person an admin (never the owner) */
  OIDC_ADMIN_VALUE: z.string().min(1).max(200).optional(),
  /** the button's text on the log-in page */
  OIDC_BUTTON: z.string().min(1).max(80).default('Log in with single sign-on'),
  /** the callback the provider has registered; unset: /auth/oidc/callback on the request's host */
  OIDC_REDIRECT_URI: z.url('must be a URL').optional(),
  /** talk plain http to a provider that is not on a loopback address (loopback ones always may) */
  OIDC_ALLOW_HTTP: z.enum(['0', '1'], 'must be 0 or 1').default('0'),
  /** off: log-in only through the provider, sign-up closed; owners and admins keep a
   *  break-glass local log-in at /login?local */
  LOCAL_LOGIN: z.enum(['on', 'off'], 'must be on or off').default('on'),
});

const configSchema = envSchema.transform((e) => ({
  port: e.PORT,
  host: e.HOST,
  /** absent: start the embedded database */
  database: e.RETHINKDB_URL?.address,
  dbName: e.RETHINKDB_URL?.db ?? DEFAULT_DB,
  dbLayout: { replicas: e.RETHINKDB_REPLICAS, shards: e.RETHINKDB_SHARDS },
  dataDir: e.DATA_DIR,
  logLevel: e.LOG_LEVEL,
  historyLimit: e.HISTORY_LIMIT,
  rateLimit: { burst: e.RATE_LIMIT_BURST, perSecond: e.RATE_LIMIT_PER_SECOND },
  schemaLockStaleMs: e.SCHEMA_LOCK_STALE_SECONDS * 1000,
  reorderWindowMs: e.REORDER_WINDOW_SECONDS * 1000,
  sendRetryMs: e.SEND_RETRY_SECONDS * 1000,
  sessionDays: e.SESSION_DAYS,
  anonymousRooms: e.ANONYMOUS_ROOMS === '1',
  trustProxy: e.TRUST_PROXY === undefined ? false : /^\d+$/.test(e.TRUST_PROXY) ? Number(e.TRUST_PROXY) : e.TRUST_PROXY === 'true' ? true : e.TRUST_PROXY === 'false' ? false : e.TRUST_PROXY,
  authLimits: {
    loginPerAccount: e.LOGIN_RATE_LIMIT_PER_ACCOUNT,
    loginPerAddress: e.LOGIN_RATE_LIMIT_PER_ADDRESS,
    signupPerAddress: e.SIGNUP_RATE_LIMIT_PER_ADDRESS,
  },
  heartbeatMs: e.HEARTBEAT_SECONDS * 1000,
  dyno: e.DYNO,
  hooks: {
    publicUrl: e.PUBLIC_URL?.replace(/\/+$/, ''),
    incomingPerMinute: e.INCOMING_HOOK_PER_MINUTE,
    timeoutMs: e.OUTGOING_HOOK_TIMEOUT_SECONDS * 1000,
    backoffMs: e.OUTGOING_HOOK_BACKOFF_SECONDS * 1000,
    maxAttempts: e.OUTGOING_HOOK_MAX_ATTEMPTS,
    pollMs: e.OUTGOING_HOOK_POLL_SECONDS * 1000,
  },
  files: { maxBytes: e.MAX_UPLOAD_BYTES, dir: e.UPLOAD_DIR, thumbMaxPixels: Math.round(e.THUMB_MAX_MEGAPIXELS * 1_000_000), sweepMs: e.RETENTION_SWEEP_SECONDS * 1000 },
  /** the token itself is not kept: its SHA-256, to compare with */
  metrics: { port: e.METRICS_PORT, tokenHash: e.METRICS_TOKEN === undefined ? undefined : hashMetricsToken(e.METRICS_TOKEN) },
  oidc:
    e.OIDC_ISSUER === undefined
      ? undefined
      : {
          issuer: e.OIDC_ISSUER,
          clientId: e.OIDC_CLIENT_ID ?? '',
          clientSecret: e.OIDC_CLIENT_SECRET,
          scopes: e.OIDC_SCOPES,
          rolesClaim: e.OIDC_ROLES_CLAIM,
          accessValue: e.OIDC_ACCESS_VALUE,
          adminValue: e.OIDC_ADMIN_VALUE,
          button: e.OIDC_BUTTON,
          redirectUri: e.OIDC_REDIRECT_URI,
          allowHttp: e.OIDC_ALLOW_HTTP === '1',
        },
  localLogin: e.LOCAL_LOGIN === 'on',
}));

export type Config = z.output<typeof configSchema>;
export const CONFIG_KEYS = Object.keys(envSchema.shape);

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function loadConfig(env: Record<string, string | undefined>): Config {
  // An empty variable means unset (`PORT= npm start`), not zero.
  const present = Object.fromEntries(
    CONFIG_KEYS.filter((k) => env[k] !== undefined && env[k] !== '').map((k) => [k, env[k]]),
  );
  // On a Procfile platform (DYNO is set) the router reaches the web dyno from outside.
  if (present.HOST === undefined && env.DYNO) present.HOST = '0.0.0.0';
  const parsed = configSchema.safeParse(present);
  if (parsed.success) {
    const { database, dbLayout } = parsed.data;
    if (!database && ((dbLayout.replicas ?? 1) > 1 || (dbLayout.shards ?? 1) > 1)) {
      throw new ConfigError(
        'invalid configuration:\n  RETHINKDB_REPLICAS / RETHINKDB_SHARDS: the embedded database is one process on one machine: it keeps one copy of each table and does not shard, so only 1 is possible. For more copies, run a RethinkDB cluster and set RETHINKDB_URL (see the README\'s cluster guide).',
      );
    }
    if (parsed.data.metrics.port !== undefined && parsed.data.metrics.port !== 0 && parsed.data.metrics.port === parsed.data.port) {
      throw new ConfigError('invalid configuration:\n  METRICS_PORT: is the app\'s PORT; leave it unset to serve /metrics on the app\'s port');
    }
    if (parsed.data.oidc && !parsed.data.oidc.clientId) throw new ConfigError('invalid configuration:\n  OIDC_CLIENT_ID: must be set with OIDC_ISSUER');
    if (!parsed.data.localLogin && !parsed.data.oidc) throw new ConfigError('invalid configuration:\n  LOCAL_LOGIN: off needs single sign-on (OIDC_ISSUER, OIDC_CLIENT_ID), or nobody but owners and admins could log in');
    return parsed.data;
  }
  const lines = parsed.error.issues.map((i) => {
    const key = String(i.path[0] ?? '?');
    const shown = key === 'RETHINKDB_URL' || key === 'METRICS_TOKEN' || key === 'OIDC_CLIENT_SECRET' || !(key in present) ? '' : ` (got ${JSON.stringify(present[key])})`;
    return `  ${key}: ${i.message}${shown}`;
  });
  // RETHINKDB_URL may hold a password, METRICS_TOKEN and OIDC_CLIENT_SECRET are ones: never echo them.
  throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
}
