// GET /api/search?q=...&cursor=...&limit=...: the messages the viewer may read that match, newest
// first, each with its room, author and the words to highlight (src/search/). A bad query is a
// 400 that says what is wrong with it.
import express from 'express';
import { z } from 'zod';
import { toWire } from '../chat/protocol.js';
import { MAX_QUERY, parseQuery, QueryError } from '../search/query.js';
import type { Search } from '../search/service.js';
import { ApiError } from './api.js';
import { endpoints, type ApiDoc } from './endpoints.js';

const searchQuery = z.object({
  q: z.string().trim().min(1, 'type something to search for').max(MAX_QUERY, `at most ${MAX_QUERY} characters`),
  cursor: z.string().min(1).max(400).optional(),
  limit: z.coerce.number().int().min(1).max(50).default(20),
});

export function searchApi(opts: { search: Search; doc: ApiDoc }): express.Router {
  const router = express.Router();
  const define = endpoints(router, opts.doc);
  define({
    method: 'get',
    path: '/api/search',
    tag: 'search',
    summary: 'Messages the viewer may read that match, newest first',
    description: 'q: words (each also a prefix), "quoted phrases", in:ROOM, from:USERNAME, before:/after:YYYY-MM-DD, has:file, has:link, is:thread. A bad query is 400 bad_query; `cursor` is the last page\'s.',
    query: searchQuery,
  }, async ({ me, query: params }) => {
    try {
      const query = parseQuery(params.q);
      const page = await opts.search.search({ user: me }, query, { cursor: params.cursor, limit: params.limit });
      return {
        results: page.hits.map((h) => ({ message: toWire(h.message, 2), room: { id: h.room.id, kind: h.room.kind, name: h.room.name }, highlights: h.highlights })),
        cursor: page.cursor ?? null,
      };
    } catch (e) {
      if (e instanceof QueryError) throw new ApiError(400, 'bad_query', e.message);
      throw e;
    }
  });
  return router;
}
