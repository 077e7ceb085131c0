// Sign-up, log-in, log-out and password pages (forms that work without JavaScript) and the
// same actions under /api/auth for scripts and the app. Every state-changing request carries
// a CSRF token (double-submit, csrf-csrf); log-in, sign-up and password changes are rate
// limited per address and per account (rate-limiter-flexible), answered 429 with Retry-After.
import cookieParser from 'cookie-parser';
import { doubleCsrf } from 'csrf-csrf';
import express, { type NextFunction, type Request, type Response } from 'express';
import { RateLimiterRes } from 'rate-limiter-flexible';
import type { Limiter, Rule } from './limits.js';
import { z } from 'zod';
import { AccountError, hashToken, type Accounts } from '../accounts/service.js';
import { login as loginSchema, passwordChange, registration, type User } from '../accounts/schema.js';
import type { AccountStore } from '../accounts/store.js';
import { describeIssues } from './api.js';
import type { ApiDoc } from './endpoints.js';
import { noMetrics, type Metrics } from '../ops/metrics.js';

export const SESSION_COOKIE = 'sid';
const CSRF_COOKIE = 'csrf';

export interface AuthLimits {
  /** log-in attempts per account per 15 minutes */
  loginPerAccount: number;
  /** log-in attempts per address per 15 minutes */
  loginPerAddress: number;
  /** sign-ups per address per hour */
  signupPerAddress: number;
}

export interface AuthOptions {
  accounts: Accounts;
  store: AccountStore;
  csrfSecret: string;
  sessionDays: number;
  limits: AuthLimits;
  /** a limiter of the rule, shared by every process (src/http/limits.ts) */
  limiter: (rule: Rule) => Limiter;
  /** counts log-ins: ok, failed, rate_limited */
  metrics?: Pick<Metrics, 'login'>;
  /** LOCAL_LOGIN: false shows the provider's button alone and closes sign-up (default true) */
  localLogin?: boolean;
  /** single sign-on (src/http/oidc.ts): the button's text, and where a log-out of a session it
   *  opened goes next (the provider's end-session URL) */
  sso?: { button: string; endSession(req: Request, sessionId: string): Promise<string | undefined> };
  /** an API token's user and scopes (src/integrations/tokens.ts) */
  bearer?: (token: string) => Promise<{ user: User; scopes: readonly string[] } | undefined>;
  /** the API's document: the /api/auth endpoints are entered in it */
  doc?: ApiDoc;
}

/** Who is asking, from the session cookie, or from an API token (then `scopes` says what it
 *  may do, and there is no session). */
export type RequestViewer = { user: User; sessionId: string; scopes?: readonly string[] } | undefined;

declare module 'express-serve-static-core' {
  interface Locals {
    viewer?: RequestViewer;
    /** what the log-in page offers: the form (`local`), the provider's button (`sso`), and
     *  the break-glass form (`breakGlass`: /login?local while local log-in is off) */
    loginPage?: { local: boolean; sso?: string; breakGlass: boolean };
  }
}

