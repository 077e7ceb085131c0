// TCP front of the embedded server: V1_0 handshake with SCRAM-SHA-256, then framed JSON queries.
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Cursor, Engine, QueryContext } from '../engine/api.js';
import { ReqlError } from '../engine/api.js';
import { ErrorType, QueryType, ResponseType, VERSION_V1_0 } from '../proto.js';
import { checkSurrogates } from './surrogates.js';

/**
 * For tests: make the server as unkind as a real cluster. Each connection's r.now() is off
 * by up to `clockSkewMs` either way (nodes' clocks differ), and each write commits up to
 * `commitDelayMs` after its r.now() was taken, so writes from different connections commit
 * in another order than their timestamps (a connection's own writes stay in order).
 */
export interface UnkindOptions {
  commitDelayMs: number;
  clockSkewMs: number;
}

export interface WireOptions {
  engine: Engine;
  host?: string;
  port?: number;
  password?: string;
  maxQueryBytes?: number;
  unkind?: UnkindOptions;
}

function connectionContext(unkind: UnkindOptions | undefined): QueryContext {
  if (!unkind || (unkind.commitDelayMs <= 0 && unkind.clockSkewMs <= 0)) return {};
  const clockOffsetMs = (Math.random() * 2 - 1) * unkind.clockSkewMs;
  if (unkind.commitDelayMs <= 0) return { clockOffsetMs };
  let previous: Promise<unknown> = Promise.resolve();
  return {
    clockOffsetMs,
    beforeWrite() {
      const commitAt = Date.now() + Math.random() * unkind.commitDelayMs;
      const turn = previous.then(() => sleep(Math.max(0, commitAt - Date.now())));
      previous = turn;
      return turn;
    },
  };
}

const ITERATIONS = 4096;
const HANDSHAKE_TIMEOUT_MS = 30_000;

