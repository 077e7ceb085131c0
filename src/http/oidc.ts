// Single sign-on's pages: the log-in page's button goes to GET /auth/oidc/login, which sends
// the browser to the provider; the provider sends it back to GET /auth/oidc/callback. What the
// return is checked against (state, nonce, PKCE verifier) waits in a short-lived, signed,
// HttpOnly cookie, so a return is accepted only in the browser that started it.
import { createHmac, timingSafeEqual } from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import { z } from 'zod';
import { SsoRefusal, transaction, type Sso, type Transaction } from '../accounts/oidc.js';
import type { Accounts } from '../accounts/service.js';
import type { AccountStore } from '../accounts/store.js';
import { SESSION_COOKIE } from './auth.js';

const TX_COOKIE = 'oidc_tx';
const TX_PATH = '/auth/oidc';
/** how long a person may take at the provider */
const TX_MINUTES = 10;
const sealed = transaction.extend({ exp: z.number() });

export interface OidcRoutesOptions {
  sso: Sso;
  accounts: Accounts;
  store: AccountStore;
  /** signs the transaction cookie */
  secret: string;
  sessionDays: number;
  csrfToken: (req: Request, res: Response) => string;
  log: Logger;
}

export function oidcRoutes(opts: OidcRoutesOptions): { routes: express.Router; endSession(req: Request, sessionId: string): Promise<string | undefined> } {
  const { sso, accounts } = opts;
  const mac = (payload: string) => createHmac('sha256', opts.secret).update(`oidc-tx\n${payload}`).digest('base64url');

  function seal(tx: Transaction): string {
    const payload = Buffer.from(JSON.stringify({ ...tx, exp: Date.now() + TX_MINUTES * 60_000 })).toString('base64url');
    return `${payload}.${mac(payload)}`;
  }

  function unseal(value: unknown): Transaction | undefined {
    if (typeof value !== 'string' || value.length > 4000) return undefined;
    const [payload, sig, extra] = value.split('.');
    if (!payload || !sig || extra !== undefined) return undefined;
    const want = Buffer.from(mac(payload));
    const got = Buffer.from(sig);
    if (want.length !== got.length || !timingSafeEqual(want, got)) return undefined;
    let raw: unknown;
    try {
      raw = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    } catch {
      return undefined;
    }
    const parsed = sealed.safeParse(raw);
    if (!parsed.success || parsed.data.exp < Date.now()) return undefined;
    const { state, nonce, verifier, redirectUri } = parsed.data;
    return { state, nonce, verifier, redirectUri };
  }

  const redirectUri = (req: Request) => sso.settings.redirectUri ?? `${req.protocol}://${req.get('host') ?? 'localhost'}${TX_PATH}/callback`;

  function refuse(req: Request, res: Response, e: SsoRefusal): void {
    res.status(e.reason === 'unavailable' ? 503 : 403).render('login', { csrf: opts.csrfToken(req, res), values: {}, error: e.message });
  }

  const routes = express.Router();

  routes.get(`${TX_PATH}/login`, (req: Request, res: Response, next: NextFunction) => {
    sso.begin(redirectUri(req)).then(
      ({ url, tx }) => {
        res.cookie(TX_COOKIE, seal(tx), { httpOnly: true, sameSite: 'lax', secure: req.secure, path: TX_PATH, maxAge: TX_MINUTES * 60_000 });
        res.redirect(303, url.href);
      },
      (e: unknown) => (e instanceof SsoRefusal ? refuse(req, res, e) : next(e)),
    );
  });

  routes.get(`${TX_PATH}/callback`, (req: Request, res: Response, next: NextFunction) => {
    const tx = unseal(req.cookies?.[TX_COOKIE]);
    // One use: whatever happens next, this browser's transaction is over.
    res.clearCookie(TX_COOKIE, { httpOnly: true, sameSite: 'lax', secure: req.secure, path: TX_PATH });
    if (!tx) {
      opts.log.warn('single sign-on: a return without this browser\'s transaction (expired, tampered with, or from another browser)');
      return refuse(req, res, new SsoRefusal('failed', 'Signing in through the provider failed: this browser did not start it, or it took too long. Try again.'));
    }
    const current = new URL(tx.redirectUri);
    current.search = new URL(req.originalUrl, 'http://x').search;
    sso
      .finish(current, tx)
      .then(async (user) => {
        const { token } = await accounts.startSession(user, 'oidc');
        res.cookie(SESSION_COOKIE, token, { httpOnly: true, sameSite: 'lax', secure: req.secure, path: '/', maxAge: opts.sessionDays * 24 * 60 * 60 * 1000 });
        res.redirect(303, '/');
      })
      .catch((e: unknown) => (e instanceof SsoRefusal ? refuse(req, res, e) : next(e)));
  });

  return {
    routes,
    async endSession(req, sessionId) {
      const session = await opts.store.session(sessionId);
      if (session?.via !== 'oidc') return undefined;
      const back = new URL('/login', redirectUri(req));
      return (await sso.endSessionUrl(back.href))?.href;
    },
  };
}
