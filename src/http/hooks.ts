// Webhooks over HTTP. `incoming`: POST /hooks/:secret, Slack's incoming-webhook endpoint (a
// JSON body, or a form with `payload=`), answered as Slack answers, in plain text: 200 ok;
// 400 invalid_payload / no_text; 403 invalid_token (revoked); 404 no_service (no such hook)
// or channel_not_found; 410 channel_is_archived; 429 rate_limited with Retry-After. It is
// mounted ahead of the session and CSRF layers (a hook has neither: the secret is the
// credential), and the request log shows its path without the secret (request-log.ts).
// `api`: the admin's hooks under /api/hooks and the deliveries given up on.
import { randomUUID } from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import { RateLimiterRes } from 'rate-limiter-flexible';
import type { Logger } from 'pino';
import { atLeast, type User } from '../accounts/schema.js';
import type { AccountStore } from '../accounts/store.js';
import type { Access } from '../chat/access.js';
import type { Posting } from '../chat/posting.js';
import type { RoomStore } from '../rooms/store.js';
import { ApiError } from './api.js';
import { endpoints, type ApiDoc } from './endpoints.js';
import type { Limiter, Rule } from './limits.js';
import { logOf } from './request-log.js';
import { HookInputError, hookUrl, newHook, type Hook, type Hooks } from '../integrations/hooks.js';
import type { Outbox } from '../integrations/outbox.js';
import { noMetrics, type Metrics } from '../ops/metrics.js';
import { bodyOf, displayOf, incomingPayload, safeAttachments } from '../integrations/slack.js';

export interface HooksHttpOptions {
  hooks: Hooks;
  outbox: Outbox;
  access: Access;
  rooms: RoomStore;
  users: AccountStore;
  posting: Posting;
  metrics?: Pick<Metrics, 'webhook'>;
  limiter: (rule: Rule) => Limiter;
  /** posts per minute per hook, unless the hook says */
  perMinute: number;
  /** PUBLIC_URL; otherwise the URL the request came in on */
  publicUrl?: string;
  log: Logger;
  doc: ApiDoc;
}

const answer = (res: Response, status: number, text: string) => void res.status(status).type('text/plain').send(text);

