// The durable log under the embedded server's tables: one append-only file of checksummed
// frames, replayed in full at start-up and periodically rewritten as a snapshot of live data.
//
// File format (all integers little-endian):
//   header: 8 bytes magic "REQL-LOG", u32 format version (2; version 1 files are read too)
//   frames: u32 payload length, u32 CRC-32 of the payload, payload = UTF-8 JSON array of the
//           records of one append() call (so a group is all there or all gone after a crash),
//           or (version 2) a blob: bytes whose first is 00, written by a compaction, whose
//           meaning is the caller's (the catalog's bulk blocks of rows and index entries)
// A frame that runs past the end of the file, fails its CRC or is neither ends the log: it and
// everything after it is dropped at open (as a write-ahead log treats its end). A version 1
// server refuses a version 2 file rather than take its first blob for a torn tail.
import { mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import zlib from 'node:zlib';

export interface LogOptions {
  dir: string;
  /** default 'reql.log' */
  fileName?: string;
  /** shouldCompact() is false below this file size; default 64 MiB */
  compactMinBytes?: number;
  /** shouldCompact() is true when the file is larger than ratio * live bytes; default 2 */
  compactRatio?: number;
  /** tests only: each write (a group of appends, a compaction's blob) reaches the file this many ms late, as on a slow disk */
  slowDiskMs?: number;
}

/**
 * A frame of a snapshot made only when it is written: `make` gets the file offset its payload
 * will start at and returns the payload, a blob (its first byte 00). It must build it from
 * state captured when compact() was called.
 */
export class LazyFrame {
  constructor(readonly make: (payloadAt: number) => Buffer) {}
}

export interface DurableLog {
  /**
   * Appends records (JSON values) as one group, all or none after a crash. 'hard' resolves once
   * the group is fsync'ed; hard appends made in the same event-loop turn, or while an fsync is
   * running, share one write and one fsync. 'soft' resolves at once; the data reaches the OS
   * within ~20 ms (surviving a process kill, not a power cut) without an fsync.
   */
  append(records: unknown[], durability: 'hard' | 'soft'): Promise<void>;
  /**
   * append() of records already serialized: `json` is the UTF-8 of a JSON array. `onWritten`
   * is told the file offset `json` was written at, once it is in the file (readable there, not
   * yet durable); it is not told if the write fails.
   */
  appendJson(json: Buffer, durability: 'hard' | 'soft', onWritten?: (at: number) => void): Promise<void>;
  /**
   * Rewrites the log as exactly `snapshot` followed by every append made after this call.
   * The snapshot is read synchronously during the call (so a lazy iterator over live state is
   * fine) and its records must not be mutated afterwards; a LazyFrame in it becomes a frame of
   * its own, made when it is written. Appends carry on meanwhile; the new file replaces the old
   * one atomically (temp file, fsync, rename, fsync dir), and `onSwap` is called at the moment
   * it does, before any other read or append: offsets into the file change then, and bytes the
   * old file held from offset `from` on (appends made after this call) are at `to` + (offset -
   * from) in the new one. Rejects if
   * a compaction is already running; a failure before the rename leaves the old log in use.
   */
  compact(snapshot: Iterable<unknown>, onSwap?: (moved: { from: number; to: number }) => void): Promise<void>;
  /** Bytes in the log, counting appends not yet written (what the file will hold). */
  size(): number;
  /**
   * The built-in compaction policy: true when no compaction is running, the log is at least
   * compactMinBytes and larger than compactRatio * liveBytes, where liveBytes is the caller's
   * estimate of its live state serialized as records.
   */
  shouldCompact(liveBytes: number): boolean;
  /** Writes pending soft appends and fsyncs. */
  sync(): Promise<void>;
  /** Waits for a running compaction, syncs and closes; later calls are rejected. */
  close(): Promise<void>;
}

const MAGIC = Buffer.from('REQL-LOG', 'latin1');
const VERSION = 2;
/** Versions this server reads: 1 has no blob frames. */
const READS = [1, 2];
const HEADER = Buffer.concat([MAGIC, Buffer.from([VERSION, 0, 0, 0])]);
const FRAME_HEAD = 8;
/** V8 strings hold at most ~512 M characters, so a bigger payload could never be decoded. */
const MAX_FRAME = 256 * 1024 * 1024;
const READ_CHUNK = 8 * 1024 * 1024;
/**
 * Snapshot records are grouped into frames of about this size. Measured with 1M chat rows:
 * 64 KiB frames replay twice as fast as 1 MiB ones (less garbage-collector work per parse).
 */
const SNAPSHOT_FRAME = 64 * 1024;
const SOFT_DELAY_MS = 20;
const TMP_SUFFIX = '.compact';
const DROPPED_SUFFIX = '.dropped';

// zlib.crc32 arrived in Node 20.15; older 20.x get the classic table-driven version.
const crc32: (data: Uint8Array) => number =
  typeof zlib.crc32 === 'function' ? (data) => zlib.crc32(data) : tableCrc32();

function tableCrc32(): (data: Uint8Array) => number {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return (data) => {
    let c = 0xffffffff;
    for (let i = 0; i < data.length; i++) c = table[(c ^ data[i]) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
}

function encodeFrame(json: string): Buffer {
  const len = Buffer.byteLength(json);
  if (len > MAX_FRAME) throw new RangeError(`log record group of ${len} bytes exceeds the ${MAX_FRAME}-byte limit`);
  const frame = Buffer.allocUnsafe(FRAME_HEAD + len);
  frame.write(json, FRAME_HEAD, 'utf8');
  frame.writeUInt32LE(len, 0);
  frame.writeUInt32LE(crc32(frame.subarray(FRAME_HEAD)), 4);
  return frame;
}

/** The 8 bytes before a payload. */
function frameHead(payload: Buffer): Buffer {
  if (payload.length > MAX_FRAME) throw new RangeError(`log frame of ${payload.length} bytes exceeds the ${MAX_FRAME}-byte limit`);
  const head = Buffer.allocUnsafe(FRAME_HEAD);
  head.writeUInt32LE(payload.length, 0);
  head.writeUInt32LE(crc32(payload), 4);
  return head;
}

async function writeAll(fh: FileHandle, buf: Buffer, pos: number): Promise<void> {
  for (let off = 0; off < buf.length; ) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off, pos + off);
    if (bytesWritten <= 0) throw new Error('log write made no progress');
    off += bytesWritten;
  }
}

/** Copies file bytes [from, to) of src to dst at dstPos. */
async function copyRange(src: FileHandle, from: number, to: number, dst: FileHandle, dstPos: number): Promise<void> {
  const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, Math.max(to - from, 1)));
  for (let at = from; at < to; ) {
    const { bytesRead } = await src.read(buf, 0, Math.min(buf.length, to - at), at);
    if (bytesRead <= 0) throw new Error('log file ended early while copying');
    await writeAll(dst, buf.subarray(0, bytesRead), dstPos + (at - from));
    at += bytesRead;
  }
}

