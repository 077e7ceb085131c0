// GET /metrics: who may scrape. With METRICS_TOKEN set, whoever shows it as a bearer token
// (compared by hash, in constant time); without, only a client on this machine that did not
// come through a proxy (a proxy on the same host would make every visitor look local).
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';

export const hashMetricsToken = (token: string): Buffer => createHash('sha256').update(token).digest();

/** 127.0.0.0/8 and ::1, also as IPv4-mapped IPv6. */
export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const a = address.toLowerCase().replace(/^::ffff:/, '');
  return a === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(a);
}

const FORWARDED = ['forwarded', 'x-forwarded-for', 'x-real-ip'];

export type ScrapeDecision = { ok: true } | { ok: false; status: 401 | 403; reason: string };

export function mayScrape(req: Pick<IncomingMessage, 'headers'> & { socket: { remoteAddress?: string } }, tokenHash: Buffer | undefined): ScrapeDecision {
  if (tokenHash) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    if (!m) return { ok: false, status: 401, reason: 'a bearer token is needed' };
    return timingSafeEqual(hashMetricsToken(m[1]), tokenHash) ? { ok: true } : { ok: false, status: 403, reason: 'wrong token' };
  }
  if (!isLoopback(req.socket.remoteAddress)) return { ok: false, status: 403, reason: 'not from this machine (set METRICS_TOKEN to scrape from elsewhere)' };
  if (FORWARDED.some((h) => req.headers[h] !== undefined)) return { ok: false, status: 403, reason: 'came through a proxy (set METRICS_TOKEN to scrape through one)' };
  return { ok: true };
}

export function metricsEndpoint(opts: { scrape: () => Promise<{ contentType: string; body: string }>; tokenHash: Buffer | undefined; log: Logger }) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const may = mayScrape(req, opts.tokenHash);
    if (!may.ok) {
      const headers: Record<string, string> = { 'content-type': 'text/plain; charset=utf-8' };
      if (may.status === 401) headers['www-authenticate'] = 'Bearer';
      res.writeHead(may.status, headers).end(`${may.reason}\n`);
      return;
    }
    opts.scrape().then(
      ({ contentType, body }) => {
        res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' }).end(req.method === 'HEAD' ? undefined : body);
      },
      (e: unknown) => {
        opts.log.error({ err: String(e) }, 'could not collect the metrics');
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('the metrics could not be collected\n');
      },
    );
  };
}
