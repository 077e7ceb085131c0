// The search box and its results: GET /api/search, newest first, each result with its room,
// author, time and the matched words marked; a result is a link to the message in its room
// (the permalink /?room=ID&message=MID; a reply kept in its thread links to the thread's start
// with &reply=ID, and the page opens the thread).
// "More results" follows the cursor. The text is put in as text, never as HTML.
import type { WireMessage } from '../../chat/wire.js';
import { inThreadOnly } from '../../chat/wire.js';
import { api, ApiError } from './api.js';

export interface SearchResult {
  message: WireMessage;
  room: { id: string; kind: 'channel' | 'group' | 'dm' | 'open'; name: string };
  highlights: Array<[number, number]>;
}
interface SearchReply {
  results: SearchResult[];
  cursor: string | null;
}

/** Where a result opens. */
export function permalink(r: Pick<SearchResult, 'message'>): string {
  // A reply kept in its thread: the thread's start in the room, and the thread opened.
  const inThread = r.message.thread !== undefined && inThreadOnly(r.message);
  const p = new URLSearchParams({ room: r.message.room, message: inThread ? r.message.thread! : r.message.id });
  if (inThread) p.set('reply', r.message.id);
  return `/?${p.toString()}`;
}

/** The body with each highlighted span in a <mark>. */
export function markedBody(body: string, highlights: Array<[number, number]>): DocumentFragment {
  const f = document.createDocumentFragment();
  let at = 0;
  for (const [start, end] of [...highlights].sort((a, b) => a[0] - b[0])) {
    if (start < at || end > body.length) continue;
    if (start > at) f.append(body.slice(at, start));
    f.append(Object.assign(document.createElement('mark'), { textContent: body.slice(start, end) }));
    at = end;
  }
  if (at < body.length) f.append(body.slice(at));
  return f;
}

export class SearchPanel {
  private query = '';
  private cursor: string | null = null;
  private readonly list: HTMLOListElement;
  private readonly status: HTMLElement;
  private readonly more: HTMLButtonElement;

  constructor(
    form: HTMLFormElement,
    private readonly panel: HTMLElement,
    /** how a room is named in a result (DMs by their people) */
    private readonly roomLabel: (room: SearchResult['room']) => string,
  ) {
    this.list = panel.querySelector('.search-list')!;
    this.status = panel.querySelector('.search-status')!;
    this.more = panel.querySelector('.search-more')!;
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const q = (form.elements.namedItem('q') as HTMLInputElement).value.trim();
      if (q) void this.run(q);
    });
    panel.querySelector('.search-close')?.addEventListener('click', () => (panel.hidden = true));
    this.more.addEventListener('click', () => void this.page());
  }

  async run(q: string): Promise<void> {
    this.query = q;
    this.cursor = null;
    this.list.replaceChildren();
    this.panel.hidden = false;
    await this.page();
  }

  private async page(): Promise<void> {
    const q = this.query;
    this.status.textContent = 'Searching…';
    this.more.hidden = true;
    try {
      const reply = await api<SearchReply>('GET', `/api/search?q=${encodeURIComponent(q)}${this.cursor ? `&cursor=${encodeURIComponent(this.cursor)}` : ''}`);
      if (q !== this.query) return;
      this.list.append(...reply.results.map((r) => this.item(r)));
      this.cursor = reply.cursor;
      this.more.hidden = reply.cursor === null;
      const n = this.list.children.length;
      this.status.textContent = n === 0 ? `Nothing found for “${q}”.` : `${n}${reply.cursor ? '+' : ''} result${n === 1 ? '' : 's'} for “${q}”`;
    } catch (e) {
      if (q !== this.query) return;
      this.status.textContent = e instanceof ApiError ? e.message : 'The search failed; try again.';
    }
  }

  private item(r: SearchResult): HTMLLIElement {
    const li = document.createElement('li');
    li.className = 'search-result';
    const a = Object.assign(document.createElement('a'), { href: permalink(r), className: 'search-link' });
    const meta = document.createElement('span');
    meta.className = 'meta';
    const author = typeof r.message.author === 'object' ? r.message.author.name : r.message.author;
    const when = new Date(r.message.sent).toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' });
    meta.append(
      Object.assign(document.createElement('span'), { className: 'search-room', textContent: this.roomLabel(r.room) }),
      Object.assign(document.createElement('strong'), { className: 'search-author', textContent: author }),
      Object.assign(document.createElement('time'), { dateTime: r.message.sent, textContent: when }),
    );
    if (r.message.thread !== undefined) meta.append(Object.assign(document.createElement('span'), { className: 'in-thread', textContent: 'in a thread' }));
    const body = document.createElement('span');
    body.className = 'search-body';
    body.append(markedBody(r.message.body, r.highlights));
    a.append(meta, body);
    li.append(a);
    return li;
  }
}
