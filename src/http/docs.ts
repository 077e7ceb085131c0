// The API's reference: the OpenAPI document generated from the endpoints' declarations
// (src/http/endpoints.ts), as JSON for tools and as a page for people. Neither needs a
// session: the document says what the API accepts, nothing about anyone's data.
import express from 'express';
import type { ApiDoc } from './endpoints.js';

const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;

interface Operation {
  summary?: string;
  description?: string;
  tags?: string[];
  security?: unknown[];
  parameters?: Array<{ name: string; in: string; required?: boolean; schema?: unknown }>;
  requestBody?: { content?: Record<string, { schema?: unknown }> };
  responses?: Record<string, { description?: string }>;
}

export function docsApi(opts: { doc: ApiDoc }): express.Router {
  const router = express.Router();
  // Made on first request: by then every router has declared its endpoints.
  let document: ReturnType<ApiDoc['document']> | undefined;
  const get = () => (document ??= opts.doc.document({ title: 'Chatroom of Requirement API', version: '1' }));

  router.get('/api/openapi.json', (_req, res) => {
    res.set('Cache-Control', 'no-cache').json(get());
  });

  router.get('/api/docs', (_req, res) => {
    const doc = get();
    const sections = new Map<string, Array<{ method: string; path: string; op: Operation; body?: string }>>();
    for (const [path, item] of Object.entries(doc.paths ?? {})) {
      for (const method of METHODS) {
        const op = (item as Record<string, Operation | undefined>)[method];
        if (!op) continue;
        const tag = op.tags?.[0] ?? 'other';
        const schema = op.requestBody?.content?.['application/json']?.schema;
        const list = sections.get(tag) ?? [];
        list.push({ method: method.toUpperCase(), path, op, body: schema === undefined ? undefined : JSON.stringify(schema, null, 2) });
        sections.set(tag, list);
      }
    }
    res.render('api-docs', { title: 'API reference', info: doc.info, sections: [...sections].map(([tag, ops]) => ({ tag, ops })) });
  });

  return router;
}
