// The HTTP side: the page (Pug), the account pages and API (auth.ts), static assets, the
// Primus client library, health and readiness.
import { existsSync } from 'node:fs';
import { STATUS_CODES } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { IncomingMessage, ServerResponse } from 'node:http';
import express, { type Request, type Response } from 'express';
import helmet from 'helmet';
import type { Logger } from 'pino';
import { ANONYMOUS, type Access } from '../chat/access.js';
import { LIMITS, roomName } from '../chat/protocol.js';
import { publicUser } from './auth.js';
import { logOf, requestLog } from './request-log.js';

export interface HttpOptions {
  log: Logger;
  /** sessions, CSRF and the account pages (src/http/auth.ts) */
  auth: { before: express.Router; routes: express.Router; csrfToken: (req: Request, res: Response) => string };
  /** the workspace's name, for the page */
  workspaceName: () => Promise<string>;
  /** the Primus client library, served here with the same headers as every other script */
  primusLibrary: () => string;
  access: Access;
  /** the rooms API (src/http/rooms.ts) */
  rooms: express.Router;
  /** people and the workspace (src/http/people.ts) */
  people: express.Router;
  /** the deployment's status for admins (src/http/status.ts) */
  status: express.Router;
  /** uploads and downloads of files (src/http/files.ts) */
  files?: express.Router;
  /** search (src/http/search.ts) */
  search?: express.Router;
  /** the API's OpenAPI document and reference page (src/http/docs.ts) */
  docs: express.Router;
  /** webhooks, API tokens and bots under /api (src/http/hooks.ts, src/http/tokens.ts) */
  integrations?: express.Router[];
  /** POST /hooks/:secret, ahead of sessions and CSRF: the secret is the credential */
  incomingHooks?: express.Router;
  /** Express's `trust proxy` (TRUST_PROXY) */
  trustProxy: boolean | number | string;
  /** single sign-on's pages (src/http/oidc.ts), when it is set up */
  sso?: express.Router;
  /** origins a form may lead to besides this one (the log-out form goes on to the provider) */
  formActions?: string[];
  /** readiness: the database answers and the schema is in place */
  ready(): Promise<{ ok: boolean; reason?: string }>;
  /** GET /metrics (src/http/metrics.ts); absent when it has a port of its own */
  metrics?: (req: IncomingMessage, res: ServerResponse) => void;
}

/** The project root (where views/ and static/ live), from src/ under tsx or dist/src/ when built. */
function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the project root');
    dir = up;
  }
  return dir;
}

export function createHttpApp(opts: HttpOptions): express.Express {
  const root = projectRoot();
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', opts.trustProxy);
  app.set('views', join(root, 'views'));
  app.set('view engine', 'pug');
  app.use(requestLog(opts.log));

  app.use(
    helmet({
      contentSecurityPolicy: {
        useDefaults: false,
        directives: {
          defaultSrc: ["'self'"],
          // 'self' covers ws:/wss: of this origin for the socket.
          connectSrc: ["'self'"],
          scriptSrc: ["'self'"],
          styleSrc: ["'self'"],
          imgSrc: ["'self'", 'data:'],
          objectSrc: ["'none'"],
          baseUri: ["'none'"],
          formAction: ["'self'", ...(opts.formActions ?? [])],
          frameAncestors: ["'none'"],
        },
      },
      // Self-hosted on a LAN is often plain http: do not pin browsers to https.
      strictTransportSecurity: false,
    }),
  );

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  // Before the session and CSRF layers: a scraper has neither.
  if (opts.metrics) app.get('/metrics', opts.metrics);

  app.get('/readyz', async (_req, res) => {
    const r = await opts.ready().catch((e: unknown) => ({ ok: false, reason: String(e) }));
    if (r.ok) return void res.json({ status: 'ready' });
    // The reason is for the operator's log, not for whoever asks.
    logOf(res, opts.log).warn({ reason: r.reason }, 'not ready');
    res.status(503).json({ status: 'not ready' });
  });

  app.get('/vendor/primus.js', (_req, res) => {
    res.type('application/javascript').set('Cache-Control', 'public, max-age=3600').send(opts.primusLibrary());
  });

  if (opts.incomingHooks) app.use(opts.incomingHooks);
  app.use(opts.auth.before);
  app.use(opts.auth.routes);
  if (opts.sso) app.use(opts.sso);
  app.use(opts.rooms);
  app.use(opts.people);
  app.use(opts.status);
  if (opts.files) app.use(opts.files);
  for (const r of opts.integrations ?? []) app.use(r);
  if (opts.search) app.use(opts.search);
  app.use(opts.docs);

  app.get('/', (req: Request, res: Response, next: express.NextFunction) => {
    const viewer = res.locals.viewer;
    if (viewer) {
      // Signed in: the team chat page.
      opts.workspaceName().then(
        (workspace) => res.render('app', { csrf: opts.auth.csrfToken(req, res), me: publicUser(viewer.user), workspace, limits: LIMITS }),
        next,
      );
      return;
    }
    if (!opts.access.rules.anonymousRooms) return res.redirect(303, '/login');
    const q = typeof req.query.room === 'string' ? req.query.room : '';
    const parsed = roomName.safeParse(q);
    if (!parsed.success) {
      res.status(400).render('index', { room: '', limits: LIMITS, error: `That room name is not allowed: ${parsed.error.issues[0]?.message}` });
      return;
    }
    // The page joins open rooms by name; a room of another kind is opened by its id.
    const may = opts.access.checkNow(ANONYMOUS, parsed.data, 'read');
    if (may && !may.ok) {
      res.status(404).render('index', { room: '', limits: LIMITS, error: 'There is no such room.' });
      return;
    }
    res.render('index', { room: parsed.data, limits: LIMITS });
  });

  app.use(express.static(join(root, 'static'), { index: false, maxAge: '1h' }));

  app.use((req, res) => {
    // Under /api, even an unknown path answers in the API's one error shape.
    if (req.path.startsWith('/api/')) return void res.status(404).json({ error: { code: 'not_found', message: 'no such endpoint' } });
    res.status(404).type('text/plain').send('Not found\n');
  });

  app.use((err: Error & { status?: unknown; statusCode?: unknown }, req: Request, res: Response, _next: express.NextFunction) => {
    // Errors the HTTP layer raises about the request itself (a bad body, an unsatisfiable
    // Range, a failed precondition) carry their 4xx status: the client gets it.
    const status = Number(err.status ?? err.statusCode);
    if (status >= 400 && status < 500) {
      const code = (err as { code?: unknown }).code === 'csrf' ? 'csrf' : 'bad_request';
      const message = code === 'csrf' ? err.message : statusText(status);
      if (req.path.startsWith('/api/')) res.status(status).json({ error: { code, message } });
      else res.status(status).type('text/plain').send(`${message}\n`);
      return;
    }
    logOf(res, opts.log).error({ err: err.message }, 'request failed');
    if (req.path.startsWith('/api/')) return void res.status(500).json({ error: { code: 'internal', message: 'internal error' } });
    res.status(500).type('text/plain').send('Internal error\n');
  });

  return app;
}

function statusText(status: number): string {
  return STATUS_CODES[status] ?? 'Bad request';
}
