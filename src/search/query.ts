// What a search box's text asks for: words (each also a prefix), quoted phrases, and filters
// (in:room, from:user, before:/after: dates, has:file, has:link, is:thread). A filter it does
// not know (`time:12`) is text. A filter with a bad value is a QueryError, told to the user.
import { words, type Token } from './text.js';

export class QueryError extends Error {
  override name = 'QueryError';
}

export interface ParsedQuery {
  /** folded words, each matched as a word or a word's beginning (CJK: any part of a run) */
  words: Token[];
  /** each phrase: its folded words, matched in order */
  phrases: Token[][];
  /** room names or ids (any of them) */
  in: string[];
  /** a username */
  from?: string;
  /** sent before this instant / at or after it */
  before?: Date;
  after?: Date;
  hasFile: boolean;
  hasLink: boolean;
  isThread: boolean;
}

export const MAX_QUERY = 300;
const MAX_WORDS = 12;
const DAY_MS = 86_400_000;

/** YYYY-MM-DD as the start of that day, UTC. */
function day(value: string, op: string): Date {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  const d = m ? new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]))) : undefined;
  if (!m || !d || d.getUTCDate() !== Number(m[3]) || d.getUTCMonth() !== Number(m[2]) - 1) throw new QueryError(`${op}: takes a date as YYYY-MM-DD, not "${value}"`);
  return d;
}

export function parseQuery(q: string): ParsedQuery {
  if (q.length > MAX_QUERY) throw new QueryError(`a search is at most ${MAX_QUERY} characters`);
  const out: ParsedQuery = { words: [], phrases: [], in: [], hasFile: false, hasLink: false, isThread: false };
  const text: string[] = [];
  // op:"quoted value" | op:value | "phrase" | other text
  for (const m of q.matchAll(/([a-z]+):(?:"([^"]*)"?|(\S+))|"([^"]*)"?|(\S+)/giu)) {
    const [whole, opRaw, quotedValue, plainValue, phrase, plain] = m;
    if (phrase !== undefined) {
      const ws = words(phrase);
      if (ws.length === 1) out.words.push(ws[0]);
      else if (ws.length > 1) out.phrases.push(ws);
      continue;
    }
    if (plain !== undefined) {
      text.push(plain);
      continue;
    }
    const op = (opRaw ?? '').toLowerCase();
    const value = (quotedValue ?? plainValue ?? '').trim();
    switch (op) {
      case 'in':
        if (!value) throw new QueryError('in: takes the name of a room');
        out.in.push(value.replace(/^#/, ''));
        break;
      case 'from':
        if (!value) throw new QueryError('from: takes a username');
        if (out.from !== undefined) throw new QueryError('give one from: at a time');
        out.from = value.replace(/^@/, '');
        break;
      case 'before': {
        const d = day(value, 'before');
        out.before = out.before && out.before < d ? out.before : d;
        break;
      }
      case 'after': {
        // after:2026-01-05 is from the day after it on
        const d = new Date(day(value, 'after').getTime() + DAY_MS);
        out.after = out.after && out.after > d ? out.after : d;
        break;
      }
      case 'has':
        if (value.toLowerCase() === 'file') out.hasFile = true;
        else if (value.toLowerCase() === 'link') out.hasLink = true;
        else throw new QueryError(`has: takes file or link, not "${value}"`);
        break;
      case 'is':
        if (value.toLowerCase() === 'thread') out.isThread = true;
        else throw new QueryError(`is: takes thread, not "${value}"`);
        break;
      default:
        text.push(whole);
    }
  }
  out.words.push(...words(text.join(' ')));
  // The same word twice asks nothing more.
  const seen = new Set<string>();
  out.words = out.words.filter((w) => !seen.has(w.word) && Boolean(seen.add(w.word)));
  if (out.words.length + out.phrases.reduce((n, p) => n + p.length, 0) > MAX_WORDS) throw new QueryError(`a search holds at most ${MAX_WORDS} words`);
  const filters = out.in.length > 0 || out.from !== undefined || out.before !== undefined || out.after !== undefined || out.hasFile || out.hasLink || out.isThread;
  if (out.words.length === 0 && out.phrases.length === 0 && !filters) throw new QueryError('type a word to search for (punctuation alone finds nothing)');
  if (out.before && out.after && out.after >= out.before) throw new QueryError('after: must be earlier than before:');
  return out;
}
