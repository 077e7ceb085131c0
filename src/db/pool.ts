// The database connections of one app instance: a few rethinkdb-ts connections per server,
// each reopened with backoff when it drops. (rethinkdb-ts's own r.connectPool keeps one
// process-wide pool in `r.pool` and drains the previous one when called again, which does not
// fit an app whose dependencies are passed in and which a test may build twice.)
// Queries multiplex over a connection, so changefeeds and writes share them.
import { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RethinkDBConnection } from 'rethinkdb-ts/lib/connection/connection.js';
import { r, type Connection, type RunOptions } from 'rethinkdb-ts';
import type { Logger } from 'pino';
import type { DbAddress, DbServer } from '../config.js';
import type { Metrics } from '../ops/metrics.js';

/** Anything rethinkdb-ts can run on a connection (a query, a selection, a feed...). */
export interface Runnable<T> {
  run(connection: Connection, options?: RunOptions): Promise<T>;
}

export interface Pool {
  /** Runs on an open connection; fails at once with DbUnavailableError when none is open. */
  run<T>(q: Runnable<T>): Promise<T>;
  readonly healthy: boolean;
  /** connections open now, and how many the pool keeps when all is well */
  stats(): { open: number; configured: number };
  /** Resolves once a connection is open; rejects after `timeoutMs`. */
  waitHealthy(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

/** The byte stream under a rethinkdb-ts connection (its RethinkDBConnection's socket), to hear
 *  every answer on it; undefined if the driver's shape is not what 3.x has. */
function wireOf(conn: Connection): Pick<Duplex, 'on' | 'off'> | undefined {
  const inner = (conn as Partial<Pick<RethinkDBConnection, 'socket'>>).socket?.socket;
  return inner instanceof Duplex ? inner : undefined;
}

export class DbUnavailableError extends Error {
  override name = 'DbUnavailableError';
}

export interface PoolOptions {
  log: Logger;
  /** connections per server (default 2) */
  perServer?: number;
  /** first and longest wait between reconnection attempts (ms) */
  backoff?: { min: number; max: number };
  /** how often each connection is pinged, and how long an answer may take before the
   *  connection is taken for dead and closed (ms; default 2000 and 4000) */
  heartbeat?: { everyMs: number; timeoutMs: number };
  /** times every query run through the pool */
  metrics?: Pick<Metrics, 'query'>;
}

/** One connection to the first server that accepts (for schema work, where endex wants its own). */
export async function connectAny(address: DbAddress, log: Logger): Promise<Connection> {
  let last: unknown;
  for (const server of address.servers) {
    try {
      return await connect(server, address, log);
    } catch (e) {
      last = e;
    }
  }
  throw last;
}

function connect(server: DbServer, address: DbAddress, log: Logger): Promise<Connection> {
  // rethinkdb-ts hands `server` to net.connect. Without noDelay, Nagle's algorithm holds a
  // small query back while an earlier one is unacknowledged: milliseconds on every message.
  const socket = { host: server.host, port: server.port, noDelay: true };
  return r.connect({
    server: socket,
    user: address.user,
    password: address.password,
    timeout: 5,
    silent: true,
    log: (m: string) => log.debug({ db: `${server.host}:${server.port}` }, m),
  });
}

export function openPool(address: DbAddress, opts: PoolOptions): Pool {
  const { log } = opts;
  const perServer = opts.perServer ?? 2;
  const backoff = opts.backoff ?? { min: 100, max: 5000 };
  const heartbeat = opts.heartbeat ?? { everyMs: 2000, timeoutMs: 4000 };
  const open: Connection[] = [];
  const stopping = new AbortController();
  let next = 0;
  let waiters: Array<() => void> = [];

  async function keepConnected(server: DbServer): Promise<void> {
    let attempt = 0;
    while (!stopping.signal.aborted) {
      try {
        const conn = await connect(server, address, log);
        if (stopping.signal.aborted) {
          await conn.close().catch(() => undefined);
          return;
        }
        attempt = 0;
        const closed = new Promise<unknown>((resolve) => conn.once('close', resolve));
        open.push(conn);
        for (const w of waiters) w();
        waiters = [];
        const beat = keepAlive(conn, server);
        await closed;
        beat.stop();
        const i = open.indexOf(conn);
        if (i >= 0) open.splice(i, 1);
        if (!stopping.signal.aborted) log.warn({ db: `${server.host}:${server.port}` }, 'database connection closed; reconnecting');
      } catch (e) {
        if (attempt === 0) log.warn({ db: `${server.host}:${server.port}`, err: String(e) }, 'cannot connect to the database; retrying');
      }
      const wait = Math.min(backoff.max, backoff.min * 2 ** attempt++) * (0.75 + Math.random() / 2);
      await sleep(wait, undefined, { signal: stopping.signal }).catch(() => undefined);
    }
  }

  /**
   * A node that dies without closing its sockets (kill -9 of a machine, a cut network) sends
   * nothing more, and a connection to it would wait for ever, with the changefeeds on it. Each
   * connection is pinged; one from which nothing at all is heard (neither the ping's answer nor
   * any other byte) for `timeoutMs` is closed, so its queries fail, its feeds reopen elsewhere
   * and the pool reconnects. A busy connection whose ping waits behind other answers is alive,
   * and so is one whose answers this process has not read yet because its own event loop was
   * held up: a tick that comes late judges nothing. (rethinkdb-ts's own pingInterval waits
   * for its answer without a limit, so it notices only a socket that errors.)
   */
  function keepAlive(conn: Connection, server: DbServer): { stop(): void } {
    const every = Math.min(heartbeat.everyMs, heartbeat.timeoutMs / 2);
    const wire = wireOf(conn);
    let heard = Date.now();
    const onData = () => (heard = Date.now());
    wire?.on('data', onData);
    let waiting: number | undefined;
    let lastTick = Date.now();
    const timer = setInterval(() => {
      const now = Date.now();
      const late = now - lastTick > 2 * every;
      lastTick = now;
      if (waiting !== undefined) {
        const silentMs = now - Math.max(waiting, heard);
        if (late || silentMs < heartbeat.timeoutMs) return;
        log.warn({ db: `${server.host}:${server.port}`, silentMs }, 'database connection does not answer; closing it');
        stop();
        const i = open.indexOf(conn);
        if (i >= 0) open.splice(i, 1);
        void conn.close().catch(() => undefined);
        return;
      }
      const sent = now;
      waiting = sent;
      r.expr(1)
        .run(conn)
        .then(
          () => {
            if (waiting === sent) waiting = undefined;
          },
          () => undefined, // a failing connection closes, and is replaced
        );
    }, every);
    timer.unref();
    function stop() {
      clearInterval(timer);
      wire?.off('data', onData);
    }
    return { stop };
  }

  // A loop caught in a connection attempt during close() closes what it gets and ends by itself.
  for (const s of address.servers) for (let i = 0; i < perServer; i++) void keepConnected(s);

  return {
    get healthy() {
      return open.length > 0;
    },
    stats: () => ({ open: open.length, configured: address.servers.length * perServer }),
    run<T>(q: Runnable<T>): Promise<T> {
      if (open.length === 0) return Promise.reject(new DbUnavailableError('no open database connection'));
      const conn = open[next++ % open.length];
      const metrics = opts.metrics;
      if (!metrics) return q.run(conn);
      const started = performance.now();
      return q.run(conn).then(
        (v) => {
          metrics.query(performance.now() - started, true);
          return v;
        },
        (e: unknown) => {
          metrics.query(performance.now() - started, false);
          throw e;
        },
      );
    },
    waitHealthy(timeoutMs) {
      if (open.length > 0) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters = waiters.filter((w) => w !== done);
          reject(new DbUnavailableError(`could not connect to the database (${address.servers.map((s) => `${s.host}:${s.port}`).join(', ')}) within ${timeoutMs} ms`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          resolve();
        };
        waiters.push(done);
      });
    },
    async close() {
      stopping.abort();
      await Promise.all(open.splice(0).map((c) => c.close().catch(() => undefined)));
    },
  };
}