export function incomingHooks(opts: HooksHttpOptions): express.Router {
  const { hooks, access, rooms, users, posting } = opts;
  const metrics = opts.metrics ?? noMetrics;
  /** Slack's plain-text answer; every answer to a post is counted here, stored or refused. */
  const slack = (res: Response, status: number, text: string) => {
    metrics.webhook('incoming', status === 200 ? 'ok' : 'failed');
    answer(res, status, text);
  };
  const router = express.Router();
  const limiters = new Map<number, Limiter>();
  const limiterOf = (points: number) => {
    let l = limiters.get(points);
    if (!l) limiters.set(points, (l = opts.limiter({ keyPrefix: `hook-${points}`, points, duration: 60 })));
    return l;
  };
  // Slack's clients send JSON, or a form with the JSON in `payload`; some send JSON as text.
  const parsers = [express.json({ limit: '256kb', type: ['application/json', 'text/json'] }), express.urlencoded({ extended: false, limit: '256kb' }), express.text({ limit: '256kb', type: 'text/plain' })];

  async function handle(req: Request, res: Response): Promise<void> {
    const hook = await hooks.bySecret(String(req.params.secret ?? ''));
    if (!hook || hook.kind !== 'incoming') return slack(res, 404, 'no_service');
    if (hook.revoked) return slack(res, 403, 'invalid_token');
    try {
      await limiterOf(hook.perMinute ?? opts.perMinute).consume(hook.id);
    } catch (e) {
      if (!(e instanceof RateLimiterRes)) throw e;
      res.set('Retry-After', String(Math.max(1, Math.ceil(e.msBeforeNext / 1000))));
      return slack(res, 429, 'rate_limited');
    }
    let raw: unknown = req.body;
    if (typeof raw === 'object' && raw !== null && !Array.isArray(raw) && typeof (raw as { payload?: unknown }).payload === 'string') raw = (raw as { payload: string }).payload;
    if (typeof raw === 'string') {
      try {
        raw = JSON.parse(raw);
      } catch {
        return slack(res, 400, 'invalid_payload');
      }
    }
    const parsed = incomingPayload.safeParse(raw);
    if (!parsed.success || typeof raw !== 'object' || raw === null || Array.isArray(raw)) return slack(res, 400, 'invalid_payload');
    const p = parsed.data;
    const attachments = safeAttachments(p);
    const body = bodyOf(p, attachments);
    if (body.trim() === '' && attachments.length === 0) return slack(res, 400, 'no_text');

    // The room: the hook's, or one of those it may post to, by id or name (#name).
    let roomId = hook.roomId;
    if (p.channel !== undefined && p.channel.trim() !== '') {
      const want = p.channel.trim().replace(/^#/, '').toLowerCase();
      let found: string | undefined;
      for (const id of hook.rooms) {
        const room = id === want ? { id } : await rooms.room(id);
        if (room && (room.id === want || ('name' in room && room.name.toLowerCase() === want))) {
          found = room.id;
          break;
        }
      }
      if (!found) return slack(res, 404, 'channel_not_found');
      roomId = found;
    }
    const bot = await users.userById(hook.botId);
    if (!bot || bot.disabled) return slack(res, 403, 'invalid_token');
    // The hook's bot is asked of the access module as anyone is.
    const c = await access.check({ user: bot }, roomId, 'post');
    if (!c.ok) return c.code === 'not_found' ? slack(res, 404, 'channel_not_found') : /archived/.test(c.reason) ? slack(res, 410, 'channel_is_archived') : slack(res, 403, 'action_prohibited');
    await posting.post(bot, c.room, { id: randomUUID(), body, attachments, display: displayOf(p) ?? { username: hook.name } });
    slack(res, 200, 'ok');
  }

  router.post('/hooks/:secret', ...parsers, (req: Request, res: Response, next: NextFunction) => {
    handle(req, res).catch((e: unknown) => {
      logOf(res, opts.log).error({ err: String(e), hook: 'incoming' }, 'incoming webhook failed');
      if (!res.headersSent) slack(res, 500, 'internal_error');
      else next(e);
    });
  });
  // Bodies a hook cannot read are Slack's invalid_payload, not the app's error page.
  router.use('/hooks', (err: Error & { status?: number }, _req: Request, res: Response, next: NextFunction) => {
    if (typeof err.status === 'number' && err.status >= 400 && err.status < 500) return slack(res, err.status === 413 ? 413 : 400, err.status === 413 ? 'request_too_large' : 'invalid_payload');
    next(err);
  });
  return router;
}

const viewHook = (h: Hook) => ({ id: h.id, kind: h.kind, name: h.name, roomId: h.roomId, rooms: h.rooms, botId: h.botId, createdAt: h.createdAt.toISOString(), revoked: h.revoked, ...(h.kind === 'outgoing' ? { url: h.url, triggerWords: h.triggerWords ?? [] } : { perMinute: h.perMinute ?? null }) });

export function hooksApi(opts: HooksHttpOptions): express.Router {
  const { hooks, outbox, access, users } = opts;
  const router = express.Router();
  const define = endpoints(router, opts.doc);

  /** Admins; a room's owner too when the workspace allows it. Asked of the access module. */
  async function mayManage(me: User, roomId: string): Promise<void> {
    const c = await access.check({ user: me }, roomId, 'manage');
    if (!c.ok) throw c.code === 'not_found' ? new ApiError(404, 'not_found', 'no such room') : new ApiError(403, 'forbidden', c.reason);
    if (atLeast(me.role, 'admin')) return;
    if (!(await users.settings()).ownersMayCreateHooks || c.room.ownerId !== me.id) throw new ApiError(403, 'forbidden', 'only admins make webhooks here');
  }

  define({ method: 'get', path: '/api/hooks', tag: 'webhooks', summary: 'Every webhook, and the deliveries given up on', needs: 'admin' }, async () => {
    const failed = await outbox.failed(100);
    return { hooks: (await hooks.list()).map(viewHook), failed: failed.map((f) => ({ id: f.id, hookId: f.hookId, roomId: f.roomId, messageId: f.messageId, attempts: f.attempts, lastError: f.lastError ?? '', at: new Date(f.doneAt ?? f.createdAt).toISOString() })) };
  });

  define({ method: 'post', path: '/api/hooks', tag: 'webhooks', summary: "Make a webhook: an incoming one's URL, or an outgoing one's signing secret and token, are in this answer only", body: newHook, status: 201 }, async ({ req, me, body }) => {
    await mayManage(me, body.roomId);
    try {
      const made = await hooks.create(body, me.id);
      const base = opts.publicUrl ?? `${req.protocol}://${req.get('host') ?? 'localhost'}`;
      return { hook: viewHook(made.hook), ...(made.secret ? { url: hookUrl(base, made.secret) } : { signingSecret: made.signingSecret, token: made.token }) };
    } catch (e) {
      if (e instanceof HookInputError) throw new ApiError(400, 'invalid', e.message);
      throw e;
    }
  });

  define({ method: 'delete', path: '/api/hooks/:id', tag: 'webhooks', summary: 'Revoke a webhook (an incoming one then answers 403)' }, async ({ me, param }) => {
    const hook = await hooks.byId(param('id'));
    if (!hook) throw new ApiError(404, 'not_found', 'no such webhook');
    await mayManage(me, hook.roomId);
    await hooks.revoke(hook.id);
    return undefined;
  });

  return router;
}
