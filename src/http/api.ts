// What every /api route has in common: a signed-in user (401 otherwise), one error shape
// ({error: {code, message}}), 204 for a handler that returns nothing, and zod's issues told
// field by field.
import type { NextFunction, Request, Response } from 'express';
import type { z } from 'zod';
import { atLeast, type User } from '../accounts/schema.js';

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

/** "field: what is wrong; other: …" */
export function describeIssues(e: z.ZodError): string {
  return e.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ');
}

export const invalid = (e: z.ZodError) => new ApiError(400, 'invalid', describeIssues(e));

/** Changes to integrations themselves (webhooks, tokens, bots) are management. */
const MANAGED = /^\/api\/(hooks|tokens|bots)(\/|$)/;

/** The scope an API token needs for a request (the one place that says so): `manage` for what
 *  only admins do and for changes to integrations, `read` to look, `post` for other changes. */
export function scopeFor(method: string, needs: 'user' | 'admin', path = ''): 'read' | 'post' | 'manage' {
  if (needs === 'admin') return 'manage';
  if (method === 'GET' || method === 'HEAD') return 'read';
  return MANAGED.test(path) ? 'manage' : 'post';
}

/** An /api handler for a signed-in user (an admin, when `needs` says so); a request with an
 *  API token also needs the token's scope for it. */
export function apiRoute(needs: 'user' | 'admin', fn: (req: Request, res: Response, me: User) => Promise<unknown>) {
  return (req: Request, res: Response, next: NextFunction) => {
    const me = res.locals.viewer?.user;
    if (!me) return void res.status(401).json({ error: { code: 'unauthenticated', message: 'log in first' } });
    const scopes = res.locals.viewer?.scopes;
    const scope = scopeFor(req.method, needs, req.originalUrl.split('?')[0]);
    if (scopes && !scopes.includes(scope)) return void res.status(403).json({ error: { code: 'insufficient_scope', message: `this API token lacks the ${scope} scope` } });
    if (needs === 'admin' && !atLeast(me.role, 'admin')) return void res.status(403).json({ error: { code: 'forbidden', message: 'only admins may do that' } });
    fn(req, res, me).then(
      (body) => (body === undefined ? res.status(204).end() : res.json(body)),
      (e: unknown) => (e instanceof ApiError ? res.status(e.status).json({ error: { code: e.code, message: e.message } }) : next(e)),
    );
  };
}
