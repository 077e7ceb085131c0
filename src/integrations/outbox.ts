// Outgoing-webhook deliveries: durable, and posted back exactly once across processes.
//
// A person's message that starts a hook becomes a row of the outbox (id `<message>:<hook>`, so
// queuing it again on a resend changes nothing). Any process may deliver it, but first it
// claims the row: one conditional update of the row (pending, due, no live claim) that only
// one process can win, as a single-row update is atomic. The claim is a lease: a process that
// dies holding it loses it when it expires, and another one takes the row. A reply is posted
// with an id made from the row's id, so a delivery made twice (the lease ran out, or the
// process died after posting but before marking it done) still posts its reply once. Every
// process watches the table for new rows and looks every `pollMs` for rows due (retries, and
// claims left by a dead process).
import { createHash, createHmac } from 'node:crypto';
import type { Logger } from 'pino';
import { r, type RDatum } from 'rethinkdb-ts';
import { z } from 'zod';
import type { AccountStore } from '../accounts/store.js';
import type { User } from '../accounts/schema.js';
import type { Access } from '../chat/access.js';
import type { Message } from '../chat/message.js';
import type { Posting } from '../chat/posting.js';
import type { Pool } from '../db/pool.js';
import { noMetrics, type Metrics } from '../ops/metrics.js';
import { follow, type Feed, type Followed } from '../db/follow.js';
import { OUTBOX } from '../db/schema.js';
import type { Room } from '../rooms/schema.js';
import type { Hooks, Hook } from './hooks.js';
import { cleanText } from './slack.js';
import { postTo, TargetRefused } from './targets.js';

export const outboxRow = z.object({
  id: z.string(),
  hookId: z.string(),
  roomId: z.string(),
  messageId: z.string(),
  /** the fields Slack's outgoing webhooks send (but the token, made when sent) */
  payload: z.record(z.string(), z.string()),
  state: z.enum(['pending', 'done', 'failed']),
  attempts: z.number(),
  /** epoch ms: not tried again before */
  nextAt: z.number(),
  /** who holds the claim, until when (epoch ms) */
  claimedBy: z.string().nullable(),
  claimUntil: z.number(),
  createdAt: z.number(),
  doneAt: z.number().optional(),
  lastError: z.string().optional(),
  /** the reply posted back, if any */
  replyId: z.string().optional(),
});
export type OutboxRow = z.output<typeof outboxRow>;

export interface OutboxOptions {
  pool: Pool;
  db: string;
  hooks: Hooks;
  users: AccountStore;
  access: Access;
  posting: Posting;
  log: Logger;
  /** this process, as it signs its claims */
  procId: string;
  timeoutMs: number;
  backoffMs: number;
  maxAttempts: number;
  pollMs: number;
  /** the workspace's setting, read for each delivery */
  allowPrivate: () => Promise<boolean>;
  now?: () => number;
  metrics?: Pick<Metrics, 'webhook'>;
}

/** The first trigger word the message starts with ('' for a hook on every message), or
 *  undefined when the hook does not fire. Words are matched whole, case-insensitively. */
export function triggerOf(hook: Pick<Hook, 'triggerWords'>, text: string): string | undefined {
  const words = hook.triggerWords ?? [];
  if (words.length === 0) return '';
  const t = text.trimStart().toLowerCase();
  return words.find((w) => t === w.toLowerCase() || t.startsWith(`${w.toLowerCase()} `) || t.startsWith(`${w.toLowerCase()}\n`));
}

/** Slack's signature: v0=hex(HMAC-SHA256(secret, "v0:<timestamp>:<body>")). */
export function slackSignature(secret: string, timestamp: string, body: string): string {
  return `v0=${createHmac('sha256', secret).update(`v0:${timestamp}:${body}`).digest('hex')}`;
}

