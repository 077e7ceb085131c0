// A thread beside the room: its first message, its replies in room order (each once), and a
// composer with "also send to the room". Replies arrive live through the room (the session's
// reply event, or a room message that is also a reply); the first message's reply count
// arriving higher than what is shown (a reply missed while away) reads the rest.
import { compareWire, type WireMessage } from '../../chat/wire.js';
import { api } from './api.js';

export interface ThreadDeps {
  /** the card of a message, as the room shows it */
  card(m: WireMessage): HTMLElement;
  /** sends a reply; the card shown until it arrives */
  send(thread: string, body: string, alsoRoom: boolean): HTMLElement | undefined;
  /** whether the current user follows the thread */
  following(start: WireMessage): boolean;
  /** whether the user may reply and follow here (not in a channel's read-only preview) */
  canReply(): boolean;
  notice(text: string): void;
}

export class ThreadPane {
  private start: WireMessage | undefined;
  private replies: WireMessage[] = [];
  private readonly pending = new Map<string, HTMLElement>();
  private reading = false;
  private readonly list: HTMLOListElement;
  private readonly head: HTMLElement;
  private readonly follow: HTMLButtonElement;
  private readonly body: HTMLTextAreaElement;
  private readonly also: HTMLInputElement;
  private readonly form: HTMLFormElement;

  constructor(
    private readonly root: HTMLElement,
    private readonly deps: ThreadDeps,
  ) {
    const q = <T extends HTMLElement>(sel: string) => root.querySelector(sel) as T;
    this.list = q('.thread-replies');
    this.head = q('.thread-start');
    this.follow = q('.thread-follow');
    this.body = q('textarea');
    this.also = q('input[type="checkbox"]');
    this.form = q('form');
    q<HTMLButtonElement>('.thread-close').addEventListener('click', () => this.close());
    this.follow.addEventListener('click', () => void this.toggleFollow());
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.submit();
    });
    this.body.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey) {
        e.preventDefault();
        this.submit();
      }
    });
  }

  get threadId(): string | undefined {
    return this.start?.id;
  }

  async open(m: WireMessage): Promise<void> {
    this.start = m;
    this.replies = [];
    this.pending.clear();
    this.root.hidden = false;
    const replying = this.deps.canReply();
    this.form.hidden = !replying;
    this.follow.hidden = !replying;
    this.draw();
    await this.readMore();
    if (replying) this.body.focus();
  }

  close(): void {
    this.start = undefined;
    this.root.hidden = true;
  }

  /** A reply of some thread arrived: shown if it is this one's. */
  reply(m: WireMessage): void {
    if (!this.start || m.thread !== this.start.id) return;
    this.pending.get(m.id)?.remove();
    this.pending.delete(m.id);
    if (this.place(m)) this.draw();
  }

  /** A message changed: the first message (its count, followers) or a reply. */
  changed(m: WireMessage): void {
    if (!this.start) return;
    if (m.id === this.start.id) {
      this.start = m;
      this.draw();
      if ((m.replies ?? 0) > this.replies.length) void this.readMore();
      return;
    }
    const i = this.replies.findIndex((x) => x.id === m.id);
    if (i >= 0) {
      this.replies[i] = m;
      this.draw();
    }
  }

  /** Puts a reply in its place; false when it is held already. */
  private place(m: WireMessage): boolean {
    if (this.replies.some((x) => x.id === m.id)) return false;
    let i = this.replies.length;
    while (i > 0 && compareWire(this.replies[i - 1], m) > 0) i--;
    this.replies.splice(i, 0, m);
    return true;
  }

  /** Reads the replies after the newest one held, page by page. */
  private async readMore(): Promise<void> {
    const start = this.start;
    if (!start || this.reading) return;
    this.reading = true;
    try {
      for (;;) {
        const after = this.replies.at(-1);
        const q = after ? `?after=${encodeURIComponent(after.id)}` : '';
        const page = await api<{ message: WireMessage; replies: WireMessage[]; more: boolean }>('GET', `/api/rooms/${start.room}/messages/${start.id}/thread${q}`);
        if (this.start?.id !== start.id) return;
        this.start = page.message;
        for (const m of page.replies) this.place(m);
        if (!page.more) break;
      }
      this.draw();
    } catch (e) {
      this.deps.notice(e instanceof Error ? e.message : String(e));
    } finally {
      this.reading = false;
    }
  }

  private async toggleFollow(): Promise<void> {
    const start = this.start;
    if (!start) return;
    const on = !this.deps.following(start);
    try {
      const { message } = await api<{ message: WireMessage }>(on ? 'POST' : 'DELETE', `/api/rooms/${start.room}/messages/${start.id}/follow`);
      this.changed(message);
    } catch (e) {
      this.deps.notice(e instanceof Error ? e.message : String(e));
    }
  }

  private submit(): void {
    const start = this.start;
    const text = this.body.value;
    if (!start || !text.trim()) return;
    const el = this.deps.send(start.id, text, this.also.checked);
    if (el) {
      this.pending.set(el.dataset.id ?? '', el);
      this.list.append(el);
    }
    this.body.value = '';
    this.also.checked = false;
  }

  private draw(): void {
    const start = this.start;
    if (!start) return;
    this.head.replaceChildren(this.deps.card(start));
    this.follow.textContent = this.deps.following(start) ? 'Unfollow' : 'Follow';
    this.follow.setAttribute('aria-pressed', String(this.deps.following(start)));
    this.list.replaceChildren(...this.replies.map((m) => this.deps.card(m)), ...this.pending.values());
  }
}
