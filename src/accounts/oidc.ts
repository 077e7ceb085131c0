// Single sign-on through an OpenID provider (Keycloak, or any other): the authorization code
// flow with PKCE, state and nonce (openid-client), and what a sign-in does to accounts. A
// person is known by the provider's (issuer, subject), kept in the identities table whose
// primary key is the hash of the pair (so one pair links to one account). A first sign-in
// links an existing account by e-mail only when the provider vouches for the address
// (email_verified) and the account is neither an owner nor an admin; otherwise it makes a
// member account. The role comes from a claim at every sign-in: the admin value makes an
// admin, the access value a member; an owner stays the owner.
//
// The provider may be down when the app starts: discovery is retried in the background, and
// tried again when someone presses the button, so the app (and break-glass local log-in)
// works without it.
import { createHash, randomBytes } from 'node:crypto';
import * as client from 'openid-client';
import type { Logger } from 'pino';
import { r } from 'rethinkdb-ts';
import { z } from 'zod';
import type { Pool } from '../db/pool.js';
import { IDENTITIES } from '../db/schema.js';
import type { Config } from '../config.js';
import { email as emailSchema, normalEmail, type Role, type User } from './schema.js';
import { AccountError, type Accounts } from './service.js';
import type { AccountStore } from './store.js';

export type OidcSettings = NonNullable<Config['oidc']>;

export const identityRow = z.object({
  id: z.string(),
  issuer: z.string(),
  subject: z.string(),
  userId: z.string(),
  createdAt: z.date(),
  lastLoginAt: z.date(),
});
export type Identity = z.output<typeof identityRow>;

export const identityId = (issuer: string, subject: string) => createHash('sha256').update(`${issuer}\n${subject}`).digest('hex');

export interface IdentityStore {
  byKey(issuer: string, subject: string): Promise<Identity | undefined>;
  /** Links the pair to the user; false when the pair is linked already (to anyone). */
  link(issuer: string, subject: string, userId: string): Promise<boolean>;
  touch(id: string, at: Date): Promise<void>;
  /** the identities of a user */
  ofUser(userId: string): Promise<Identity[]>;
}

export function createIdentityStore(pool: Pool, db: string): IdentityStore {
  const t = () => r.db(db).table(IDENTITIES);
  return {
    async byKey(issuer, subject) {
      const row: unknown = await pool.run(t().get(identityId(issuer, subject)));
      return row === null ? undefined : identityRow.parse(row);
    },
    async link(issuer, subject, userId) {
      const now = new Date();
      const row: Identity = { id: identityId(issuer, subject), issuer, subject, userId, createdAt: now, lastLoginAt: now };
      const res = z.object({ inserted: z.number() }).parse(await pool.run(t().insert(row, { conflict: 'error' })));
      return res.inserted === 1;
    },
    async touch(id, at) {
      await pool.run(t().get(id).update({ lastLoginAt: at }));
    },
    async ofUser(userId) {
      const rows: unknown[] = await pool.run(t().getAll(userId, { index: 'userId' }));
      return rows.map((x) => identityRow.parse(x));
    },
  };
}

/** What the app keeps between sending the browser to the provider and its return. */
export const transaction = z.object({ state: z.string().max(200), nonce: z.string().max(200), verifier: z.string().max(200), redirectUri: z.url().max(2000) });
export type Transaction = z.output<typeof transaction>;

/** Why a sign-in was refused: the page says `message`; `reason` is for logs and tests. */
export class SsoRefusal extends Error {
  override name = 'SsoRefusal';
  constructor(
    readonly reason: 'unavailable' | 'failed' | 'no_access' | 'email_unverified' | 'privileged_email' | 'disabled',
    message: string,
  ) {
    super(message);
  }
}

// The claims the app reads; the roles claim is found by its path in the whole object.
const claimsSchema = z.object({
  iss: z.string().min(1),
  sub: z.string().min(1).max(1000),
  email: z.string().max(254).optional(),
  // Some providers send it as a string.
  email_verified: z.union([z.boolean(), z.enum(['true', 'false']).transform((v) => v === 'true')]).optional(),
  preferred_username: z.string().max(200).optional(),
  name: z.string().max(200).optional(),
});

/** The values at a dotted path: an array of strings, a string, or nothing. */
export function claimValues(claims: Record<string, unknown>, path: string): string[] {
  let at: unknown = claims;
  for (const part of path.split('.')) {
    if (typeof at !== 'object' || at === null || Array.isArray(at)) return [];
    at = (at as Record<string, unknown>)[part];
  }
  if (typeof at === 'string') return [at];
  return Array.isArray(at) ? at.filter((v): v is string => typeof v === 'string') : [];
}