export async function startWireServer(opts: WireOptions) {
  const salt = randomBytes(16);
  const salted = pbkdf2Sync(opts.password ?? '', salt, ITERATIONS, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  const maxQuery = opts.maxQueryBytes ?? 64 * 1024 * 1024;
  const sockets = new Set<net.Socket>();
  let refusingWritesUntil = 0;

  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.setNoDelay(true);
    const cursors = new Map<bigint, Cursor>();
    const unkind = connectionContext(opts.unkind);
    // Writes refused while refuseWrites() says so (tests: a table without a primary). The
    // hook is there only then (or when unkind), so other queries are not walked for writes.
    const refusing = async () => {
      if (Date.now() < refusingWritesUntil) throw new ReqlError('Cannot perform write: primary replica for shard ["", +inf) not available', ResponseType.RUNTIME_ERROR, ErrorType.OP_FAILED);
      await unkind.beforeWrite?.();
    };
    const context: QueryContext = {
      clockOffsetMs: unkind.clockOffsetMs,
      get beforeWrite() {
        return Date.now() < refusingWritesUntil ? refusing : unkind.beforeWrite;
      },
    };
    const noreplyPending = new Set<Promise<unknown>>();
    let buf: Buffer = Buffer.alloc(0);
    let stage: 'magic' | 'first' | 'final' | 'ready' | 'closed' = 'magic';
    let clientFirstBare = '';
    let serverFirst = '';
    let nonce = '';
    const timer = setTimeout(() => sock.destroy(), HANDSHAKE_TIMEOUT_MS);

    const cleanup = () => {
      stage = 'closed';
      clearTimeout(timer);
      sockets.delete(sock);
      for (const c of cursors.values()) c.close();
      cursors.clear();
    };
    sock.on('close', cleanup);
    sock.on('error', () => sock.destroy());

    const sendJson = (obj: unknown) => sock.write(JSON.stringify(obj) + '\0');
    const authFail = (msg: string, code = 12) => {
      sendJson({ success: false, error: msg, error_code: code });
      sock.end();
      stage = 'closed';
    };
    const respond = (token: bigint, body: unknown) => {
      if (sock.destroyed) return;
      const payload = Buffer.from(JSON.stringify(body));
      const head = Buffer.alloc(12);
      head.writeBigUInt64LE(token, 0);
      head.writeUInt32LE(payload.length, 8);
      sock.write(Buffer.concat([head, payload]));
    };
    const clientError = (token: bigint, msg: string) => respond(token, { t: ResponseType.CLIENT_ERROR, r: [msg], b: [] });
    const errorResponse = (token: bigint, e: unknown) => {
      if (e instanceof ReqlError) respond(token, { t: e.responseType, r: [e.message], b: e.backtrace, ...(e.errorType ? { e: e.errorType } : {}) });
      else respond(token, { t: ResponseType.RUNTIME_ERROR, r: [e instanceof Error ? e.message : String(e)], b: [], e: ErrorType.INTERNAL });
    };

    const sendBatch = async (token: bigint, cursor: Cursor) => {
      try {
        const batch = await cursor.next();
        if (batch.done) cursors.delete(token);
        respond(token, { t: batch.done ? ResponseType.SUCCESS_SEQUENCE : ResponseType.SUCCESS_PARTIAL, r: batch.items, n: cursor.notes });
      } catch (e) {
        cursors.delete(token);
        cursor.close();
        errorResponse(token, e);
      }
    };

    const handleQuery = (token: bigint, raw: string) => {
      let q: unknown;
      const checked = checkSurrogates(raw);
      if (!checked.ok) return clientError(token, 'Client is buggy (failed to deserialize query).');
      try {
        q = JSON.parse(checked.text);
      } catch {
        return clientError(token, `Client is buggy (failed to deserialize query).`);
      }
      if (!Array.isArray(q) || typeof q[0] !== 'number') return clientError(token, 'Client is buggy (failed to deserialize query).');
      const type = q[0];
      if (type === QueryType.START) {
        if (cursors.has(token)) return clientError(token, `ERROR: duplicate token ${token}`);
        const globals = (q[2] && typeof q[2] === 'object' && !Array.isArray(q[2]) ? q[2] : {}) as Record<string, unknown>;
        const noreply = globals.noreply === true;
        const { noreply: _n, ...rest } = globals;
        const p = opts.engine.run(q[1], rest, context).then(
          async (res) => {
            if (noreply) {
              if (res.kind === 'cursor') res.cursor.close();
              return;
            }
            if (res.kind === 'atom') respond(token, { t: ResponseType.SUCCESS_ATOM, r: [res.value] });
            else {
              cursors.set(token, res.cursor);
              await sendBatch(token, res.cursor);
            }
          },
          (e: unknown) => {
            if (!noreply) errorResponse(token, e);
          },
        );
        if (noreply) {
          noreplyPending.add(p);
          p.finally(() => noreplyPending.delete(p));
        }
      } else if (type === QueryType.CONTINUE) {
        const c = cursors.get(token);
        if (!c) return clientError(token, `Token ${token} not in stream cache.`);
        void sendBatch(token, c);
      } else if (type === QueryType.STOP) {
        const c = cursors.get(token);
        if (c) {
          cursors.delete(token);
          c.close();
        }
        respond(token, { t: ResponseType.SUCCESS_SEQUENCE, r: [] });
      } else if (type === QueryType.NOREPLY_WAIT) {
        const waiting = [...noreplyPending];
        void Promise.allSettled(waiting).then(() => respond(token, { t: ResponseType.WAIT_COMPLETE, r: [] }));
      } else if (type === QueryType.SERVER_INFO) {
        respond(token, { t: ResponseType.SERVER_INFO, r: [opts.engine.serverInfo()] });
      } else clientError(token, `Unrecognized QueryType: ${type}.`);
    };

    const takeNullTerminated = (): string | undefined => {
      const i = buf.indexOf(0);
      if (i < 0) {
        if (buf.length > 64 * 1024) sock.destroy();
        return undefined;
      }
      const s = buf.subarray(0, i).toString('utf8');
      buf = buf.subarray(i + 1);
      return s;
    };

    sock.on('data', (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      for (;;) {
        if (stage === 'closed') return;
        if (stage === 'magic') {
          if (buf.length < 4) return;
          const magic = buf.readUInt32LE(0);
          buf = buf.subarray(4);
          if (magic !== VERSION_V1_0) {
            sock.end('ERROR: Received an unsupported protocol version. This port is for RethinkDB queries. Does your client driver version not match the server?\n\0');
            stage = 'closed';
            return;
          }
          sendJson({ success: true, min_protocol_version: 0, max_protocol_version: 0, server_version: '2.4.4' });
          stage = 'first';
        } else if (stage === 'first') {
          const s = takeNullTerminated();
          if (s === undefined) return;
          let msg: { protocol_version?: unknown; authentication_method?: unknown; authentication?: unknown };
          try {
            msg = JSON.parse(s);
          } catch {
            return authFail('Expected a JSON object with protocol_version, authentication_method and authentication.', 10);
          }
          if (msg.protocol_version !== 0) return authFail('Unsupported `protocol_version`.', 10);
          if (msg.authentication_method !== 'SCRAM-SHA-256' || typeof msg.authentication !== 'string') return authFail('Unsupported `authentication_method`.', 10);
          const m = /^n,,(n=([^,]*),r=([^,]+).*)$/.exec(msg.authentication);
          if (!m) return authFail('Invalid SCRAM client-first message.', 10);
          if (m[2] !== 'admin') return authFail('Unknown user', 17);
          clientFirstBare = m[1];
          nonce = m[3] + randomBytes(18).toString('base64');
          serverFirst = `r=${nonce},s=${salt.toString('base64')},i=${ITERATIONS}`;
          sendJson({ success: true, authentication: serverFirst });
          stage = 'final';
        } else if (stage === 'final') {
          const s = takeNullTerminated();
          if (s === undefined) return;
          let msg: { authentication?: unknown };
          try {
            msg = JSON.parse(s);
          } catch {
            return authFail('Expected a JSON object with authentication.', 10);
          }
          const a = typeof msg.authentication === 'string' ? /^(c=([^,]*),r=([^,]+)),p=(.+)$/.exec(msg.authentication) : null;
          if (!a || a[3] !== nonce) return authFail('Invalid SCRAM client-final message.', 10);
          const authMessage = `${clientFirstBare},${serverFirst},${a[1]}`;
          const sig = createHmac('sha256', storedKey).update(authMessage).digest();
          const proof = Buffer.from(a[4], 'base64');
          const key = Buffer.alloc(32);
          if (proof.length !== 32) return authFail('Wrong password', 12);
          for (let i = 0; i < 32; i++) key[i] = proof[i] ^ sig[i];
          if (!timingSafeEqual(createHash('sha256').update(key).digest(), storedKey)) return authFail('Wrong password', 12);
          const serverSig = createHmac('sha256', serverKey).update(authMessage).digest('base64');
          sendJson({ success: true, authentication: `v=${serverSig}` });
          clearTimeout(timer);
          stage = 'ready';
        } else {
          if (buf.length < 12) return;
          const token = buf.readBigUInt64LE(0);
          const len = buf.readUInt32LE(8);
          if (len > maxQuery) {
            clientError(token, `Query size (${len}) greater than maximum (${maxQuery}).`);
            sock.end();
            stage = 'closed';
            return;
          }
          if (buf.length < 12 + len) return;
          const raw = buf.subarray(12, 12 + len).toString('utf8');
          buf = buf.subarray(12 + len);
          handleQuery(token, raw);
        }
      }
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const addr = server.address() as net.AddressInfo;
  return {
    host: addr.address,
    port: addr.port,
    connectionCount: () => sockets.size,
    /** For tests: every write fails for `ms`, as on RethinkDB while a table has no primary. */
    refuseWrites(ms: number): void {
      refusingWritesUntil = Date.now() + ms;
    },
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
    },
  };
}
