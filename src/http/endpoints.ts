// The API's endpoints, declared once: each names its method, path, who may call it and the
// zod schemas of its body and query. The same declaration registers the Express handler
// (which parses the request with those schemas) and the endpoint's entry in the OpenAPI
// document served at /api/openapi.json, so the document cannot drift from what the server
// accepts. Handlers get the parsed body and query; a request that does not parse gets the
// API's one error shape, field by field.
import type { Request, Response, Router } from 'express';
import { OpenAPIRegistry, OpenApiGeneratorV3 } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import type { User } from '../accounts/schema.js';
import { apiRoute, invalid, scopeFor } from './api.js';

export type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

/** The API's one error shape. */
export const errorShape = z.object({ error: z.object({ code: z.string(), message: z.string() }) });

export interface EndpointSpec<B extends z.ZodType | undefined, Q extends z.ZodType | undefined> {
  method: Method;
  /** Express style: /api/rooms/:id */
  path: string;
  summary: string;
  /** the section of the reference it belongs to */
  tag: string;
  /** admin: refused to anyone below admin (default: any signed-in user) */
  needs?: 'user' | 'admin';
  body?: B;
  query?: Q;
  /** the status of success (default 200; 204 when the handler returns nothing) */
  status?: number;
  description?: string;
}

type Parsed<S> = S extends z.ZodType ? z.output<S> : undefined;

export interface Call<B, Q> {
  req: Request;
  res: Response;
  me: User;
  body: B;
  query: Q;
  /** a path parameter, as a string ('' when absent) */
  param(name: string): string;
}

export interface ApiDoc {
  /** `sessionOnly`: an account action that an API token may never do (its x-scope is session-only);
   *  `rawBody`: the body is the raw bytes of a file (what it is, said in words) */
  add(entry: { method: Method; path: string; summary: string; tag: string; needs: 'user' | 'admin' | 'none'; body?: z.ZodType; query?: z.ZodType; status?: number; description?: string; sessionOnly?: boolean; rawBody?: string }): void;
  /** every endpoint declared so far, as `METHOD /path` (Express style) */
  list(): string[];
  document(info: { version: string; title: string }): ReturnType<OpenApiGeneratorV3['generateDocument']>;
}

const toOpenApiPath = (path: string) => path.replace(/:(\w+)/g, '{$1}');
const paramsOf = (path: string) => [...path.matchAll(/:(\w+)/g)].map((m) => m[1]);

export function createApiDoc(): ApiDoc {
  const registry = new OpenAPIRegistry();
  const listed: string[] = [];
  registry.registerComponent('securitySchemes', 'bearer', { type: 'http', scheme: 'bearer', description: 'a personal or bot API token' });
  registry.registerComponent('securitySchemes', 'session', { type: 'apiKey', in: 'cookie', name: 'sid', description: 'the session cookie of a signed-in browser; state-changing requests also need the x-csrf-token header (GET /api/auth/csrf)' });

  return {
    add(e) {
      listed.push(`${e.method.toUpperCase()} ${e.path}`);
      const names = paramsOf(e.path);
      const params = names.length > 0 ? z.object(Object.fromEntries(names.map((n) => [n, z.string()]))) : undefined;
      const query = e.query instanceof z.ZodObject ? e.query : undefined;
      const status = e.status ?? 200;
      const errors = (codes: number[]) => Object.fromEntries(codes.map((c) => [c, { description: ERROR_TEXT[c] ?? 'error', content: { 'application/json': { schema: errorShape } } }]));
      registry.registerPath({
        method: e.method,
        path: toOpenApiPath(e.path),
        summary: e.summary,
        // Bearer schemes carry no scopes in OpenAPI 3: the token's scope is said here, and in x-scope.
        description: [e.description, e.needs === 'none' ? undefined : e.sessionOnly ? 'Only with a session: an API token is refused (403 session_only).' : `An API token needs the \`${scopeFor(e.method.toUpperCase(), e.needs, e.path)}\` scope.`].filter(Boolean).join('\n\n'),
        ...(e.needs === 'none' ? {} : { 'x-scope': e.sessionOnly ? 'session-only' : scopeFor(e.method.toUpperCase(), e.needs, e.path) }),
        tags: [e.tag],
        security: e.needs === 'none' ? [] : e.sessionOnly ? [{ session: [] }] : [{ bearer: [] }, { session: [] }],
        request: {
          ...(params ? { params } : {}),
          ...(query ? { query } : {}),
          ...(e.body ? { body: { content: { 'application/json': { schema: e.body } } } } : {}),
          ...(e.rawBody ? { body: { description: e.rawBody, content: { 'application/octet-stream': { schema: z.string() } } } } : {}),
        },
        responses: {
          [status]: { description: status === 204 ? 'done, nothing to return' : 'done' },
          ...errors([400, ...(e.needs === 'none' ? [] : [401, 403]), 404, 429]),
        },
      });
    },
    list: () => [...listed],
    document(info) {
      return new OpenApiGeneratorV3(registry.definitions).generateDocument({
        openapi: '3.0.3',
        info: { ...info, description: 'The HTTP API of Chatroom of Requirement: what the page itself uses, and what integrations use. Errors always have the shape {"error": {"code", "message"}}.' },
        servers: [{ url: '/' }],
      });
    },
  };
}

const ERROR_TEXT: Record<number, string> = {
  400: 'the request does not parse: the message says which field and why',
  401: 'not signed in, or the token is not valid',
  403: 'signed in, but not allowed (a room you may see but not change, a missing scope)',
  404: 'no such thing, or one you may not see (the two answer alike)',
  429: 'too many requests: Retry-After says when to come back',
};

/** Declares endpoints on `router`, each also entered in `doc`. */
export function endpoints(router: Router, doc: ApiDoc) {
  return function define<B extends z.ZodType | undefined = undefined, Q extends z.ZodType | undefined = undefined>(
    spec: EndpointSpec<B, Q>,
    handler: (call: Call<Parsed<B>, Parsed<Q>>) => Promise<unknown>,
  ): void {
    const needs = spec.needs ?? 'user';
    doc.add({ ...spec, needs });
    router[spec.method](
      spec.path,
      apiRoute(needs, async (req, res, me) => {
        let body: unknown;
        let query: unknown;
        if (spec.body) {
          const p = spec.body.safeParse(req.body ?? {});
          if (!p.success) throw invalid(p.error);
          body = p.data;
        }
        if (spec.query) {
          const p = spec.query.safeParse(req.query);
          if (!p.success) throw invalid(p.error);
          query = p.data;
        }
        if (spec.status !== undefined) res.status(spec.status);
        return handler({ req, res, me, body: body as Parsed<B>, query: query as Parsed<Q>, param: (name) => String(req.params[name] ?? '') });
      }),
    );
  };
}
