// Accounts: registration (the first account becomes the owner, once), log-in, sessions with
// sliding expiry, log-out (here and everywhere), password changes and resets. A session is a
// random token the browser holds in a cookie; the database keeps only its SHA-256.
import { createHash, randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { follow, type Followed } from '../db/follow.js';
import { hashPassword, needsRehash, verifyNothing, verifyPassword } from './passwords.js';
import type { Role, Session, User } from './schema.js';
import { TakenError, type AccountStore } from './store.js';

export type AccountErrorCode = 'bad_credentials' | 'local_login_off' | 'taken' | 'registration_closed' | 'invite_required' | 'invite_invalid' | 'disabled' | 'not_found';

export class AccountError extends Error {
  override name = 'AccountError';
  constructor(readonly code: AccountErrorCode, message: string) {
    super(message);
  }
}

export const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');
const newToken = () => randomBytes(32).toString('base64url');

export interface Signed {
  user: User;
  /** the session token, for the cookie: shown once, never stored */
  token: string;
}

export interface AccountsOptions {
  store: AccountStore;
  log: Logger;
  /** sliding expiry of a session */
  sessionDays: number;
  /** after an account is made (the default rooms are joined here) */
  afterSignup?: (user: User) => Promise<void>;
  /** false (LOCAL_LOGIN=off): sign-up is closed and only owners and admins log in with a
   *  password (break-glass); everyone else signs in through the provider */
  localLogin?: boolean;
}

/** The one answer to every refused local log-in while it is off: the same for an unknown
 *  name, a wrong password and a member's right one. */
export const LOCAL_LOGIN_OFF = 'Local log-in is off here: use the single sign-on button. (Break-glass log-in is for owners and admins only; wrong username or password otherwise.)';

export type Accounts = ReturnType<typeof createAccounts>;

/** A session is written back (its expiry slid) at most this often. */
const TOUCH_EVERY_MS = 60 * 60 * 1000;

export function createAccounts({ store, log, sessionDays, afterSignup, localLogin = true }: AccountsOptions) {
  const lifetime = sessionDays * 24 * 60 * 60 * 1000;

  async function startSession(user: User, via: Session['via'] = 'password'): Promise<Signed> {
    const token = newToken();
    const now = new Date();
    await store.createSession({ id: hashToken(token), userId: user.id, createdAt: now, lastUsedAt: now, expiresAt: new Date(now.getTime() + lifetime), via });
    return { user, token };
  }

  async function create(input: { username: string; displayName: string; email: string; password: string }, role: Role): Promise<User> {
    let user: User;
    try {
      user = await store.createUser({ username: input.username, displayName: input.displayName, email: input.email, passwordHash: await hashPassword(input.password), role });
    } catch (e) {
      if (e instanceof TakenError) throw new AccountError('taken', e.message);
      throw e;
    }
    await afterSignup?.(user);
    return user;
  }

  return {
    /** Sign-up through the page or the API, under the workspace's registration mode. */
    async register(input: { username: string; displayName: string; email: string; password: string; invite?: string }): Promise<Signed> {
      if (!localLogin) throw new AccountError('registration_closed', 'sign-up is closed: log in with single sign-on');
      const first = !(await store.hasOwner());
      let role: Role = 'member';
      if (!first) {
        const { registration } = await store.settings();
        if (registration === 'closed') throw new AccountError('registration_closed', 'sign-up is closed; ask an administrator for an account');
        if (registration === 'invite' || input.invite) {
          if (!input.invite) throw new AccountError('invite_required', 'sign-up needs an invitation link');
          const invite = await store.useInvite(hashToken(input.invite), new Date());
          if (!invite) throw new AccountError('invite_invalid', 'that invitation link is not valid (used up, expired or revoked)');
          role = invite.role;
        }
      }
      const user = await create(input, role);
      // Whoever inserts the one owner document first is the owner; any other first sign-up
      // racing it (on this process or another) stays a member.
      if (first && (await store.claimFirstOwner(user.id))) {
        await store.updateUser(user.id, { role: 'owner' });
        user.role = 'owner';
        log.info({ userId: user.id }, 'the first account is the workspace owner');
      }
      return startSession(user);
    },

    /** The same error, after about the same time, for an unknown name and a wrong password. */
    async login(login: string, password: string): Promise<Signed> {
      const user = await store.userByLogin(login);
      const ok = user ? await verifyPassword(user.passwordHash, password) : await verifyNothing(password);
      if (!localLogin && (!user || !ok || user.disabled || (user.role !== 'owner' && user.role !== 'admin'))) throw new AccountError('local_login_off', LOCAL_LOGIN_OFF);
      if (!user || !ok) throw new AccountError('bad_credentials', 'wrong username or password');
      if (user.disabled) throw new AccountError('bad_credentials', 'wrong username or password');
      if (needsRehash(user.passwordHash)) await store.updateUser(user.id, { passwordHash: await hashPassword(password) });
      return startSession(user);
    },

    /** The session and user of a token, if both are valid now; slides the expiry. */
    async resolve(token: string | undefined): Promise<{ user: User; session: Session } | undefined> {
      if (!token || token.length > 200) return undefined;
      const id = hashToken(token);
      const session = await store.session(id);
      const now = Date.now();
      if (!session) return undefined;
      if (session.expiresAt.getTime() <= now) {
        await store.deleteSession(id).catch(() => undefined);
        return undefined;
      }
      const user = await store.userById(session.userId);
      if (!user || user.disabled) return undefined;
      if (now - session.lastUsedAt.getTime() > TOUCH_EVERY_MS) {
        const expiresAt = new Date(now + lifetime);
        await store.touchSession(id, new Date(now), expiresAt).catch((e: unknown) => log.warn({ err: String(e) }, 'could not slide a session'));
        session.expiresAt = expiresAt;
      }
      return { user, session };
    },

    createUser: create,
    startSession,

    async logout(sessionId: string): Promise<void> {
      await store.deleteSession(sessionId);
    },

    async logoutEverywhere(userId: string): Promise<number> {
      return store.deleteUserSessions(userId);
    },

    /** Changes a password after checking the current one; every other session ends. */
    async changePassword(user: User, current: string, next: string, keepSession: string): Promise<void> {
      if (!(await verifyPassword(user.passwordHash, current))) throw new AccountError('bad_credentials', 'the current password is wrong');
      await store.updateUser(user.id, { passwordHash: await hashPassword(next) });
      await store.deleteUserSessions(user.id, keepSession);
    },

    /** An administrator's (or the command line's) reset: every session of the user ends. */
    async resetPassword(userId: string, next: string): Promise<void> {
      await store.updateUser(userId, { passwordHash: await hashPassword(next) });
      await store.deleteUserSessions(userId);
    },

    /**
     * Watches session deletions (log-out, log-out everywhere, password changes, disabled
     * users) on every process, and calls `revoked` with each deleted session's id; reopens the
     * feed when it fails. `ready` resolves once the feed is open.
     */
    watchRevocations(revoked: (sessionId: string) => void, onReopen: () => void): Followed {
      return follow('session', () => store.sessionDeletions(), revoked, { log, onReopen });
    },
  };
}
