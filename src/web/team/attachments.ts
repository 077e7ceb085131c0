// A bot's or a webhook's message as the team page shows it: the webhook's username (and
// emoji icon) with a BOT mark in place of its bot's name, and Slack-style attachments. Every
// piece of text goes in through textContent (never as markup); the colour, already #rrggbb
// from the server, is checked again and set through the CSSOM (the page's CSP allows no
// style attributes); a title links only to an http(s) URL, opened without a referrer.
import type { WireMessage } from '../../chat/wire.js';

type Attachment = NonNullable<WireMessage['attachments']>[number];

const el = <K extends keyof HTMLElementTagNameMap>(tag: K, className: string, text?: string): HTMLElementTagNameMap[K] => {
  const e = document.createElement(tag);
  e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
};

function httpLink(href: string | undefined): string | undefined {
  if (!href) return undefined;
  try {
    const u = new URL(href);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : undefined;
  } catch {
    return undefined;
  }
}

function attachmentView(a: Attachment): HTMLElement {
  const box = el('div', 'attachment');
  if (a.color && /^#[0-9a-f]{6}$/i.test(a.color)) box.style.borderLeftColor = a.color;
  if (a.pretext) box.append(el('div', 'pretext', a.pretext));
  if (a.title) {
    const href = httpLink(a.title_link);
    const title = el('div', 'title');
    if (href) {
      const link = el('a', '', a.title);
      link.href = href;
      link.target = '_blank';
      link.rel = 'noopener noreferrer nofollow';
      title.append(link);
    } else title.textContent = a.title;
    box.append(title);
  }
  if (a.text) box.append(el('div', 'text', a.text));
  if (a.fields && a.fields.length > 0) {
    const fields = el('dl', 'fields');
    for (const f of a.fields) {
      const wrap = el('div', f.short ? 'field short' : 'field');
      wrap.append(el('dt', '', f.title), el('dd', '', f.value));
      fields.append(wrap);
    }
    box.append(fields);
  }
  return box;
}

/** Adds the bot's marks and the attachments to a message's card. */
export function decorateBotMessage(card: HTMLElement, m: WireMessage): void {
  if (m.bot) {
    card.classList.add('bot');
    const author = card.querySelector('.meta .author');
    if (author) {
      if (m.display?.username) author.textContent = m.display.username;
      if (m.display?.iconEmoji) author.before(el('span', 'bot-icon', m.display.iconEmoji));
      author.after(el('span', 'bot-mark', 'BOT'));
    }
  }
  if (m.attachments && m.attachments.length > 0 && !m.deleted) {
    const list = el('div', 'attachments');
    list.append(...m.attachments.map(attachmentView));
    card.querySelector('.body')?.after(list);
  }
}