/** A UUID made from a delivery's id: its reply's message id, the same on every try. */
export function replyIdOf(outboxId: string): string {
  const h = createHash('sha256').update(`reply:${outboxId}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((parseInt(h[16], 16) & 3) | 8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

const reply = z.object({ text: z.string().optional() }).passthrough();
const writeResult = z.object({ replaced: z.number().default(0), inserted: z.number().default(0), changes: z.array(z.object({ new_val: z.unknown() })).optional() }).passthrough();

export interface Outbox {
  /** Queues the deliveries a person's message starts (idempotent). */
  enqueue(message: Message, room: Room, user: User): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** deliveries given up on, newest first */
  failed(limit: number): Promise<OutboxRow[]>;
  /** Tries to claim and deliver one row now (what the feed and the poll do). */
  kick(id: string): Promise<void>;
}

export function createOutbox(opts: OutboxOptions): Outbox {
  const { pool, db, hooks, users, access, posting, log, procId } = opts;
  const now = opts.now ?? Date.now;
  const metrics = opts.metrics ?? noMetrics;
  const t = () => r.db(db).table(OUTBOX);
  // The lease outlasts a delivery's deadline and the reply's post; a process that dies holding
  // it delays its delivery by this much.
  const leaseMs = 2 * opts.timeoutMs + 5000;
  const inFlight = new Set<string>();
  let stopped = true;
  let poller: NodeJS.Timeout | undefined;
  let feed: Followed | undefined;

  async function claim(id: string): Promise<OutboxRow | undefined> {
    const at = now();
    const res = writeResult.parse(
      await pool.run(
        t()
          .get(id)
          .update((o: RDatum) => r.branch(o('state').eq('pending').and(o('claimUntil').lt(at)).and(o('nextAt').le(at)), { claimedBy: procId, claimUntil: at + leaseMs, attempts: o('attempts').add(1) }, {}), { returnChanges: true }),
      ),
    );
    if (res.replaced !== 1) return undefined;
    const row = res.changes?.[0]?.new_val;
    return row ? outboxRow.parse(row) : undefined;
  }

  /** Writes the outcome, if this process still holds the claim. */
  async function settle(id: string, patch: Record<string, unknown>): Promise<void> {
    await pool.run(
      t()
        .get(id)
        .update((o: RDatum) => r.branch(o('claimedBy').eq(procId).and(o('state').eq('pending')), patch, {})),
    );
  }

  async function fail(row: OutboxRow, reason: string): Promise<void> {
    const last = row.attempts >= opts.maxAttempts;
    const wait = opts.backoffMs * 2 ** (row.attempts - 1);
    log.warn({ delivery: row.id, hook: row.hookId, attempt: row.attempts, reason, gaveUp: last }, 'outgoing webhook delivery failed');
    metrics.webhook('outgoing', last ? 'gave_up' : 'failed');
    await settle(row.id, last ? { state: 'failed', claimedBy: null, claimUntil: 0, lastError: reason, doneAt: now() } : { nextAt: now() + wait, claimedBy: null, claimUntil: 0, lastError: reason });
  }

  async function deliver(row: OutboxRow): Promise<void> {
    const hook = await hooks.byId(row.hookId);
    if (!hook || hook.revoked || !hook.url) {
      metrics.webhook('outgoing', 'gave_up');
      await settle(row.id, { state: 'failed', claimedBy: null, claimUntil: 0, lastError: 'the hook was revoked', doneAt: now() });
      return;
    }
    const { signingSecret, token } = await hooks.secretsOf(hook);
    const body = new URLSearchParams({ token, ...row.payload }).toString();
    const timestamp = String(Math.floor(now() / 1000));
    let answer;
    try {
      answer = await postTo(hook.url, body, {
        'content-type': 'application/x-www-form-urlencoded',
        'user-agent': 'chatroom-of-requirement-webhooks',
        'x-slack-request-timestamp': timestamp,
        'x-slack-signature': slackSignature(signingSecret, timestamp, body),
        // The same on every try of this delivery: a receiver can drop a repeat by it.
        'x-chatroom-delivery': row.id,
        'x-chatroom-attempt': String(row.attempts),
      }, { timeoutMs: opts.timeoutMs, allowPrivate: await opts.allowPrivate() });
    } catch (e) {
      return fail(row, e instanceof TargetRefused ? `refused: ${e.message}` : (e as Error).message);
    }
    if (answer.status < 200 || answer.status >= 300) return fail(row, `the target answered ${answer.status}`);
    let text: string | undefined;
    if (answer.body.trim() !== '') {
      try {
        text = reply.parse(JSON.parse(answer.body)).text;
      } catch {
        text = undefined; // Slack ignores an answer that is not its JSON
      }
    }
    let replyId: string | undefined;
    if (text !== undefined && text.trim() !== '') {
      const bot = await users.userById(hook.botId);
      const c = bot && !bot.disabled ? await access.check({ user: bot }, row.roomId, 'post') : undefined;
      if (!bot || !c?.ok) {
        metrics.webhook('outgoing', 'gave_up');
        await settle(row.id, { state: 'failed', claimedBy: null, claimUntil: 0, lastError: `the hook's bot may not post here: ${c && !c.ok ? c.reason : 'no bot'}`, doneAt: now() });
        return;
      }
      replyId = replyIdOf(row.id);
      await posting.post(bot, c.room, { id: replyId, body: cleanText(text).slice(0, 2000) });
    }
    metrics.webhook('outgoing', 'ok');
    await settle(row.id, { state: 'done', claimedBy: null, claimUntil: 0, doneAt: now(), ...(replyId ? { replyId } : {}) });
  }

  async function kick(id: string): Promise<void> {
    if (stopped || inFlight.has(id)) return;
    inFlight.add(id);
    try {
      const row = await claim(id);
      if (row) await deliver(row);
    } catch (e) {
      log.warn({ delivery: id, err: String(e) }, 'outgoing webhook delivery could not run');
    } finally {
      inFlight.delete(id);
    }
  }

  async function poll(): Promise<void> {
    const at = now();
    const due: unknown[] = await pool.run(t().between(['pending', r.minval], ['pending', at], { index: 'state_next', rightBound: 'closed' }).limit(200));
    for (const raw of due) {
      const row = outboxRow.parse(raw);
      if (row.claimUntil < at) void kick(row.id);
    }
  }

  function watch(): Followed {
    return follow(
      'outbox',
      async (): Promise<Feed<OutboxRow>> => {
        const cursor = await pool.run(t().changes());
        return {
          close: () => cursor.close(),
          async *[Symbol.asyncIterator]() {
            for await (const raw of cursor as AsyncIterable<unknown>) {
              const row = outboxRow.safeParse((raw as { new_val?: unknown }).new_val);
              if (row.success) yield row.data;
            }
          },
        };
      },
      (row) => {
        if (row.state === 'pending' && row.attempts === 0) void kick(row.id);
      },
      // Rows queued while the feed was away are found by the poll, at once.
      { log, onReopen: () => void poll().catch(() => undefined) },
    );
  }

  return {
    kick,
    async enqueue(message, room, user) {
      if (message.bot || message.event || message.deleted) return;
      const found = await hooks.outgoingOf(room.id);
      if (found.length === 0) return;
      const at = now();
      const rows: OutboxRow[] = [];
      for (const hook of found) {
        const word = triggerOf(hook, message.body);
        if (word === undefined) continue;
        rows.push({
          id: `${message.id}:${hook.id}`,
          hookId: hook.id,
          roomId: room.id,
          messageId: message.id,
          payload: { team_id: 'chatroom', channel_id: room.id, channel_name: room.name, timestamp: (message.sent.getTime() / 1000).toFixed(6), user_id: user.id, user_name: user.username, text: message.body, trigger_word: word },
          state: 'pending',
          attempts: 0,
          nextAt: at,
          claimedBy: null,
          claimUntil: 0,
          createdAt: at,
        });
      }
      // A row queued already stays as it is (RethinkDB wants the three arguments).
      if (rows.length > 0) await pool.run(t().insert(rows, { conflict: (_id: RDatum, old: RDatum, _new: RDatum) => old }));
    },
    async start() {
      stopped = false;
      feed = watch();
      await feed.ready;
      const tick = () => {
        poll()
          .catch((e: unknown) => log.warn({ err: String(e) }, 'could not look for deliveries due'))
          .finally(() => {
            if (!stopped) poller = setTimeout(tick, opts.pollMs);
          });
      };
      poller = setTimeout(tick, Math.min(opts.pollMs, 200));
    },
    async stop() {
      stopped = true;
      clearTimeout(poller);
      await feed?.stop();
      // In-flight deliveries finish or lose their claim when it expires.
    },
    async failed(limit) {
      const raw: unknown[] = await pool.run(t().between(['failed', r.minval], ['failed', r.maxval], { index: 'state_next' }));
      return raw.map((x) => outboxRow.parse(x)).sort((a, b) => (b.doneAt ?? 0) - (a.doneAt ?? 0)).slice(0, limit);
    },
  };
}
