// Draws a room's messages: confirmed ones in room order (a late one goes in its place),
// pending ones below them; follows a reader at the bottom and leaves one reading history
// alone, with a "new messages" button. User text is set through textContent, except a
// message's body, which is the Markdown subset of format.ts (never raw HTML).
import type { WireMessage } from '../chat/wire.js';
import { renderMessage } from './format.js';

const authorName = (a: WireMessage['author'] | undefined) => (typeof a === 'string' ? a : a?.name) || 'Anonymous';

function formatTime(d: Date): string {
  const sameDay = d.toDateString() === new Date().toDateString();
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return sameDay ? time : `${d.toLocaleDateString([], { month: 'short', day: 'numeric' })} ${time}`;
}

export function card(m: { id: string; body: string; author?: WireMessage['author']; sent?: string; edited?: string; deleted?: true }, opts: { mine: boolean; pending: boolean }): HTMLLIElement {
  const li = document.createElement('li');
  li.className = `msg${opts.mine ? ' mine' : ''}${opts.pending ? ' pending' : ''}`;
  li.dataset.id = m.id;
  const meta = document.createElement('div');
  meta.className = 'meta';
  const author = document.createElement('span');
  author.className = 'author';
  author.textContent = authorName(m.author);
  const time = document.createElement('time');
  if (m.sent) {
    const d = new Date(m.sent);
    time.dateTime = m.sent;
    time.title = d.toLocaleString();
    time.textContent = formatTime(d);
  } else time.textContent = 'sending…';
  meta.append(author, time);
  const body = document.createElement('div');
  body.className = 'body';
  if (m.deleted) {
    li.classList.add('deleted');
    body.textContent = 'message deleted';
  } else body.innerHTML = renderMessage(m.body);
  if (m.edited && !m.deleted) {
    const mark = document.createElement('span');
    mark.className = 'edited';
    mark.textContent = '(edited)';
    mark.title = new Date(m.edited).toLocaleString();
    meta.append(mark);
  }
  li.append(meta, body);
  return li;
}

export class MessageList {
  private unseen = 0;

  constructor(
    private readonly list: HTMLElement,
    private readonly jump: HTMLButtonElement,
    private readonly empty: HTMLElement,
  ) {
    list.addEventListener('scroll', () => {
      if (this.nearBottom() && this.unseen) {
        this.unseen = 0;
        this.updateJump();
      }
    });
    jump.addEventListener('click', () => this.scrollToBottom());
  }

  /** Shows a confirmed message at `index` among the confirmed ones. */
  insert(el: HTMLElement, index: number, opts: { live: boolean; own: boolean }): void {
    const stick = !opts.live || this.nearBottom() || opts.own;
    const confirmed = this.list.querySelectorAll(':scope > .msg:not(.pending)');
    const before = confirmed[index] ?? this.list.querySelector(':scope > .pending');
    this.list.insertBefore(el, before);
    this.empty.hidden = true;
    if (stick) this.scrollToBottom();
    else {
      this.unseen++;
      this.updateJump();
    }
  }

  /** Replaces the confirmed message at `index` (a new state of it). */
  replace(el: HTMLElement, index: number): void {
    const confirmed = this.list.querySelectorAll(':scope > .msg:not(.pending)');
    confirmed[index]?.replaceWith(el);
  }

  /** Runs `add` (which puts older messages at the top) keeping what the reader sees in place. */
  keepPosition(add: () => void): void {
    const fromBottom = this.list.scrollHeight - this.list.scrollTop;
    add();
    this.list.scrollTop = this.list.scrollHeight - fromBottom;
  }

  /** Calls `load` when the reader scrolls to the top (the page of older messages). */
  onTop(load: () => void): void {
    this.list.addEventListener('scroll', () => {
      if (this.list.scrollTop < 40) load();
    });
  }

  /** Puts the "unread" divider before the confirmed message at `index` (none: removed). */
  divider(index: number | undefined): void {
    this.list.querySelector(':scope > .divider')?.remove();
    if (index === undefined) return;
    const before = this.list.querySelectorAll(':scope > .msg:not(.pending)')[index];
    if (!before) return;
    const d = document.createElement('li');
    d.className = 'divider';
    d.textContent = 'unread';
    this.list.insertBefore(d, before);
  }

  /** Scrolls a message into view and marks it for a moment (a permalink). */
  show(id: string): void {
    const el = [...this.list.querySelectorAll<HTMLElement>(':scope > .msg')].find((x) => x.dataset.id === id);
    if (!el) return;
    el.scrollIntoView({ block: 'center' });
    el.classList.add('linked');
  }

  /** Adds a pending message (below every confirmed one). */
  pending(el: HTMLElement): void {
    this.list.appendChild(el);
    this.empty.hidden = true;
    this.scrollToBottom();
  }

  remove(id: string, which: 'pending' | 'any' = 'any'): void {
    for (const el of this.list.querySelectorAll<HTMLElement>(`:scope > .msg${which === 'pending' ? '.pending' : ''}`)) {
      if (el.dataset.id === id) el.remove();
    }
  }

  clear(): void {
    for (const el of this.list.querySelectorAll(':scope > .msg:not(.pending), :scope > .divider')) el.remove();
    this.unseen = 0;
    this.updateJump();
  }

  status(text: string | undefined): void {
    this.empty.hidden = text === undefined && this.list.children.length > 0;
    if (text !== undefined) this.empty.textContent = text;
  }

  private nearBottom(): boolean {
    const l = this.list;
    return l.scrollHeight - l.scrollTop - l.clientHeight < 48;
  }

  scrollToBottom(): void {
    this.list.scrollTop = this.list.scrollHeight;
    this.unseen = 0;
    this.updateJump();
  }

  private updateJump(): void {
    this.jump.hidden = this.unseen === 0;
    this.jump.textContent = this.unseen === 1 ? '1 new message ↓' : `${this.unseen} new messages ↓`;
  }
}
