// Uploaded files: their metadata in the `files` table (every process sees every file), their
// bytes in the Blobs (database chunks or UPLOAD_DIR). An upload is read as a stream, a chunk
// at a time: its type is taken from the first bytes, it is stopped the moment it passes its
// limit, and whatever was written of a refused or failed upload is deleted. A file's message
// id is chosen before the message is posted, so that a file always names the one message
// that may show it (src/files/retention.ts relies on it).
import { randomBytes } from 'node:crypto';
import { r } from 'rethinkdb-ts';
import { z } from 'zod';
import type { FileAttachment } from '../chat/message.js';
import type { Pool } from '../db/pool.js';
import { FILES } from '../db/schema.js';
import type { Blobs } from './blobs.js';
import { detectType, isImage, SNIFF_BYTES } from './detect.js';
import { makeThumbnail } from './thumbs.js';

export const fileRow = z.object({
  /** 128 random bits, base64url: the only handle on a file, and not one that can be guessed */
  id: z.string(),
  room: z.string(),
  owner: z.string(),
  /** the message that shows it (chosen before it is posted) */
  message: z.string(),
  name: z.string(),
  /** detected from the bytes */
  type: z.string(),
  size: z.number(),
  created: z.date(),
  /** 'uploading' until every byte is stored */
  state: z.enum(['uploading', 'ready']),
  width: z.number().optional(),
  height: z.number().optional(),
  thumb: z.boolean().optional(),
});
export type FileRow = z.output<typeof fileRow>;

/** The upload passed its limit: `limit` bytes, for `reason`. */
export class TooLargeError extends Error {
  override name = 'TooLargeError';
  constructor(
    readonly limit: number,
    readonly reason: 'size' | 'quota',
  ) {
    super(reason === 'size' ? `the file is larger than the limit of ${formatBytes(limit)}` : `the file would pass your storage quota (${formatBytes(limit)} left)`);
  }
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 10 ? Math.round(v) : Math.round(v * 10) / 10} ${units[i]}`;
}

export const newFileId = () => randomBytes(16).toString('base64url');
const thumbKey = (id: string) => `${id}.thumb`;

export interface Upload {
  room: string;
  owner: string;
  message: string;
  name: string;
  /** the bytes as they arrive */
  body: AsyncIterable<Buffer>;
  /** the most bytes taken, and why that many */
  limit: number;
  limitReason: 'size' | 'quota';
}

export interface Files {
  readonly blobs: Blobs;
  /** Stores an upload; throws TooLargeError, ImageTooLargeError, BadImageError with nothing kept. */
  upload(u: Upload): Promise<FileRow>;
  get(id: string): Promise<FileRow | undefined>;
  read(file: FileRow): AsyncIterable<Buffer>;
  readThumb(file: FileRow): AsyncIterable<Buffer>;
  /** Bytes a user's files take now. */
  usage(owner: string): Promise<number>;
  /** Deletes the bytes, then the row (a sweep stopped between them finds the row again). */
  remove(id: string): Promise<void>;
  /** Files created before `before`, oldest first, after the (created, id) of `after`. */
  olderThan(before: Date, after: { created: Date; id: string } | undefined, limit: number): Promise<FileRow[]>;
}

export const attachmentOf = (f: FileRow): FileAttachment => ({
  id: f.id,
  name: f.name,
  type: f.type,
  size: f.size,
  ...(f.width !== undefined ? { width: f.width, height: f.height } : {}),
  ...(f.thumb ? { thumb: true } : {}),
});

export function createFiles(opts: { pool: Pick<Pool, 'run'>; db: string; blobs: Blobs; thumbMaxPixels: number }): Files {
  const { pool, blobs } = opts;
  const table = () => r.db(opts.db).table(FILES);

  async function get(id: string): Promise<FileRow | undefined> {
    const row: unknown = await pool.run(table().get(id));
    return row === null ? undefined : fileRow.parse(row);
  }

  async function remove(id: string): Promise<void> {
    await blobs.remove(thumbKey(id));
    await blobs.remove(id);
    await pool.run(table().get(id).delete());
  }

  return {
    blobs,
    get,
    remove,

    async upload(u) {
      const id = newFileId();
      // The row first: a process that dies mid-upload leaves a row the sweep finds.
      await pool.run(table().insert({ id, room: u.room, owner: u.owner, message: u.message, name: u.name, type: 'application/octet-stream', size: 0, created: r.now(), state: 'uploading' }));
      const writer = blobs.writer(id);
      try {
        let size = 0;
        let head = Buffer.alloc(0);
        for await (const chunk of u.body) {
          size += chunk.length;
          if (size > u.limit) throw new TooLargeError(u.limit, u.limitReason);
          if (head.length < SNIFF_BYTES) head = Buffer.concat([head, chunk.subarray(0, SNIFF_BYTES - head.length)]);
          await writer.write(chunk);
        }
        await writer.finish();
        const type = await detectType(head);
        let image: { width: number; height: number } | undefined;
        if (isImage(type)) {
          const t = await makeThumbnail(blobs.read(id), opts.thumbMaxPixels);
          const w = blobs.writer(thumbKey(id));
          await w.write(t.data);
          await w.finish();
          image = { width: t.width, height: t.height };
        }
        const done = { size, type, state: 'ready' as const, ...(image ? { ...image, thumb: true } : {}) };
        await pool.run(table().get(id).update(done));
        const row = await get(id);
        if (!row) throw new Error('the file row went missing during its upload');
        return row;
      } catch (e) {
        await writer.abort();
        await remove(id);
        throw e;
      }
    },

    read: (file) => blobs.read(file.id),
    readThumb: (file) => blobs.read(thumbKey(file.id)),

    async usage(owner) {
      return Number(await pool.run(table().getAll(owner, { index: 'owner' }).sum('size')));
    },

    async olderThan(before, after, limit) {
      const from = after ? [after.created, after.id] : r.minval;
      const raw: unknown[] = await pool.run(table().between(from, [before, r.minval], { index: 'created', leftBound: after ? 'open' : 'closed' }).orderBy({ index: 'created' }).limit(limit));
      return raw.map((x) => fileRow.parse(x));
    },
  };
}