/** A username this app accepts, from what the provider calls the person. */
export function usernameFrom(wanted: string | undefined, email: string | undefined): string {
  const base = (wanted || email?.split('@')[0] || '')
    .normalize('NFKD')
    .replace(/\p{M}+/gu, '')
    .replace(/[^a-zA-Z0-9._-]+/g, '-')
    .replace(/^[^a-zA-Z0-9]+/, '')
    .slice(0, 28)
    .replace(/[._-]+$/, '');
  return base.length >= 2 ? base : `user-${base}`.replace(/-$/, '');
}

const DISCOVERY_TIMEOUT_S = 10;
const RETRY_MAX_MS = 60_000;
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

export interface SsoOptions {
  settings: OidcSettings;
  users: AccountStore;
  identities: IdentityStore;
  accounts: Accounts;
  log: Logger;
}

export type Sso = ReturnType<typeof createSso>;

export function createSso({ settings, users, identities, accounts, log }: SsoOptions) {
  const issuerUrl = new URL(settings.issuer);
  const insecure = issuerUrl.protocol === 'http:' && (settings.allowHttp || LOOPBACK.has(issuerUrl.hostname));
  let config: client.Configuration | undefined;
  let pending: Promise<client.Configuration> | undefined;
  let retry: NodeJS.Timeout | undefined;
  let failures = 0;
  let stopped = false;

  function discover(): Promise<client.Configuration> {
    if (config) return Promise.resolve(config);
    pending ??= client
      .discovery(issuerUrl, settings.clientId, settings.clientSecret === undefined ? undefined : { client_secret: settings.clientSecret }, settings.clientSecret === undefined ? client.None() : client.ClientSecretBasic(settings.clientSecret), {
        execute: insecure ? [client.allowInsecureRequests] : [],
        timeout: DISCOVERY_TIMEOUT_S,
      })
      .then(
        (c) => {
          config = c;
          failures = 0;
          log.info({ issuer: settings.issuer }, 'single sign-on: provider discovered');
          return c;
        },
        (e: unknown) => {
          failures += 1;
          // The message names the issuer and the cause; the client secret is in neither.
          log.warn({ issuer: settings.issuer, err: e instanceof Error ? e.message : String(e), failures }, 'single sign-on: provider discovery failed; will retry');
          throw e;
        },
      )
      .finally(() => {
        pending = undefined;
      });
    return pending;
  }

  function retryLater(): void {
    if (stopped || config) return;
    const delay = Math.min(RETRY_MAX_MS, 1000 * 2 ** Math.min(failures, 6));
    retry = setTimeout(() => {
      retry = undefined;
      discover().catch(() => retryLater());
    }, delay);
    retry.unref();
  }

  /** The provider's configuration, discovering it now if it is not known yet. */
  async function provider(): Promise<client.Configuration> {
    try {
      return await discover();
    } catch {
      if (!retry) retryLater();
      throw new SsoRefusal('unavailable', 'The sign-on provider cannot be reached right now. Try again in a minute.');
    }
  }

  /** The role the claims give, or undefined when they give no access. */
  function roleOf(claims: Record<string, unknown>): Role | undefined {
    const values = claimValues(claims, settings.rolesClaim);
    if (settings.adminValue !== undefined && values.includes(settings.adminValue)) return 'admin';
    if (settings.accessValue === undefined || values.includes(settings.accessValue)) return 'member';
    return undefined;
  }

  async function createMember(claims: z.output<typeof claimsSchema>, email: string | undefined): Promise<User> {
    const base = usernameFrom(claims.preferred_username, email);
    const placeholder = `sso-${identityId(claims.iss, claims.sub).slice(0, 20)}@sso.invalid`;
    const displayName = (claims.name || claims.preferred_username || base).replace(/\p{Cc}/gu, '').trim().slice(0, 64) || base;
    // A random password nobody knows: such an account logs in through the provider.
    const password = randomBytes(32).toString('base64url');
    let mail = email ?? placeholder;
    for (let i = 1; i <= 30; ) {
      const username = i === 1 ? base : i < 30 ? `${base}-${i}` : `${base}-${randomBytes(3).toString('hex')}`;
      try {
        return await accounts.createUser({ username, displayName, email: mail, password }, 'member');
      } catch (e) {
        if (!(e instanceof AccountError) || e.code !== 'taken') throw e;
        if (!e.message.includes('e-mail')) i += 1;
        // The address was taken in the meantime: keep the account apart from it.
        else if (mail !== placeholder) mail = placeholder;
        else throw e;
      }
    }
    throw new SsoRefusal('failed', 'No free username could be made for this account; ask an administrator.');
  }

  /** The account a provider's claims sign in to (linking or making it), with its role now. */
  async function accountFor(raw: Record<string, unknown>): Promise<User> {
    const claims = claimsSchema.parse(raw);
    const role = roleOf(raw);
    if (!role) throw new SsoRefusal('no_access', `Your account at the sign-on provider does not give access to this workspace${settings.accessValue ? ` (it needs "${settings.accessValue}" in ${settings.rolesClaim})` : ''}. Ask your administrator.`);
    const linked = await identities.byKey(claims.iss, claims.sub);
    let user: User | undefined;
    if (linked) {
      user = await users.userById(linked.userId);
      await identities.touch(linked.id, new Date());
    }
    if (!user) {
      // Only an e-mail address is looked up as one (a bare name would find a username).
      const email = claims.email !== undefined && emailSchema.safeParse(claims.email).success ? normalEmail(claims.email) : undefined;
      const existing = email ? await users.userByLogin(email) : undefined;
      if (existing) {
        if (claims.email_verified !== true)
          throw new SsoRefusal('email_unverified', 'An account here has your e-mail address, but the sign-on provider has not verified that address, so the two are not linked. Verify it at the provider, or ask an administrator.');
        if (existing.role === 'owner' || existing.role === 'admin')
          throw new SsoRefusal('privileged_email', 'An owner or admin account here has your e-mail address; such accounts are never linked by e-mail alone. Its holder can log in locally, or ask another administrator.');
        if (existing.disabled) throw new SsoRefusal('disabled', 'This account is disabled. Ask an administrator.');
        user = existing;
      } else {
        // An address the provider does not vouch for is not claimed here.
        user = await createMember(claims, claims.email_verified === true ? email : undefined);
        log.info({ userId: user.id, issuer: claims.iss }, 'single sign-on: account made');
      }
      if (!(await identities.link(claims.iss, claims.sub, user.id))) {
        // Another sign-in of the same person linked first: use its account.
        const winner = await identities.byKey(claims.iss, claims.sub);
        const other = winner && (await users.userById(winner.userId));
        if (!other) throw new SsoRefusal('failed', 'Signing in did not finish; try again.');
        if (other.id !== user.id && !existing) await users.updateUser(user.id, { disabled: true });
        user = other;
      } else if (existing) log.info({ userId: user.id, issuer: claims.iss }, 'single sign-on: linked by verified e-mail');
    }
    if (user.disabled) throw new SsoRefusal('disabled', 'This account is disabled. Ask an administrator.');
    if (user.role !== 'owner' && user.role !== role) {
      await users.updateUser(user.id, { role });
      log.info({ userId: user.id, from: user.role, to: role }, 'single sign-on: role from the provider');
      user = { ...user, role };
    }
    return user;
  }

  return {
    settings,
    /** discovery in the background until it succeeds */
    start(): void {
      discover().catch(() => retryLater());
    },
    stop(): void {
      stopped = true;
      if (retry) clearTimeout(retry);
    },
    get discovered(): boolean {
      return config !== undefined;
    },

    /** Where to send the browser, and what to keep for its return. */
    async begin(redirectUri: string): Promise<{ url: URL; tx: Transaction }> {
      const c = await provider();
      const verifier = client.randomPKCECodeVerifier();
      const tx: Transaction = { state: client.randomState(), nonce: client.randomNonce(), verifier, redirectUri };
      const url = client.buildAuthorizationUrl(c, {
        redirect_uri: redirectUri,
        scope: settings.scopes,
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state: tx.state,
        nonce: tx.nonce,
      });
      return { url, tx };
    },

    /** The return from the provider: checks state, nonce and PKCE, and signs the person in. */
    async finish(currentUrl: URL, tx: Transaction): Promise<User> {
      const c = await provider();
      let claims: Record<string, unknown>;
      try {
        const tokens = await client.authorizationCodeGrant(c, currentUrl, { pkceCodeVerifier: tx.verifier, expectedState: tx.state, expectedNonce: tx.nonce, idTokenExpected: true });
        const id = tokens.claims();
        if (!id) throw new Error('no ID token');
        claims = { ...id };
        if (c.serverMetadata().userinfo_endpoint) {
          // Many providers put the profile and roles there rather than in the ID token.
          const info = await client.fetchUserInfo(c, tokens.access_token, id.sub);
          claims = { ...info, ...id };
        }
      } catch (e) {
        log.warn({ err: e instanceof Error ? e.message : String(e), code: (e as { code?: unknown }).code }, 'single sign-on: the return from the provider was refused');
        throw new SsoRefusal('failed', 'Signing in through the provider failed (the request was not the one this browser started, or it expired). Try again.');
      }
      return accountFor(claims);
    },

    /** The provider's end-session URL, when it has one and is reachable. */
    async endSessionUrl(postLogoutRedirectUri: string): Promise<URL | undefined> {
      const c = await discover().catch(() => undefined);
      if (!c?.serverMetadata().end_session_endpoint) return undefined;
      return client.buildEndSessionUrl(c, { client_id: settings.clientId, post_logout_redirect_uri: postLogoutRedirectUri });
    },
  };
}
