// The `--files` phase of `npm run bench`: what files cost, on one app process per storage.
// - upload and download of one large file (100 MiB) as the page does it (one raw POST; one
//   GET), the throughput seen by the client, and the app process's resident memory sampled
//   every 20 ms meanwhile (its peak, beside its memory before): a file that streams through
//   keeps the process near its idle size; one buffered whole would add the file's size.
//   Once with the bytes in the database (chunks, the default) and once in UPLOAD_DIR.
// - the thumbnail of a 12-megapixel photo (4000 x 3000 JPEG of noise, the hardest case for
//   the encoder): sharp in this process, and the whole upload of it through the server.
// The machine's load average is printed with the figures: on a shared machine they are noisy.
// Every step has a deadline; only 127.0.0.1 is contacted.
import { request } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { makeThumbnail } from '../../src/files/thumbs.js';
import { sampleProc, spawnDyno, withDeadline, type Db, type Dyno } from './procs.js';
import { roundSummary, summarize, table, type Summary } from './stats.js';

export interface FilesOptions {
  /** the large file, MiB (100) */
  mib: number;
  /** thumbnails timed (5) */
  photos: number;
}

export interface TransferResult {
  storage: 'database' | 'directory';
  mib: number;
  uploadSeconds: number;
  uploadMiBps: number;
  downloadSeconds: number;
  downloadMiBps: number;
  rssBeforeMiB: number;
  peakRssUploadMiB: number;
  peakRssDownloadMiB: number;
}

export interface FilesResult {
  load: { cores: number; loadavgBefore: number[]; loadavgAfter: number[] };
  transfers: TransferResult[];
  photo: { megapixels: number; jpegMiB: number; thumbnailMs: Summary; uploadWithThumbnailMs: Summary };
}

const log = (msg: string) => process.stderr.write(`bench: ${msg}\n`);
const MiB = 1024 * 1024;
const mibOf = (n: number) => Math.round((n / MiB) * 10) / 10;

