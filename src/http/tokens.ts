// API tokens and bot accounts under /api: anyone makes, lists and revokes their own tokens
// (the token is in the answer to its creation, and never again); admins make bot accounts and
// their tokens. A token authenticates `Authorization: Bearer` requests (src/http/auth.ts),
// with its scopes checked in apiRoute (src/http/api.ts).
import express from 'express';
import type { AccountStore } from '../accounts/store.js';
import { ApiError } from './api.js';
import { publicUser } from './auth.js';
import { endpoints, type ApiDoc } from './endpoints.js';
import { HookInputError, newBot, type Hooks } from '../integrations/hooks.js';
import { newToken, tokenHandle, type TokenRow, type Tokens } from '../integrations/tokens.js';

const view = (row: TokenRow) => ({ id: tokenHandle(row), name: row.name, scopes: row.scopes, createdAt: row.createdAt.toISOString(), lastUsedAt: row.lastUsedAt?.toISOString() ?? null, revoked: row.revoked });

export function tokensApi(opts: { tokens: Tokens; hooks: Hooks; users: AccountStore; doc: ApiDoc }): express.Router {
  const { tokens, hooks, users } = opts;
  const router = express.Router();
  const define = endpoints(router, opts.doc);

  const botNamed = async (id: string) => {
    const bot = await users.userById(id);
    if (!bot || !bot.bot) throw new ApiError(404, 'not_found', 'no such bot');
    return bot;
  };

  define({ method: 'get', path: '/api/tokens', tag: 'tokens', summary: 'Your API tokens (never the tokens themselves)' }, async ({ me }) => ({ tokens: (await tokens.list(me.id)).map(view) }));

  define({ method: 'post', path: '/api/tokens', tag: 'tokens', summary: 'Make an API token: it is in this answer and never shown again', body: newToken, status: 201 }, async ({ me, body }) => {
    const { token, row } = await tokens.create(me, body);
    return { token, ...view(row) };
  });

  define({ method: 'delete', path: '/api/tokens/:id', tag: 'tokens', summary: 'Revoke one of your API tokens' }, async ({ me, param }) => {
    if (!(await tokens.revoke(me.id, param('id')))) throw new ApiError(404, 'not_found', 'no such token');
    return undefined;
  });

  define({ method: 'get', path: '/api/bots', tag: 'bots', summary: 'Bot accounts', needs: 'admin' }, async () => ({ bots: (await users.listUsers()).filter((u) => u.bot).map((u) => ({ ...publicUser(u), bot: true, disabled: u.disabled })) }));

  define({ method: 'post', path: '/api/bots', tag: 'bots', summary: 'Make a bot account (it has no password; it acts through API tokens and webhooks)', needs: 'admin', body: newBot, status: 201 }, async ({ body }) => {
    if (await users.userByLogin(body.username)) throw new ApiError(409, 'taken', 'that username is taken');
    try {
      const bot = await hooks.bot(body.username, body.displayName);
      return { bot: { ...publicUser(bot), bot: true } };
    } catch (e) {
      if (e instanceof HookInputError) throw new ApiError(409, 'taken', e.message);
      throw e;
    }
  });

  define({ method: 'get', path: '/api/bots/:id/tokens', tag: 'bots', summary: "A bot's API tokens", needs: 'admin' }, async ({ param }) => ({ tokens: (await tokens.list((await botNamed(param('id'))).id)).map(view) }));

  define({ method: 'post', path: '/api/bots/:id/tokens', tag: 'bots', summary: 'Make an API token for a bot: it is in this answer and never shown again', needs: 'admin', body: newToken, status: 201 }, async ({ param, body }) => {
    const { token, row } = await tokens.create(await botNamed(param('id')), body);
    return { token, ...view(row) };
  });

  define({ method: 'delete', path: '/api/bots/:id/tokens/:token', tag: 'bots', summary: "Revoke a bot's API token", needs: 'admin' }, async ({ param }) => {
    if (!(await tokens.revoke((await botNamed(param('id'))).id, param('token')))) throw new ApiError(404, 'not_found', 'no such token');
    return undefined;
  });

  return router;
}

