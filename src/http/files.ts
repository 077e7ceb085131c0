// Files over HTTP. POST /api/rooms/:id/files takes the file as the raw request body (its name
// and an optional caption in the query), streamed to storage a chunk at a time: nothing
// buffers it whole, a declared Content-Length over the limit is refused before a byte is
// read, and a body that passes the limit is refused with 413 the moment it does, with what
// was written deleted. The file then becomes a message through the one posting path.
// GET /api/files/:id[/thumb] serves it to those who may read its room (src/chat/access.ts),
// and to no one else: a file in a room one may not read is a 404, exactly like a missing one.
// Files have no URL but their random 128-bit id, are never cached publicly, carry
// nosniff, and anything a browser could run (HTML, SVG, ...) comes as a download.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import express, { type Request, type Response } from 'express';
import { z } from 'zod';
import type { Logger } from 'pino';
import { isRoomId, type Access, type Viewer } from '../chat/access.js';
import { text, toWire } from '../chat/protocol.js';
import { PostRefused, type Posting } from '../chat/posting.js';
import type { AccountStore } from '../accounts/store.js';
import type { MessageStore } from '../db/messages.js';
import { servedInline } from '../files/detect.js';
import { attachmentOf, TooLargeError, type FileRow, type Files } from '../files/store.js';
import { BadImageError, ImageTooLargeError } from '../files/thumbs.js';
import { ApiError, apiRoute, invalid } from './api.js';
import type { ApiDoc } from './endpoints.js';
import { logOf } from './request-log.js';

export interface FilesApiOptions {
  access: Access;
  files: Files;
  messages: MessageStore;
  posting: Posting;
  users: AccountStore;
  /** MAX_UPLOAD_BYTES */
  maxBytes: number;
  log: Logger;
  /** the API's OpenAPI document, where these routes are entered */
  doc?: ApiDoc;
}

const noControl = /^[^\p{Cc}]*$/u;
const uploadQuery = z.object({
  name: text().trim().min(1, 'must not be empty').max(255, 'must be at most 255 characters').regex(noControl, 'must not contain control characters'),
  caption: text().max(2000, 'must be at most 2000 characters').optional(),
  /** a reply in the thread of this message */
  thread: z.string().min(1).max(128).optional(),
});

/** The request's body, a chunk at a time, with backpressure. Unlike iterating the stream
 *  itself, stopping early leaves the request open, so that a 413 can still be answered. */
