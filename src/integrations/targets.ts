// The one way an outgoing webhook reaches its target: a POST with a deadline, a bounded answer,
// and (unless the workspace allows it) no private, loopback or link-local address. The name
// is resolved here and the connection goes to the address that was checked, so a name that
// resolves differently a moment later (DNS rebinding) cannot slip past.
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { request as httpRequest, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { BlockList, isIP, type LookupFunction } from 'node:net';

const PRIVATE = new BlockList();
for (const [net, bits] of [['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12], ['192.0.0.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['224.0.0.0', 4], ['240.0.0.0', 4]] as const) PRIVATE.addSubnet(net, bits, 'ipv4');
for (const [net, bits] of [['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8], ['64:ff9b::', 96]] as const) PRIVATE.addSubnet(net, bits, 'ipv6');

/** True for an address no webhook should reach unless allowed: private, loopback, link-local,
 *  unspecified, multicast (an IPv4-mapped IPv6 address is judged as its IPv4 one). */
export function isPrivateAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return PRIVATE.check(mapped[1], 'ipv4');
  const family = isIP(address);
  if (family === 0) return true;
  return PRIVATE.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

export class TargetRefused extends Error {
  override name = 'TargetRefused';
}

export interface Answer {
  status: number;
  body: string;
}

const MAX_ANSWER = 64 * 1024;

/** POSTs `body`; rejects on a refused address, a network error or the deadline. */
export function postTo(url: string, body: string, headers: Record<string, string>, opts: { timeoutMs: number; allowPrivate: boolean }): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      return reject(new TargetRefused('not a URL'));
    }
    if (target.protocol !== 'http:' && target.protocol !== 'https:') return reject(new TargetRefused('not an http(s) URL'));
    const host = target.hostname.replace(/^\[(.*)\]$/, '$1');
    if (isIP(host) !== 0 && !opts.allowPrivate && isPrivateAddress(host)) return reject(new TargetRefused(`${host} is a private or loopback address`));
    const lookup: LookupFunction = (hostname, options, callback) => {
      dnsLookup(hostname, { all: true, family: options.family }, (err, addresses: LookupAddress[]) => {
        if (err) return callback(err, '', 4);
        const bad = opts.allowPrivate ? undefined : addresses.find((a) => isPrivateAddress(a.address));
        if (bad) return callback(new TargetRefused(`${hostname} resolves to a private or loopback address (${bad.address})`), '', 4);
        if (options.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
        const first = addresses[0];
        if (!first) return callback(new Error(`${hostname} has no address`), '', 4);
        callback(null, first.address, first.family);
      });
    };
    const options: RequestOptions = { method: 'POST', headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) }, lookup, timeout: opts.timeoutMs };
    const req = (target.protocol === 'https:' ? httpsRequest : httpRequest)(target, options, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= MAX_ANSWER) chunks.push(c);
      });
      res.on('end', () => {
        clearTimeout(deadline);
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
      });
      res.on('error', (e) => {
        clearTimeout(deadline);
        reject(e);
      });
    });
    // The whole exchange has the deadline, not only each pause between bytes.
    const deadline = setTimeout(() => req.destroy(new Error(`no answer within ${opts.timeoutMs} ms`)), opts.timeoutMs);
    req.on('timeout', () => req.destroy(new Error(`no answer within ${opts.timeoutMs} ms`)));
    req.on('error', (e) => {
      clearTimeout(deadline);
      reject(e);
    });
    req.end(body);
  });
}