export function authRoutes(opts: AuthOptions): { before: express.Router; routes: express.Router; csrfToken: (req: Request, res: Response) => string } {
  const { accounts, store } = opts;
  const metrics = opts.metrics ?? noMetrics;
  const maxAge = opts.sessionDays * 24 * 60 * 60 * 1000;
  const limiter = {
    loginAccount: opts.limiter({ keyPrefix: 'login-account', points: opts.limits.loginPerAccount, duration: 15 * 60 }),
    loginAddress: opts.limiter({ keyPrefix: 'login-address', points: opts.limits.loginPerAddress, duration: 15 * 60 }),
    signupAddress: opts.limiter({ keyPrefix: 'signup-address', points: opts.limits.signupPerAddress, duration: 60 * 60 }),
    password: opts.limiter({ keyPrefix: 'password', points: opts.limits.loginPerAccount, duration: 15 * 60 }),
  };

  const { generateCsrfToken, doubleCsrfProtection } = doubleCsrf({
    getSecret: () => opts.csrfSecret,
    // Bound to the session when there is one; a form shown before log-in is bound to none.
    getSessionIdentifier: (req) => {
      const sid: unknown = req.cookies?.[SESSION_COOKIE];
      return typeof sid === 'string' ? hashToken(sid) : '';
    },
    cookieName: CSRF_COOKIE,
    cookieOptions: { sameSite: 'lax', path: '/', secure: false, httpOnly: true },
    getCsrfTokenFromRequest: (req) => {
      const header = req.headers['x-csrf-token'];
      if (typeof header === 'string') return header;
      const body: unknown = req.body;
      return typeof body === 'object' && body !== null && '_csrf' in body && typeof body._csrf === 'string' ? body._csrf : undefined;
    },
    errorConfig: { statusCode: 403, message: 'invalid or missing CSRF token: reload the page and try again', code: 'csrf' },
  });

  const before = express.Router();
  before.use(cookieParser());
  before.use(express.urlencoded({ extended: false, limit: '16kb' }));
  before.use(express.json({ limit: '64kb' }));
  // `Authorization: Bearer <API token>`: the token's user, no cookie, no CSRF (a page on
  // another site cannot set the header). A token that is not valid is a 401, not a visitor.
  before.use((req: Request, res: Response, next: NextFunction) => {
    const header = req.headers.authorization;
    if (header === undefined || !opts.bearer) return next();
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    const fail = () => void res.status(401).set('WWW-Authenticate', 'Bearer').json({ error: { code: 'unauthenticated', message: 'that API token is not valid (revoked, or its user disabled)' } });
    if (!m) return fail();
    opts.bearer(m[1]).then(
      (found) => {
        if (!found) return fail();
        res.locals.viewer = { user: found.user, sessionId: '', scopes: found.scopes };
        next();
      },
      (e: unknown) => next(e),
    );
  });
  // The session, if any, for every request.
  before.use((req: Request, res: Response, next: NextFunction) => {
    if (res.locals.viewer?.scopes) return next();
    const token: unknown = req.cookies?.[SESSION_COOKIE];
    if (typeof token !== 'string') return next();
    accounts.resolve(token).then(
      (found) => {
        res.locals.viewer = found && { user: found.user, sessionId: found.session.id };
        next();
      },
      (e: unknown) => next(e),
    );
  });
  before.use((req: Request, res: Response, next: NextFunction) => (res.locals.viewer?.scopes ? next() : doubleCsrfProtection(req, res, next)));
  before.use((req: Request, res: Response, next: NextFunction) => {
    res.locals.loginPage = { local: opts.localLogin !== false, sso: opts.sso?.button, breakGlass: req.query.local !== undefined };
    next();
  });

  const routes = express.Router();
  const isApi = (req: Request) => req.path.startsWith('/api/');

  function setSession(req: Request, res: Response, token: string): void {
    res.cookie(SESSION_COOKIE, token, { httpOnly: true, sameSite: 'lax', secure: req.secure, path: '/', maxAge });
  }
  function clearSession(req: Request, res: Response): void {
    res.clearCookie(SESSION_COOKIE, { httpOnly: true, sameSite: 'lax', secure: req.secure, path: '/' });
  }

  /** Takes a point from each limiter; false (and a 429 sent) when one is spent. */
  async function limited(req: Request, res: Response, checks: Array<[Limiter, string]>, page: string): Promise<boolean> {
    for (const [l, key] of checks) {
      try {
        await l.consume(key);
      } catch (e) {
        if (!(e instanceof RateLimiterRes)) throw e;
        const seconds = Math.max(1, Math.ceil(e.msBeforeNext / 1000));
        res.set('Retry-After', String(seconds));
        fail(req, res, 429, 'rate_limited', `too many attempts; try again in ${seconds} s`, page);
        return false;
      }
    }
    return true;
  }

  function fail(req: Request, res: Response, status: number, code: string, message: string, page: string, values: Record<string, unknown> = {}): void {
    if (isApi(req)) {
      res.status(status).json({ error: { code, message } });
      return;
    }
    res.status(status).render(page, { error: message, values, csrf: generateCsrfToken(req, res) });
  }

  function invalid(req: Request, res: Response, err: z.ZodError, page: string, values: Record<string, unknown>): void {
    fail(req, res, 400, 'invalid', describeIssues(err), page, values);
  }

  const done = (req: Request, res: Response, user: User, status = 200) => {
    if (isApi(req)) res.status(status).json({ user: publicUser(user) });
    else res.redirect(303, '/');
  };

  // ---- pages ---------------------------------------------------------------------------

  routes.get('/signup', async (req, res) => {
    const invite = typeof req.query.invite === 'string' ? req.query.invite : undefined;
    if (opts.localLogin === false) return void res.status(403).render('signup', { csrf: generateCsrfToken(req, res), values: {}, closed: true });
    const first = !(await store.hasOwner());
    res.render('signup', { csrf: generateCsrfToken(req, res), values: { invite }, first });
  });
  routes.get('/login', (req, res) => {
    res.render('login', { csrf: generateCsrfToken(req, res), values: {} });
  });
  routes.get('/admin', (req, res) => {
    const viewer = res.locals.viewer;
    if (!viewer) return res.redirect(303, '/login');
    if (viewer.user.role !== 'owner' && viewer.user.role !== 'admin') return void res.status(403).render('login', { csrf: generateCsrfToken(req, res), values: {}, error: 'Only admins may see the administration page.' });
    res.render('admin', { csrf: generateCsrfToken(req, res) });
  });
  routes.get('/account', (req, res) => {
    const viewer = res.locals.viewer;
    if (!viewer) return res.redirect(303, '/login');
    res.render('account', { csrf: generateCsrfToken(req, res), user: viewer.user });
  });

  // ---- actions (a page form posts to the page's path; the API takes JSON) ----------------

  const signup = async (req: Request, res: Response) => {
    const body: Record<string, unknown> = typeof req.body === 'object' && req.body ? req.body : {};
    const values = { username: body.username, displayName: body.displayName, email: body.email, invite: body.invite };
    const parsed = registration.safeParse(body);
    if (!parsed.success) return invalid(req, res, parsed.error, 'signup', values);
    if (!(await limited(req, res, [[limiter.signupAddress, req.ip ?? '?']], 'signup'))) return;
    try {
      const { user, token } = await accounts.register(parsed.data);
      setSession(req, res, token);
      done(req, res, user, 201);
    } catch (e) {
      if (!(e instanceof AccountError)) throw e;
      fail(req, res, e.code === 'taken' ? 409 : 403, e.code, e.message, 'signup', values);
    }
  };

  const login = async (req: Request, res: Response) => {
    const body: Record<string, unknown> = typeof req.body === 'object' && req.body ? req.body : {};
    const values = { login: body.login };
    const parsed = loginSchema.safeParse(body);
    if (!parsed.success) return invalid(req, res, parsed.error, 'login', values);
    const account = parsed.data.login.toLowerCase();
    if (!(await limited(req, res, [[limiter.loginAddress, req.ip ?? '?'], [limiter.loginAccount, account]], 'login'))) return metrics.login('rate_limited');
    try {
      const { user, token } = await accounts.login(parsed.data.login, parsed.data.password);
      metrics.login('ok');
      await limiter.loginAccount.delete(account);
      setSession(req, res, token);
      done(req, res, user);
    } catch (e) {
      if (!(e instanceof AccountError)) throw e;
      metrics.login('failed');
      fail(req, res, 401, e.code, e.message, 'login', values);
    }
  };

  /** Account actions belong to a person at a browser: an API token (of any scope) may not log
   *  its user out everywhere or change their password. True when refused. */
  const tokenRefused = (req: Request, res: Response): boolean => {
    if (!res.locals.viewer?.scopes) return false;
    fail(req, res, 403, 'session_only', 'an API token cannot do this: sign in', 'login');
    return true;
  };

  const logout = (everywhere: boolean) => async (req: Request, res: Response) => {
    if (tokenRefused(req, res)) return;
    const viewer = res.locals.viewer;
    let next: string | undefined;
    if (viewer) {
      next = viewer.sessionId ? await opts.sso?.endSession(req, viewer.sessionId) : undefined;
      if (everywhere) await accounts.logoutEverywhere(viewer.user.id);
      else await accounts.logout(viewer.sessionId);
    }
    clearSession(req, res);
    if (isApi(req)) res.status(204).end();
    else res.redirect(303, next ?? '/login');
  };

  const changePassword = async (req: Request, res: Response) => {
    const viewer = res.locals.viewer;
    if (!viewer) return fail(req, res, 401, 'unauthenticated', 'log in first', 'login');
    if (tokenRefused(req, res)) return;
    const parsed = passwordChange.safeParse(req.body);
    if (!parsed.success) {
      const message = describeIssues(parsed.error);
      if (isApi(req)) return void res.status(400).json({ error: { code: 'invalid', message } });
      return void res.status(400).render('account', { csrf: generateCsrfToken(req, res), user: viewer.user, error: message });
    }
    if (!(await limited(req, res, [[limiter.password, viewer.user.id]], 'login'))) return;
    try {
      await accounts.changePassword(viewer.user, parsed.data.current, parsed.data.password, viewer.sessionId);
    } catch (e) {
      if (!(e instanceof AccountError)) throw e;
      if (isApi(req)) return void res.status(403).json({ error: { code: e.code, message: e.message } });
      return void res.status(403).render('account', { csrf: generateCsrfToken(req, res), user: viewer.user, error: e.message });
    }
    if (isApi(req)) res.status(204).end();
    else res.render('account', { csrf: generateCsrfToken(req, res), user: viewer.user, notice: 'Your password is changed; your other sessions were logged out.' });
  };

  routes.post('/signup', wrap(signup));
  routes.post('/login', wrap(login));
  routes.post('/logout', wrap(logout(false)));
  routes.post('/logout-everywhere', wrap(logout(true)));
  routes.post('/account/password', wrap(changePassword));

  routes.get('/api/auth/csrf', (req, res) => {
    res.json({ csrf: generateCsrfToken(req, res) });
  });
  routes.get('/api/me', (_req, res) => {
    const viewer = res.locals.viewer;
    if (!viewer) return void res.status(401).json({ error: { code: 'unauthenticated', message: 'log in first' } });
    res.json({ user: publicUser(viewer.user) });
  });
  routes.post('/api/auth/signup', wrap(signup));
  routes.post('/api/auth/login', wrap(login));
  routes.post('/api/auth/logout', wrap(logout(false)));
  routes.post('/api/auth/logout-everywhere', wrap(logout(true)));
  routes.post('/api/auth/password', wrap(changePassword));

  // The same schemas the handlers above parse with, in the API's document.
  const doc = opts.doc;
  if (doc) {
    const tag = 'account';
    doc.add({ method: 'get', path: '/api/auth/csrf', tag, needs: 'none', summary: 'A CSRF token: send it as x-csrf-token with every state-changing request made with the session cookie' });
    doc.add({ method: 'get', path: '/api/me', tag, needs: 'user', summary: 'Who you are signed in as' });
    doc.add({ method: 'post', path: '/api/auth/signup', tag, needs: 'none', summary: 'Make an account (and sign in)', body: registration, status: 201 });
    doc.add({ method: 'post', path: '/api/auth/login', tag, needs: 'none', summary: 'Sign in with a username or e-mail and a password (sets the session cookie)', body: loginSchema });
    doc.add({ method: 'post', path: '/api/auth/logout', tag, needs: 'none', summary: 'End this session', status: 204 });
    doc.add({ method: 'post', path: '/api/auth/logout-everywhere', tag, needs: 'none', summary: 'End every session of yours', status: 204 });
    doc.add({ method: 'post', path: '/api/auth/password', tag, needs: 'user', sessionOnly: true, summary: 'Change your password (your other sessions end)', body: passwordChange, status: 204 });
  }

  return { before, routes, csrfToken: (req, res) => generateCsrfToken(req, res) };
}

/** What other people (and the user's own page) may see of an account. */
export function publicUser(u: User) {
  return { id: u.id, username: u.username, displayName: u.displayName, role: u.role };
}

function wrap(fn: (req: Request, res: Response) => Promise<void>) {
  return (req: Request, res: Response, next: NextFunction) => {
    fn(req, res).catch(next);
  };
}