async function* bodyOf(req: IncomingMessage): AsyncGenerator<Buffer> {
  const queue: Buffer[] = [];
  let ended = false;
  let failed: Error | undefined;
  let wake: (() => void) | undefined;
  const poke = () => {
    wake?.();
    wake = undefined;
  };
  const onData = (c: Buffer) => {
    queue.push(c);
    req.pause();
    poke();
  };
  const onEnd = () => {
    ended = true;
    poke();
  };
  const onError = (e: Error) => {
    failed = e;
    poke();
  };
  const onAborted = () => onError(new Error('the upload was cut off'));
  req.on('data', onData);
  req.on('end', onEnd);
  req.on('error', onError);
  req.on('aborted', onAborted);
  try {
    for (;;) {
      const c = queue.shift();
      if (c) {
        yield c;
        continue;
      }
      if (failed) throw failed;
      if (ended) return;
      req.resume();
      await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    req.off('data', onData);
    req.off('end', onEnd);
    req.off('error', onError);
    req.off('aborted', onAborted);
  }
}

/** `attachment; filename=...` that any browser reads, for any name. */
function disposition(kind: 'inline' | 'attachment', name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\%]/g, '_');
  return `${kind}; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

export function filesApi(opts: FilesApiOptions): express.Router {
  const { access, files, messages, users } = opts;
  const router = express.Router();
  const err = (status: number, code: string, message: string) => new ApiError(status, code, message);
  const notFound = () => err(404, 'not_found', 'no such file');

  /** A 413 now, and the rest of the body is not read: the connection is closed after it. */
  function refuse(req: Request, res: Response, e: TooLargeError): typeof NO_BODY {
    res.status(413).set('Connection', 'close').json({ error: { code: e.reason === 'quota' ? 'quota' : 'too_large', message: e.message, limit: e.limit } });
    // The client gets a moment to read the answer before the socket goes.
    res.on('finish', () => setTimeout(() => req.destroy(), 1000).unref());
    req.resume();
    return NO_BODY;
  }

  router.post('/api/rooms/:id/files', wrapSent(apiRoute('user', async (req, res, me) => {
    const viewer: Viewer = { user: me };
    const roomId = String(req.params.id ?? '');
    if (!isRoomId(roomId)) throw err(404, 'not_found', 'no such room');
    const c = await access.check(viewer, roomId, 'post');
    if (!c.ok) throw c.code === 'not_found' ? err(404, 'not_found', 'no such room') : err(403, 'forbidden', c.reason);
    const q = uploadQuery.safeParse(req.query);
    if (!q.success) throw invalid(q.error);
    const quotaMiB = (await users.settings()).fileQuotaMiB;
    let limit = opts.maxBytes;
    let limitReason: 'size' | 'quota' = 'size';
    if (quotaMiB > 0) {
      const left = Math.max(0, quotaMiB * 1024 * 1024 - (await files.usage(me.id)));
      if (left < limit) [limit, limitReason] = [left, 'quota'];
    }
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) return refuse(req, res, new TooLargeError(limit, limitReason));
    const messageId = randomUUID();
    let file: FileRow;
    try {
      file = await files.upload({ room: c.room.id, owner: me.id, message: messageId, name: q.data.name, body: bodyOf(req), limit, limitReason });
    } catch (e) {
      if (e instanceof TooLargeError) return refuse(req, res, e);
      if (e instanceof ImageTooLargeError) throw err(422, 'image_too_large', e.message);
      if (e instanceof BadImageError) throw err(422, 'bad_image', e.message);
      throw e;
    }
    try {
      const { message } = await opts.posting.post(me, c.room, { id: messageId, body: q.data.caption?.trim() ?? '', file: attachmentOf(file), ...(q.data.thread ? { thread: q.data.thread } : {}) });
      res.status(201);
      return { message: toWire(message, 2), file: attachmentOf(file) };
    } catch (e) {
      // No message, so no file: it is deleted (the sweep would, later).
      await files.remove(file.id).catch((x: unknown) => logOf(res, opts.log).warn({ err: String(x) }, 'could not delete the file of a refused post'));
      if (e instanceof PostRefused) throw e.code === 'not_found' ? err(404, 'not_found', e.message) : err(403, 'forbidden', e.message);
      throw e;
    }
  })));

  /** The file, if the viewer may read its room and its message still shows it. */
  async function readable(viewer: Viewer, id: string): Promise<FileRow> {
    if (!/^[\w-]{22}$/.test(id)) throw notFound();
    const file = await files.get(id);
    if (!file || file.state !== 'ready') throw notFound();
    const c = await access.check(viewer, file.room, 'read');
    if (!c.ok) throw notFound();
    const m = await messages.get(file.message);
    if (!m || m.deleted || m.file?.id !== file.id) throw notFound();
    return file;
  }

  async function send(req: Request, res: Response, file: FileRow, body: AsyncIterable<Buffer>, type: string, size: number | undefined, name: string): Promise<void> {
    const inline = servedInline(type);
    res.set({
      'Content-Type': type.startsWith('text/') ? `${type}; charset=utf-8` : type,
      'X-Content-Type-Options': 'nosniff',
      'Content-Disposition': disposition(inline ? 'inline' : 'attachment', name),
      // Even opened directly, it runs nothing and reaches nothing.
      'Content-Security-Policy': "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; sandbox",
      // Asked again each time (access may have changed), answered 304 when unchanged.
      'Cache-Control': 'private, no-cache',
      ETag: `"${file.id}${size === undefined ? '-t' : ''}"`,
    });
    if (req.headers['if-none-match'] === res.get('ETag')) return void res.status(304).end();
    if (size !== undefined) res.set('Content-Length', String(size));
    if (req.method === 'HEAD') return void res.end();
    let closed = false;
    res.on('close', () => (closed = true));
    try {
      for await (const chunk of body) {
        if (closed) return;
        if (!res.write(chunk)) await new Promise<void>((resolve) => res.once('drain', resolve).once('close', resolve));
      }
      res.end();
    } catch (e) {
      // Half sent: all the client can be told is that the answer broke off.
      logOf(res, opts.log).warn({ err: String(e) }, 'a file could not be read to its end');
      res.destroy();
    }
  }

  const download = (thumb: boolean) =>
    apiRoute('user', async (req, res, me) => {
      const file = await readable({ user: me }, String(req.params.id ?? ''));
      if (thumb) {
        if (!file.thumb) throw err(404, 'not_found', 'this file has no thumbnail');
        await send(req, res, file, files.readThumb(file), 'image/webp', undefined, `${file.name}.webp`);
      } else {
        await send(req, res, file, files.read(file), file.type, file.size, file.name);
      }
      return res.headersSent ? NO_BODY : undefined;
    });
  router.get('/api/files/:id', wrapSent(download(false)));
  router.get('/api/files/:id/thumb', wrapSent(download(true)));

  opts.doc?.add({
    method: 'post',
    path: '/api/rooms/:id/files',
    summary: 'Upload a file to a room, posted as a message (the caption is its text)',
    tag: 'files',
    needs: 'user',
    query: uploadQuery,
    status: 201,
    rawBody: `the file's bytes as the whole body, streamed; at most ${opts.maxBytes} bytes (MAX_UPLOAD_BYTES) and the uploader's quota: 413 as soon as it is passed, nothing kept`,
    description: 'Answers {message, file}. The type is detected from the bytes. 422 image_too_large for an image past the pixel limit (a decompression bomb), 422 bad_image for an image that cannot be read.',
  });
  opts.doc?.add({ method: 'get', path: '/api/files/:id', summary: "A file's bytes, to those who may read its room (404 to anyone else, as for no file)", tag: 'files', needs: 'user', description: 'With X-Content-Type-Options: nosniff; anything a browser could run (HTML, SVG, ...) as Content-Disposition: attachment.' });
  opts.doc?.add({ method: 'get', path: '/api/files/:id/thumb', summary: "An image's thumbnail (WebP, at most 360 px a side)", tag: 'files', needs: 'user' });

  return router;
}

/** apiRoute answers 204 for undefined: a handler that has answered itself returns this. */
const NO_BODY = Symbol('answered');

/** Lets a handler that streamed its own answer tell apiRoute not to answer again. */
function wrapSent(handler: ReturnType<typeof apiRoute>): ReturnType<typeof apiRoute> {
  return (req, res, next) => {
    const json = res.json.bind(res);
    res.json = ((body: unknown) => (body === NO_BODY || res.headersSent ? res : json(body))) as typeof res.json;
    handler(req, res, next);
  };
}

