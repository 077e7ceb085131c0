// Files in the team page: attach by the 📎 button (a file picker), by dropping files on the
// room, or by pasting them in the message box; each goes up as the raw body of one POST
// (XMLHttpRequest, for its upload progress, shown as a bar), with the text in the box as its
// caption. In the room, an image shows as its thumbnail and opens full size in a viewer;
// any other file shows its name, type and size and downloads.
import type { WireFile } from '../../chat/wire.js';

const csrf = () => document.querySelector<HTMLMetaElement>('meta[name="csrf"]')?.content ?? '';

export function formatSize(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KB', 'MB', 'GB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 10 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

const fileUrl = (f: WireFile) => `/api/files/${encodeURIComponent(f.id)}`;

let viewer: HTMLDialogElement | undefined;

/** The full-size image, over the page; a click or Escape closes it. */
function openViewer(f: WireFile): void {
  if (!viewer) {
    viewer = document.createElement('dialog');
    viewer.className = 'viewer';
    viewer.addEventListener('click', () => viewer?.close());
    document.body.append(viewer);
  }
  const img = Object.assign(document.createElement('img'), { src: fileUrl(f), alt: f.name });
  const link = Object.assign(document.createElement('a'), { href: fileUrl(f), textContent: `${f.name} · ${formatSize(f.size)}`, target: '_blank', rel: 'noopener' });
  link.addEventListener('click', (e) => e.stopPropagation());
  viewer.replaceChildren(img, link);
  viewer.showModal();
}

/** What a message shows of its file. */
export function fileView(f: WireFile): HTMLElement {
  const box = document.createElement('div');
  box.className = 'attachment';
  if (f.thumb) {
    const open = Object.assign(document.createElement('button'), { type: 'button', className: 'thumb' });
    open.setAttribute('aria-label', `Open ${f.name} full size`);
    const img = Object.assign(document.createElement('img'), { src: `${fileUrl(f)}/thumb`, alt: f.name, loading: 'lazy' });
    if (f.width && f.height) {
      // The box keeps its size while the thumbnail loads (no jump in the list).
      const scale = Math.min(1, 360 / Math.max(f.width, f.height));
      img.width = Math.max(1, Math.round(f.width * scale));
      img.height = Math.max(1, Math.round(f.height * scale));
    }
    open.append(img);
    open.addEventListener('click', () => openViewer(f));
    box.append(open);
    return box;
  }
  const link = Object.assign(document.createElement('a'), { className: 'file', href: fileUrl(f), download: f.name });
  const name = Object.assign(document.createElement('span'), { className: 'file-name', textContent: f.name });
  const facts = Object.assign(document.createElement('span'), { className: 'file-facts', textContent: `${f.type} · ${formatSize(f.size)}` });
  link.append('📄 ', name, facts);
  box.append(link);
  return box;
}

export interface UploadOptions {
  /** the room files go to now (undefined: none open) */
  room: () => string | undefined;
  /** the message box: its text is the caption, taken when a file is attached */
  box: HTMLTextAreaElement;
  /** the 📎 button and its hidden <input type=file> */
  button: HTMLButtonElement;
  input: HTMLInputElement;
  /** where files may be dropped */
  dropZone: HTMLElement;
  /** where the progress bars go */
  list: HTMLElement;
  /** tells of a refused upload */
  notice: (text: string) => void;
}

/** Sends one file; its bar shows the progress and goes when the file is a message. */
export function uploadFile(opts: UploadOptions, room: string, file: File, caption: string): Promise<void> {
  const row = document.createElement('li');
  row.className = 'upload';
  const label = Object.assign(document.createElement('span'), { textContent: `${file.name || 'pasted file'} (${formatSize(file.size)})` });
  const bar = Object.assign(document.createElement('progress'), { max: 1, value: 0 });
  bar.setAttribute('aria-label', `Uploading ${file.name}`);
  const cancel = Object.assign(document.createElement('button'), { type: 'button', textContent: '✕', title: 'Cancel' });
  row.append(label, bar, cancel);
  opts.list.append(row);
  const q = new URLSearchParams({ name: file.name || `pasted-${new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-')}` });
  if (caption.trim()) q.set('caption', caption);
  const xhr = new XMLHttpRequest();
  cancel.addEventListener('click', () => xhr.abort());
  return new Promise((resolve) => {
    const done = (error?: string) => {
      row.remove();
      if (error) opts.notice(error);
      resolve();
    };
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable) bar.value = e.loaded / e.total;
    });
    xhr.addEventListener('load', () => {
      if (xhr.status === 201) return done();
      let message = `${file.name}: the upload failed (${xhr.status})`;
      try {
        const e = (JSON.parse(xhr.responseText) as { error?: { message?: string } }).error;
        if (e?.message) message = `${file.name}: ${e.message}`;
      } catch {
        // not JSON: the status says it
      }
      done(message);
    });
    xhr.addEventListener('error', () => done(`${file.name}: the upload was cut off (the file may be over the limit)`));
    xhr.addEventListener('abort', () => done());
    xhr.open('POST', `/api/rooms/${encodeURIComponent(room)}/files?${q}`);
    xhr.setRequestHeader('x-csrf-token', csrf());
    xhr.setRequestHeader('content-type', 'application/octet-stream');
    xhr.send(file);
  });
}

/** The three ways in: the picker, drop and paste. */
export function wireUploads(opts: UploadOptions): void {
  const send = (files: Iterable<File>) => {
    const room = opts.room();
    if (room === undefined) return;
    const caption = opts.box.value;
    opts.box.value = '';
    let first = true;
    for (const f of files) {
      // The caption goes with the first file only.
      void uploadFile(opts, room, f, first ? caption : '');
      first = false;
    }
  };
  opts.button.addEventListener('click', () => opts.input.click());
  opts.input.addEventListener('change', () => {
    if (opts.input.files) send([...opts.input.files]);
    opts.input.value = '';
  });
  opts.dropZone.addEventListener('dragover', (e) => {
    if (!e.dataTransfer?.types.includes('Files')) return;
    e.preventDefault();
    opts.dropZone.classList.add('dropping');
  });
  opts.dropZone.addEventListener('dragleave', () => opts.dropZone.classList.remove('dropping'));
  opts.dropZone.addEventListener('drop', (e) => {
    opts.dropZone.classList.remove('dropping');
    if (!e.dataTransfer?.files.length) return;
    e.preventDefault();
    send([...e.dataTransfer.files]);
  });
  opts.box.addEventListener('paste', (e) => {
    const files = [...(e.clipboardData?.files ?? [])];
    if (files.length === 0) return;
    e.preventDefault();
    send(files);
  });
}
