// What Slack's incoming webhooks accept, parsed by one schema, and made safe to store: text
// stays text (clients never render it as HTML), a colour is #rrggbb (Slack's good / warning /
// danger become theirs), a link is http(s) or nothing, and everything is cut to a size.
import { z } from 'zod';
import type { Attachment, Display } from '../chat/message.js';
import { LIMITS } from '../chat/protocol.js';

const MAX_ATTACHMENTS = 20;
const MAX_FIELDS = 20;
const MAX_TEXT = 4000;

/** A string (or a number, as Slack takes one), made clean text and cut to `max`. */
const str = (max: number) =>
  z
    .union([z.string(), z.number()])
    .nullish()
    .transform((v) => (v === undefined || v === null ? undefined : cleanText(String(v)).slice(0, max)));

/** Well-formed text without control characters (but newlines and tabs). */
export function cleanText(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.toWellFormed().replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g, '');
}

const NAMED_COLOURS: Record<string, string> = { good: '#2eb886', warning: '#daa038', danger: '#a30200' };

export function safeColour(c: string | undefined): string | undefined {
  if (c === undefined) return undefined;
  const named = NAMED_COLOURS[c.toLowerCase()];
  if (named) return named;
  const m = /^#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})$/.exec(c.trim());
  if (!m) return undefined;
  const hex = m[1].length === 3 ? [...m[1]].map((x) => x + x).join('') : m[1];
  return `#${hex.toLowerCase()}`;
}

export function safeLink(u: string | undefined): string | undefined {
  if (u === undefined) return undefined;
  try {
    const url = new URL(u.trim());
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : undefined;
  } catch {
    return undefined;
  }
}

const field = z.object({ title: str(300), value: str(2000), short: z.union([z.boolean(), z.string()]).nullish().transform((v) => v === true || v === 'true') });

const attachment = z.object({
  fallback: str(MAX_TEXT),
  pretext: str(MAX_TEXT),
  title: str(300),
  title_link: str(2000),
  text: str(MAX_TEXT),
  color: str(32),
  fields: z.array(field).max(MAX_FIELDS).nullish(),
});

/** An incoming webhook's payload (Slack's fields; others are ignored, as Slack does). */
export const incomingPayload = z.object({
  text: str(MAX_TEXT),
  username: str(LIMITS.name),
  icon_url: str(2000),
  icon_emoji: str(64),
  channel: str(200),
  attachments: z.array(attachment).max(MAX_ATTACHMENTS).nullish(),
});
export type IncomingPayload = z.output<typeof incomingPayload>;

const defined = <T extends Record<string, unknown>>(o: T): T => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== '')) as T;

export function safeAttachments(p: IncomingPayload): Attachment[] {
  return (p.attachments ?? []).map((a) =>
    defined({
      fallback: a.fallback,
      pretext: a.pretext,
      title: a.title,
      title_link: safeLink(a.title_link),
      text: a.text,
      color: safeColour(a.color),
      fields: a.fields?.map((f) => ({ title: f.title ?? '', value: f.value ?? '', short: f.short })),
    }),
  );
}

export function displayOf(p: IncomingPayload): Display | undefined {
  const d = defined({ username: p.username?.trim(), iconUrl: safeLink(p.icon_url), iconEmoji: p.icon_emoji && /^:[a-z0-9_+-]{1,60}:$/i.test(p.icon_emoji) ? p.icon_emoji : undefined });
  return Object.keys(d).length > 0 ? d : undefined;
}

/** The message's text: the payload's, else its attachments' fallbacks (as Slack shows them in
 *  a notification), cut to the chat's limit. */
export function bodyOf(p: IncomingPayload, attachments: Attachment[]): string {
  const t = p.text ?? attachments.map((a) => a.fallback ?? a.pretext ?? a.title ?? a.text ?? '').filter(Boolean).join('\n');
  return t.slice(0, LIMITS.body);
}
