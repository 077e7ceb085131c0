// What one app process counts, for GET /metrics in Prometheus's text format (prom-client).
// Each app has a registry of its own (a test may build two apps in one process). Counters and
// histograms are moved by the modules that see the event, through the small interface below
// (passed in by createApp; a module built without it counts nothing). Gauges of state (sockets,
// feeds, database connections) are read from the modules' own stats when scraped.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export type LoginResult = 'ok' | 'failed' | 'rate_limited';
/** incoming: a post stored (ok) or refused (failed); outgoing: a try that reached the target and
 *  was settled (ok), one that failed and will be tried again (failed), or the last (gave_up) */
export type WebhookOutcome = 'ok' | 'failed' | 'gave_up';

export interface Metrics {
  /** a message was stored (not a resend of one already stored) */
  messageStored(): void;
  /** a room's feed handed one message to this many sockets */
  delivered(sockets: number): void;
  /** from a message's `sent` (the database's clock) to the end of its fan-out here, in ms */
  fanOutLatency(ms: number): void;
  /** a room's feed reopened: the gap backfilled (with this many messages), or too long a gap
   *  and the room restarted from fresh history */
  feedReopened(outcome: 'backfilled' | 'restarted', messages: number): void;
  /** a query answered (ok) or failed after this many ms */
  query(ms: number, ok: boolean): void;
  login(result: LoginResult): void;
  webhook(kind: 'incoming' | 'outgoing', outcome: WebhookOutcome): void;
}

/** What the gauges read when scraped. */
export interface MetricsSources {
  /** open sockets by engine.io transport ('websocket', 'polling') */
  sockets(): Record<string, number>;
  feeds(): { rooms: number; subscribers: number; openFeeds: number };
  pool(): { open: number; configured: number };
}

export interface AppMetrics extends Metrics {
  /** the text of one scrape */
  scrape(): Promise<{ contentType: string; body: string }>;
}

/** For modules built without metrics (tests, tools). */
export const noMetrics: Metrics = {
  messageStored: () => undefined,
  delivered: () => undefined,
  fanOutLatency: () => undefined,
  feedReopened: () => undefined,
  query: () => undefined,
  login: () => undefined,
  webhook: () => undefined,
};

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const QUERY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Always reported, 0 when no socket uses them, so that a dashboard's series exist. */
const TRANSPORTS = ['websocket', 'polling'];

export function createMetrics(sources: MetricsSources): AppMetrics {
  const registers = [new Registry()];
  const [registry] = registers;
  // Memory, CPU, event-loop delay (nodejs_eventloop_lag_*), GC, handles.
  collectDefaultMetrics({ register: registry });

  new Gauge({
    name: 'chat_sockets',
    help: 'Open sockets on this process, by engine.io transport.',
    labelNames: ['transport'],
    registers,
    collect() {
      const by = sources.sockets();
      for (const t of new Set([...TRANSPORTS, ...Object.keys(by)])) this.set({ transport: t }, by[t] ?? 0);
    },
  });
  const feeds = (name: string, help: string, read: (s: ReturnType<MetricsSources['feeds']>) => number) =>
    new Gauge({ name, help, registers, collect() { this.set(read(sources.feeds())); } });
  feeds('chat_room_feeds_open', 'Rooms whose changefeed is open on this process (one feed per room, shared by its sockets).', (s) => s.openFeeds);
  feeds('chat_rooms_active', 'Rooms this process has sockets in (feed open or being opened).', (s) => s.rooms);
  feeds('chat_room_subscribers', 'Sockets subscribed to room feeds on this process (a socket watching 20 rooms counts 20).', (s) => s.subscribers);
  new Gauge({ name: 'chat_db_connections_open', help: 'Database connections of this process that are open.', registers, collect() { this.set(sources.pool().open); } });
  new Gauge({ name: 'chat_db_connections_configured', help: 'Database connections this process keeps (per server, times servers).', registers, collect() { this.set(sources.pool().configured); } });

  const stored = new Counter({ name: 'chat_messages_stored_total', help: 'Messages stored through this process (a resend of a stored id not counted).', registers });
  const delivered = new Counter({ name: 'chat_messages_delivered_total', help: 'Messages handed to sockets by the room feeds of this process: one per socket per message.', registers });
  const fanOut = new Histogram({
    name: 'chat_message_fanout_seconds',
    help: "Stored to fanned out: from a message's sent time (the database's clock, at insert) to the end of this process's fan-out of it to the room's sockets, once per message per room feed, for messages that came live through the feed (not backfills). Includes any difference between the database's clock and this process's.",
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const reopens = new Counter({ name: 'chat_room_feed_reopens_total', help: "Room feeds reopened after an error: the gap backfilled, or (restarted) too long to backfill and the room's sockets sent fresh history.", labelNames: ['outcome'], registers });
  const backfilled = new Counter({ name: 'chat_room_feed_backfilled_messages_total', help: 'Messages written while a room feed was down and delivered when it reopened.', registers });
  const queries = new Histogram({ name: 'chat_db_query_duration_seconds', help: 'Database queries of this process, from sent to answered (or failed); a changefeed until it opens.', labelNames: ['outcome'], buckets: QUERY_BUCKETS, registers });
  const logins = new Counter({ name: 'chat_logins_total', help: 'Log-in attempts: ok, failed (unknown name, wrong password or disabled account) and rate_limited.', labelNames: ['result'], registers });
  const webhooks = new Counter({
    name: 'chat_webhook_deliveries_total',
    help: 'Webhooks: incoming posts stored (ok) or refused (failed); outgoing deliveries done (ok), tries failed and to be retried (failed), and deliveries given up on (gave_up).',
    labelNames: ['kind', 'outcome'],
    registers,
  });
  // Every series of a labelled counter exists from the start (a rate over "no series" is no rate).
  for (const result of ['ok', 'failed', 'rate_limited']) logins.inc({ result }, 0);
  for (const outcome of ['backfilled', 'restarted']) reopens.inc({ outcome }, 0);
  for (const outcome of ['ok', 'failed']) webhooks.inc({ kind: 'incoming', outcome }, 0);
  for (const outcome of ['ok', 'failed', 'gave_up']) webhooks.inc({ kind: 'outgoing', outcome }, 0);

  return {
    messageStored: () => stored.inc(),
    delivered: (n) => {
      if (n > 0) delivered.inc(n);
    },
    fanOutLatency: (ms) => fanOut.observe(Math.max(0, ms) / 1000),
    feedReopened: (outcome, n) => {
      reopens.inc({ outcome });
      if (n > 0) backfilled.inc(n);
    },
    query: (ms, ok) => queries.observe({ outcome: ok ? 'ok' : 'error' }, ms / 1000),
    login: (result) => logins.inc({ result }),
    webhook: (kind, outcome) => webhooks.inc({ kind, outcome }),
    async scrape() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}
