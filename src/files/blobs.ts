// Where a file's bytes live, behind one interface: in the database as chunks (the default, so
// every process serves every file and a database backup holds them), or in a directory every
// process mounts (UPLOAD_DIR). Either way a file is written and read a chunk at a time: a
// large file never sits whole in memory.
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { r } from 'rethinkdb-ts';
import type { Pool } from '../db/pool.js';
import { FILE_CHUNKS } from '../db/schema.js';

/** The size of a chunk row in the database (one document, about 1.33 times this on the wire). */
export const CHUNK_BYTES = 512 * 1024;

export interface BlobWriter {
  /** Appends bytes; resolves when they are stored (the caller waits before reading more). */
  write(data: Buffer): Promise<void>;
  /** Everything is written: the blob can be read. */
  finish(): Promise<void>;
  /** Giving up: waits for what is in flight and lets go of it (then remove() deletes it all). */
  abort(): Promise<void>;
}

export interface Blobs {
  readonly kind: 'database' | 'directory';
  writer(key: string): BlobWriter;
  /** The bytes in order, a chunk at a time. */
  read(key: string): AsyncIterable<Buffer>;
  /** Deletes every byte of the key (also a half-written one); deleting nothing is fine. */
  remove(key: string): Promise<void>;
}

const pad = (n: number) => String(n).padStart(7, '0');

export function databaseBlobs(pool: Pick<Pool, 'run'>, db: string): Blobs {
  const table = () => r.db(db).table(FILE_CHUNKS);
  return {
    kind: 'database',
    writer(key) {
      let n = 0;
      let held: Buffer[] = [];
      let heldBytes = 0;
      // One chunk's insert in flight while the next is read: at most two chunks in memory.
      let inflight: Promise<unknown> = Promise.resolve();
      const put = async (row: { id: string; key: string; n: number; data: Buffer }) => {
        await inflight;
        // An id of its own per chunk: writing it again (a retry) replaces, never doubles.
        inflight = pool.run(table().insert(row, { conflict: 'replace' }));
        // A failure is not left unhandled: the next put (or finish) throws it.
        inflight.catch(() => undefined);
      };
      const flush = async (all: boolean) => {
        while (heldBytes >= CHUNK_BYTES || (all && heldBytes > 0)) {
          const joined = Buffer.concat(held);
          const data = joined.subarray(0, CHUNK_BYTES);
          const rest = joined.subarray(data.length);
          held = rest.length > 0 ? [rest] : [];
          heldBytes = rest.length;
          await put({ id: `${key}:${pad(n)}`, key, n, data });
          n++;
        }
      };
      return {
        async write(data) {
          held.push(data);
          heldBytes += data.length;
          await flush(false);
        },
        async finish() {
          await flush(true);
          await inflight;
        },
        async abort() {
          await inflight.catch(() => undefined);
        },
      };
    },
    async *read(key) {
      // One chunk at a time by primary key, until the first missing one.
      for (let n = 0; ; n++) {
        const row = (await pool.run(table().get(`${key}:${pad(n)}`))) as { data: Buffer } | null;
        if (row === null) return;
        yield row.data;
      }
    },
    async remove(key) {
      // The chunks' ids are `<key>:<n>`: a range of the primary key (':' < ';').
      await pool.run(table().between(`${key}:`, `${key};`).delete());
    },
  };
}

export function directoryBlobs(dir: string): Blobs {
  // Two levels by the key's first characters, so that no directory grows too large.
  const pathOf = (key: string) => join(dir, key.slice(0, 2), key);
  return {
    kind: 'directory',
    writer(key) {
      const final = pathOf(key);
      const part = `${final}.part`;
      let out: ReturnType<typeof createWriteStream> | undefined;
      const open = async () => {
        if (out) return out;
        await mkdir(join(dir, key.slice(0, 2)), { recursive: true });
        out = createWriteStream(part, { flags: 'w' });
        return out;
      };
      return {
        async write(data) {
          const s = await open();
          await new Promise<void>((resolve, reject) => s.write(data, (e) => (e ? reject(e) : resolve())));
        },
        async finish() {
          const s = await open();
          await new Promise<void>((resolve, reject) => {
            s.once('error', reject);
            s.end(() => resolve());
          });
          // Readers see a whole file or none.
          await rename(part, final);
        },
        async abort() {
          const s = out;
          if (!s || s.closed) return;
          await new Promise<void>((resolve) => {
            s.once('close', () => resolve());
            s.destroy();
          });
        },
      };
    },
    async *read(key) {
      const stream = createReadStream(pathOf(key), { highWaterMark: 256 * 1024 });
      try {
        for await (const chunk of stream) yield chunk as Buffer;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw e;
      }
    },
    async remove(key) {
      await rm(pathOf(key), { force: true });
      await rm(`${pathOf(key)}.part`, { force: true });
    },
  };
}
