// GET /api/admin/status: the deployment's status (src/ops/status.ts) for admins and owners,
// the same as `npm run status -- --json` prints, whichever process answers.
import express from 'express';
import type { Status } from '../ops/status.js';
import { apiRoute } from './api.js';

export function statusApi(opts: { read: () => Promise<Status> }): express.Router {
  const router = express.Router();
  router.get('/api/admin/status', apiRoute('admin', async () => ({ status: await opts.read() })));
  return router;
}
