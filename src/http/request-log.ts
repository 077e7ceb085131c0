// Every HTTP request gets an id (sent back as X-Request-Id), a logger that carries it for
// whatever the handlers log, and one line when it is answered. The line has the path without
// its query (an invitation's token rides in one) and without a webhook's secret, and no header,
// cookie or body.
import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from 'pino';

declare module 'express-serve-static-core' {
  interface Locals {
    /** the request's logger, with its id */
    log?: Logger;
  }
}

export function requestLog(log: Logger) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const id = randomUUID();
    const started = performance.now();
    const { method } = req;
    // Routers mounted on a path rewrite it while they run. An incoming webhook's path is its
    // secret: the log shows where it went, not the secret.
    const path = req.path.replace(/^\/hooks\/[^/]+/, '/hooks/[redacted]');
    const reqLog = log.child({ req: id });
    res.locals.log = reqLog;
    res.setHeader('X-Request-Id', id);
    res.once('close', () => {
      const ms = Math.round((performance.now() - started) * 10) / 10;
      reqLog.info({ method, path, status: res.statusCode, ms, ...(res.writableFinished ? {} : { aborted: true }) }, 'request');
    });
    next();
  };
}

/** The request's logger (the app's when the middleware did not run). */
export const logOf = (res: Response, fallback: Logger): Logger => res.locals.log ?? fallback;