/** Sign-up of the workspace's owner and a channel: the cookie header and the room's id. */
async function ownerAndRoom(base: string): Promise<{ cookie: string; csrf: string; room: string }> {
  const jar = new Map<string, string>();
  const cookie = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  const call = async (method: string, path: string, body?: unknown, csrf?: string) => {
    const res = await fetch(base + path, { method, headers: { cookie: cookie(), ...(csrf ? { 'x-csrf-token': csrf } : {}), ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair.indexOf('=');
      jar.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 200)}`);
    return JSON.parse(text) as Record<string, unknown>;
  };
  const token = async () => (await call('GET', '/api/auth/csrf')).csrf as string;
  await call('POST', '/api/auth/signup', { username: 'bencher', displayName: 'Bencher', email: 'bencher@example.test', password: 'correct horse battery' }, await token());
  const csrf = await token();
  const room = ((await call('POST', '/api/rooms', { kind: 'channel', name: 'files' }, csrf)).room as { id: string }).id;
  return { cookie: cookie(), csrf, room };
}

/** The highest resident memory of `pid` while `work` runs, sampled every 20 ms. */
async function peakRss<T>(pid: number, work: () => Promise<T>): Promise<{ value: T; peak: number }> {
  let peak = sampleProc(pid).rssBytes;
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, sampleProc(pid).rssBytes);
    } catch {
      // the process went: its last sample stands
    }
  }, 20);
  try {
    const value = await work();
    return { value, peak: Math.max(peak, sampleProc(pid).rssBytes) };
  } finally {
    clearInterval(timer);
  }
}

/** POSTs `bytes` made a MiB at a time (never held whole here either); resolves with the reply. */
function uploadStream(base: string, auth: { cookie: string; csrf: string; room: string }, name: string, bytes: number, piece: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}/api/rooms/${auth.room}/files?name=${encodeURIComponent(name)}`, { method: 'POST', headers: { cookie: auth.cookie, 'x-csrf-token': auth.csrf, 'content-length': String(bytes), 'content-type': 'application/octet-stream' } });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    let sent = 0;
    const pump = () => {
      while (sent < bytes) {
        const n = Math.min(piece.length, bytes - sent);
        // Each MiB differs from the last (its first bytes count up), like a real file's.
        const chunk = Buffer.from(piece.subarray(0, n));
        chunk.writeUInt32BE(sent / MiB, 0);
        sent += n;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
}

async function downloadAll(base: string, cookie: string, id: string): Promise<number> {
  const res = await fetch(`${base}/api/files/${id}`, { headers: { cookie } });
  if (!res.ok || !res.body) throw new Error(`download: ${res.status}`);
  const reader = res.body.getReader();
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return n;
    n += value.length;
  }
}

async function transfer(db: Db, storage: 'database' | 'directory', mib: number): Promise<TransferResult> {
  const dir = storage === 'directory' ? mkdtempSync(join(tmpdir(), 'bench-uploads-')) : undefined;
  const dbName = `${db.dbName}_files_${storage}`;
  const url = db.url.replace(new RegExp(`/${db.dbName}$`), `/${dbName}`);
  const dyno: Dyno = await spawnDyno(`web.files-${storage}`, url, { ANONYMOUS_ROOMS: '0', MAX_UPLOAD_BYTES: String((mib + 1) * MiB), ...(dir ? { UPLOAD_DIR: dir } : {}) }, { echoStderr: false });
  try {
    const auth = await ownerAndRoom(dyno.url);
    const piece = Buffer.alloc(MiB);
    for (let i = 0; i < piece.length; i++) piece[i] = (i * 2654435761) >>> 24;
    const before = sampleProc(dyno.pid).rssBytes;
    log(`files (${storage}): uploading ${mib} MiB`);
    let t0 = performance.now();
    const up = await peakRss(dyno.pid, () => withDeadline(uploadStream(dyno.url, auth, 'large.bin', mib * MiB, piece), 600_000, 'the large upload'));
    const uploadSeconds = (performance.now() - t0) / 1000;
    if (up.value.status !== 201) throw new Error(`upload: ${up.value.status} ${up.value.body.slice(0, 200)}`);
    const id = (JSON.parse(up.value.body) as { message: { file: { id: string } } }).message.file.id;
    log(`files (${storage}): downloading it`);
    t0 = performance.now();
    const down = await peakRss(dyno.pid, () => withDeadline(downloadAll(dyno.url, auth.cookie, id), 600_000, 'the large download'));
    const downloadSeconds = (performance.now() - t0) / 1000;
    if (down.value !== mib * MiB) throw new Error(`download: ${down.value} bytes of ${mib * MiB}`);
    const r2 = (v: number) => Math.round(v * 100) / 100;
    return { storage, mib, uploadSeconds: r2(uploadSeconds), uploadMiBps: r2(mib / uploadSeconds), downloadSeconds: r2(downloadSeconds), downloadMiBps: r2(mib / downloadSeconds), rssBeforeMiB: mibOf(before), peakRssUploadMiB: mibOf(up.peak), peakRssDownloadMiB: mibOf(down.peak) };
  } finally {
    await dyno.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}

async function photo(db: Db, photos: number): Promise<FilesResult['photo']> {
  log('files: a 12-megapixel photo');
  const jpeg = await sharp({ create: { width: 4000, height: 3000, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 40 } } }).jpeg({ quality: 90 }).toBuffer();
  async function* pieces() {
    for (let i = 0; i < jpeg.length; i += 256 * 1024) yield jpeg.subarray(i, i + 256 * 1024);
  }
  const thumbs: number[] = [];
  for (let i = 0; i < photos; i++) {
    const t0 = performance.now();
    await makeThumbnail(pieces(), 50e6);
    thumbs.push(performance.now() - t0);
  }
  const dbName = `${db.dbName}_files_photo`;
  const dyno: Dyno = await spawnDyno('web.files-photo', db.url.replace(new RegExp(`/${db.dbName}$`), `/${dbName}`), { ANONYMOUS_ROOMS: '0' }, { echoStderr: false });
  const uploads: number[] = [];
  try {
    const auth = await ownerAndRoom(dyno.url);
    for (let i = 0; i < photos; i++) {
      const t0 = performance.now();
      const res = await withDeadline(
        fetch(`${dyno.url}/api/rooms/${auth.room}/files?name=photo-${i}.jpg`, { method: 'POST', headers: { cookie: auth.cookie, 'x-csrf-token': auth.csrf }, body: new Uint8Array(jpeg) }),
        120_000,
        'a photo upload',
      );
      const body = (await res.json()) as { message?: { file?: { thumb?: boolean } } };
      if (res.status !== 201 || !body.message?.file?.thumb) throw new Error(`photo upload: ${res.status} ${JSON.stringify(body).slice(0, 200)}`);
      uploads.push(performance.now() - t0);
    }
  } finally {
    await dyno.stop();
  }
  return { megapixels: 12, jpegMiB: mibOf(jpeg.length), thumbnailMs: roundSummary(summarize(thumbs)), uploadWithThumbnailMs: roundSummary(summarize(uploads)) };
}

export async function filesPhase(db: Db, o: FilesOptions): Promise<FilesResult> {
  const loadavgBefore = loadavg().map((x) => Math.round(x * 100) / 100);
  const transfers = [await transfer(db, 'database', o.mib), await transfer(db, 'directory', o.mib)];
  const p = await photo(db, o.photos);
  return { load: { cores: cpus().length, loadavgBefore, loadavgAfter: loadavg().map((x) => Math.round(x * 100) / 100) }, transfers, photo: p };
}

export function printFiles(f: FilesResult): void {
  console.log(`\n== files (one app process; ${f.load.cores} cores, load average ${f.load.loadavgBefore.join(' ')} before, ${f.load.loadavgAfter.join(' ')} after) ==`);
  console.log(
    table([
      ['storage', 'MiB', 'upload MiB/s', 'download MiB/s', 'RSS before MiB', 'peak RSS upload', 'peak RSS download'],
      ...f.transfers.map((x) => [x.storage, x.mib, x.uploadMiBps, x.downloadMiBps, x.rssBeforeMiB, x.peakRssUploadMiB, x.peakRssDownloadMiB]),
    ]),
  );
  console.log(`12-megapixel JPEG (${f.photo.jpegMiB} MiB): thumbnail p50 ${f.photo.thumbnailMs.p50} ms, max ${f.photo.thumbnailMs.max} ms (sharp, ${f.photo.thumbnailMs.count} runs); whole upload with its thumbnail p50 ${f.photo.uploadWithThumbnailMs.p50} ms`);
}