/** Makes a create or rename in dir durable. */
async function syncDir(dir: string): Promise<void> {
  if (process.platform === 'win32') return; // directories cannot be opened for fsync there
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

const asError = (e: unknown): Error => (e instanceof Error ? e : new Error(String(e)));

/**
 * Feeds every intact record after the header to onRecord; returns the offset where intact
 * frames end. Reads big chunks and decodes frames straight out of them.
 */
async function replay(fh: FileHandle, size: number, onRecord: (record: unknown, at: number, payload: Buffer) => void): Promise<number> {
  let buf = Buffer.allocUnsafe(READ_CHUNK);
  let start = 0; // unparsed bytes are buf[start, end)
  let end = 0;
  let at = HEADER.length; // file offset of buf[start]
  let readPos = HEADER.length;
  for (;;) {
    while (end - start >= FRAME_HEAD) {
      const len = buf.readUInt32LE(start);
      if (len > MAX_FRAME || at + FRAME_HEAD + len > size) return at; // torn, or a nonsense length
      if (end - start < FRAME_HEAD + len) break;
      const payload = buf.subarray(start + FRAME_HEAD, start + FRAME_HEAD + len);
      if (crc32(payload) !== buf.readUInt32LE(start + 4)) return at;
      if (len > 0 && payload[0] === 0) {
        // A blob: the caller's, to read during the call (the buffer is reused afterwards).
        onRecord(payload, at + FRAME_HEAD, payload);
        start += FRAME_HEAD + len;
        at += FRAME_HEAD + len;
        continue;
      }
      let records: unknown;
      try {
        records = JSON.parse(payload.toString('utf8'));
      } catch {
        return at;
      }
      if (!Array.isArray(records)) return at;
      for (const record of records) onRecord(record, at + FRAME_HEAD, payload);
      start += FRAME_HEAD + len;
      at += FRAME_HEAD + len;
    }
    if (readPos >= size) return at; // what is left is less than a frame: a torn tail
    // Keep the partial frame at the front, growing the buffer if the frame is bigger than it.
    const need = end - start >= FRAME_HEAD ? FRAME_HEAD + buf.readUInt32LE(start) : 0;
    if (need > buf.length) {
      const bigger = Buffer.allocUnsafe(need);
      buf.copy(bigger, 0, start, end);
      buf = bigger;
    } else {
      buf.copy(buf, 0, start, end);
    }
    end -= start;
    start = 0;
    const { bytesRead } = await fh.read(buf, end, Math.min(buf.length - end, size - readPos), readPos);
    if (bytesRead <= 0) return at; // the file shrank under us
    end += bytesRead;
    readPos += bytesRead;
  }
}

/**
 * Opens the log in opts.dir (creating both if needed), replays every intact record in order
 * through onRecord, with the file offset of the frame's payload and the payload (a Buffer valid
 * during the call; a blob frame's payload is also the record), then cuts off a torn or corrupt tail, reporting it through onWarn and
 * keeping a copy of the dropped bytes in `<file>.dropped` (overwritten each time) for
 * inspection. A file that is not a log of this version is refused with an error.
 */
export async function openLog(
  opts: LogOptions,
  onRecord: (record: unknown, at: number, payload: Buffer) => void,
  onWarn: (msg: string) => void = () => {},
): Promise<DurableLog> {
  await mkdir(opts.dir, { recursive: true });
  const path = logPath(opts);
  // A compaction that never reached its rename leaves a partial copy; the log itself is intact.
  await rm(path + TMP_SUFFIX, { force: true });
  let fh: FileHandle;
  try {
    fh = await open(path, 'r+');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    fh = await open(path, 'wx+');
    await syncDir(opts.dir);
  }
  try {
    let size = (await fh.stat()).size;
    const head = Buffer.alloc(HEADER.length);
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    if (size < HEADER.length && head.subarray(0, bytesRead).equals(HEADER.subarray(0, bytesRead))) {
      // New, or a crash while it was being created: (re)write the header.
      await writeAll(fh, HEADER, 0);
      await fh.datasync();
      size = HEADER.length;
    } else if (!head.subarray(0, MAGIC.length).equals(MAGIC)) {
      throw new Error(`${path} is not a ReQL log file (bad magic); refusing to use it`);
    } else if (!READS.includes(head.readUInt32LE(MAGIC.length))) {
      throw new Error(`${path} has log format version ${head.readUInt32LE(MAGIC.length)}; this server reads version ${VERSION}`);
    }
    const good = await replay(fh, size, onRecord);
    if (good < size) {
      const dropped = join(opts.dir, (opts.fileName ?? 'reql.log') + DROPPED_SUFFIX);
      const copy = await open(dropped, 'w');
      try {
        await copyRange(fh, good, size, copy, 0);
      } finally {
        await copy.close();
      }
      await fh.truncate(good);
      await fh.datasync();
      onWarn(`${path}: dropped ${size - good} bytes of torn or corrupt data at offset ${good} (copy kept in ${dropped})`);
    }
    return new Log(fh, path, opts, good);
  } catch (e) {
    await fh.close();
    throw e;
  }
}

/** The log's file. */
export function logPath(opts: LogOptions): string {
  return join(opts.dir, opts.fileName ?? 'reql.log');
}

interface Waiter {
  resolve: () => void;
  reject: (e: Error) => void;
}

class Log implements DurableLog {
  private readonly dir: string;
  private readonly minBytes: number;
  private readonly ratio: number;
  private readonly slowDiskMs: number;
  /** frames appended but not yet handed to write() */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** who wants to know where a pending frame lands: [its offset among the pending bytes, callback] */
  private pendingWritten: Array<[number, (at: number) => void]> = [];
  /** hard appends and sync() calls waiting for the next fsync */
  private waiters: Waiter[] = [];
  /** logical end: file bytes plus frames on their way to it */
  private end: number;
  private unsynced = false;
  private flushQueued = false;
  private softTimer: NodeJS.Timeout | undefined;
  /** serializes everything that writes the file or swaps it, so writes never interleave */
  private lock: Promise<unknown> = Promise.resolve();
  private compaction: Promise<void> | undefined;
  private failure: Error | undefined;
  private closing: Promise<void> | undefined;

  constructor(
    private fh: FileHandle,
    private readonly path: string,
    opts: LogOptions,
    /** bytes written to the file */
    private written: number,
  ) {
    this.dir = opts.dir;
    this.minBytes = opts.compactMinBytes ?? 64 * 1024 * 1024;
    this.ratio = opts.compactRatio ?? 2;
    this.slowDiskMs = opts.slowDiskMs ?? 0;
    this.end = written;
  }

  private unusable(): Error | undefined {
    return this.closing ? new Error('the log is closed') : this.failure;
  }

  private exclusive<T>(task: () => Promise<T>): Promise<T> {
    const run = this.lock.then(task);
    this.lock = run.catch(() => undefined);
    return run;
  }

  append(records: unknown[], durability: 'hard' | 'soft'): Promise<void> {
    const err = this.unusable();
    if (err) return Promise.reject(err);
    if (records.length === 0) return Promise.resolve();
    let frame: Buffer;
    try {
      // Encoded now, so the frame holds the records as they are at the call, in call order.
      frame = encodeFrame(JSON.stringify(records));
    } catch (e) {
      return Promise.reject(asError(e));
    }
    return this.enqueue([frame], durability);
  }

  appendJson(json: Buffer, durability: 'hard' | 'soft', onWritten?: (at: number) => void): Promise<void> {
    const err = this.unusable();
    if (err) return Promise.reject(err);
    let head: Buffer;
    try {
      head = frameHead(json);
    } catch (e) {
      return Promise.reject(asError(e));
    }
    if (onWritten) this.pendingWritten.push([this.pendingBytes + FRAME_HEAD, onWritten]);
    return this.enqueue([head, json], durability);
  }

  private enqueue(parts: Buffer[], durability: 'hard' | 'soft'): Promise<void> {
    for (const part of parts) {
      this.pending.push(part);
      this.pendingBytes += part.length;
      this.end += part.length;
    }
    if (durability === 'soft') {
      this.softTimer ??= setTimeout(() => {
        this.softTimer = undefined;
        this.scheduleFlush();
      }, SOFT_DELAY_MS);
      return Promise.resolve();
    }
    return this.syncNow();
  }

  sync(): Promise<void> {
    const err = this.unusable();
    return err ? Promise.reject(err) : this.syncNow();
  }

  private syncNow(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      this.scheduleFlush();
    });
  }

  /** One flush per event-loop turn: this is what groups concurrent hard appends. */
  private scheduleFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    setImmediate(() => void this.exclusive(() => this.flush()));
  }

  /** Writes every pending frame, and fsyncs if anyone is waiting. Runs under the lock. */
  private async flush(): Promise<void> {
    this.flushQueued = false;
    const frames = this.pending;
    const bytes = this.pendingBytes;
    const waiters = this.waiters;
    const told = this.pendingWritten;
    this.pending = [];
    this.pendingBytes = 0;
    this.waiters = [];
    this.pendingWritten = [];
    try {
      if (this.failure) throw this.failure;
      if (frames.length > 0) {
        if (this.slowDiskMs > 0) await new Promise((res) => setTimeout(res, this.slowDiskMs));
        const at = this.written;
        await writeAll(this.fh, frames.length === 1 ? frames[0] : Buffer.concat(frames, bytes), at);
        this.written += bytes;
        this.unsynced = true;
        for (const [offset, tell] of told) tell(at + offset);
      }
      if (waiters.length > 0 && this.unsynced) {
        await this.fh.datasync();
        this.unsynced = false;
      }
      for (const w of waiters) w.resolve();
    } catch (e) {
      // After a failed write or fsync the file's contents are unknown (a failed fsync may even
      // have discarded dirty pages), so refuse all further writes rather than acknowledge any.
      this.failure ??= asError(e);
      for (const w of waiters) w.reject(this.failure);
    }
  }

  size(): number {
    return this.end;
  }


  shouldCompact(liveBytes: number): boolean {
    return !this.compaction && !this.unusable() && this.end >= this.minBytes && this.end > this.ratio * liveBytes;
  }

  compact(snapshot: Iterable<unknown>, onSwap?: (moved: { from: number; to: number }) => void): Promise<void> {
    const err = this.unusable();
    if (err) return Promise.reject(err);
    if (this.compaction) return Promise.reject(new Error('a log compaction is already running'));
    let records: unknown[];
    try {
      records = Array.isArray(snapshot) ? snapshot : Array.from(snapshot);
    } catch (e) {
      return Promise.reject(asError(e));
    }
    // The snapshot covers everything appended so far; frames from this offset on come after it.
    const from = this.end;
    const done = this.rewrite(records, from, onSwap).finally(() => {
      this.compaction = undefined;
    });
    this.compaction = done;
    return done;
  }

  private async rewrite(records: unknown[], from: number, onSwap?: (moved: { from: number; to: number }) => void): Promise<void> {
    const tmp = this.path + TMP_SUFFIX;
    // Read-write: after the swap this handle is the log, and the next compaction reads from it.
    const out = await open(tmp, 'w+');
    let swapped = false;
    try {
      await writeAll(out, HEADER, 0);
      let pos = HEADER.length;
      let parts: string[] = [];
      let partChars = 0;
      for (let i = 0; i < records.length; i++) {
        const rec = records[i];
        const lazy = rec instanceof LazyFrame;
        if (!lazy) {
          const json = JSON.stringify(rec) ?? 'null'; // as inside an array
          parts.push(json);
          partChars += json.length + 1;
        }
        if (parts.length > 0 && (lazy || partChars >= SNAPSHOT_FRAME || i === records.length - 1)) {
          const frame = encodeFrame(`[${parts.join(',')}]`);
          parts = [];
          partChars = 0;
          // Awaiting each frame's write also lets appends and reads run in between.
          await writeAll(out, frame, pos);
          pos += frame.length;
        }
        if (lazy) {
          if (this.slowDiskMs > 0) await new Promise((res) => setTimeout(res, this.slowDiskMs));
          const payload = rec.make(pos + FRAME_HEAD);
          if (payload[0] !== 0) throw new Error('a snapshot blob must start with a 00 byte');
          const head = frameHead(payload);
          await writeAll(out, head, pos);
          await writeAll(out, payload, pos + FRAME_HEAD);
          pos += FRAME_HEAD + payload.length;
        }
      }
      // The bulk is made durable outside the lock, so appends are not held up by it.
      await out.datasync();
      // Later appends already in the old file are copied now, the rest under the lock.
      const tailAt = pos;
      let copied = from;
      const upTo = this.written;
      if (upTo > copied) {
        await copyRange(this.fh, copied, upTo, out, pos);
        pos += upTo - copied;
        copied = upTo;
      }
      await this.exclusive(async () => {
        // Pending frames may predate the snapshot; writing them out puts every byte before `from`
        // in the old file, so the tail to copy is simply [copied, written).
        await this.flush();
        if (this.failure) throw this.failure;
        await copyRange(this.fh, copied, this.written, out, pos);
        pos += this.written - copied;
        await out.datasync();
        await rename(tmp, this.path);
        const old = this.fh;
        this.fh = out;
        this.written = pos;
        this.end = pos + this.pendingBytes;
        this.unsynced = false;
        swapped = true;
        onSwap?.({ from, to: tailAt });
        try {
          await syncDir(this.dir);
        } catch (e) {
          // The rename may not be durable, so neither file can be trusted to receive appends.
          this.failure ??= asError(e);
          throw this.failure;
        } finally {
          await old.close().catch(() => undefined);
        }
      });
    } finally {
      if (!swapped) {
        await out.close().catch(() => undefined);
        await rm(tmp, { force: true }).catch(() => undefined);
      }
    }
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    if (this.softTimer) {
      clearTimeout(this.softTimer);
      this.softTimer = undefined;
    }
    await this.compaction?.catch(() => undefined);
    try {
      if (!this.failure) await this.syncNow();
    } finally {
      await this.lock;
      await this.fh.close();
    }
  }
}
