// How text becomes search terms, the same way for a message as it is stored and for a query.
//
// Folding: NFKC (full-width letters, ligatures and compatibility forms become plain ones), lower
// case, and the accents of Latin, Greek and Cyrillic letters taken off (é → e; Japanese dakuten
// and Hangul are left alone). Words: Intl.Segmenter's word boundaries, each word also split at
// '.' and ':' (`deploy:now`, `foo.bar`). A run of Chinese, Japanese or Korean characters is found
// by any part of it, since the segmenter's dictionary may cut a query differently from the text.
//
// What is stored on a message, and indexed by [room, term, sent, id]:
// - every word, cut to MAX_WORD characters, and its prefixes of PREFIX_LENGTHS characters, so
//   that a prefix query is one index range, in time order;
// - for a CJK run, for each of its characters, the CJK_SPAN characters from there and their
//   prefixes of length 1 and PREFIX_LENGTHS (a substring is the prefix of one of those);
// - facets (`#from:<user id>`, `#has:file`, `#has:link`, `#is:thread`): '#' never starts a word.
// `searchText` holds the folded words in order, one space apart (CJK runs joined), for phrases.

const segmenter = new Intl.Segmenter('und', { granularity: 'word' });

/** The prefix lengths stored besides whole words; a query word of another length is looked up
 *  by its longest stored prefix and checked against the folded words. */
export const PREFIX_LENGTHS = [2, 3, 5, 8] as const;
export const MAX_WORD = 40;
export const CJK_SPAN = 12;
/** the most terms one message keeps (a 2,000-character CJK message would make about 12,000) */
export const MAX_TERMS = 3000;

const CJK = /^[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}]/u;
const LINK = /\bhttps?:\/\/[^\s<>]/i;

export const isCjk = (word: string) => CJK.test(word);

/** NFKC, lower case, Latin/Greek/Cyrillic accents off. */
export function fold(text: string): string {
  return text.normalize('NFKC').toLowerCase().normalize('NFD').replace(/[\u0300-\u036f]/g, '').normalize('NFC');
}

/** Code-point-safe slice. */
const cut = (s: string, n: number) => Array.from(s).slice(0, n).join('');
const length = (s: string) => Array.from(s).length;

/** One word of text: what it says (folded) and where it is in the text given. */
export interface Token {
  word: string;
  start: number;
  end: number;
  cjk: boolean;
}

/** The words of text already folded, in order; adjacent CJK words are joined into one run. */
function tokensOfFolded(folded: string): Token[] {
  const out: Token[] = [];
  for (const s of segmenter.segment(folded)) {
    if (!s.isWordLike) continue;
    const cjk = isCjk(s.segment);
    const last = out[out.length - 1];
    if (cjk && last?.cjk && last.end === s.index) {
      last.word += s.segment;
      last.end = s.index + s.segment.length;
      continue;
    }
    if (cjk) {
      out.push({ word: s.segment, start: s.index, end: s.index + s.segment.length, cjk });
      continue;
    }
    // `deploy:now`, `v1.2`: each part is a word too.
    let at = s.index;
    for (const part of s.segment.split(/([.:]+)/)) {
      if (part && !/^[.:]+$/.test(part)) out.push({ word: part, start: at, end: at + part.length, cjk: false });
      at += part.length;
    }
  }
  return out;
}

/** The folded words of a text (a message or a query). */
export function words(text: string): Token[] {
  return tokensOfFolded(fold(text));
}

/** Where the words of the original text are, each with its folded form: for highlighting. */
export function wordsWithPlaces(text: string): Token[] {
  const out: Token[] = [];
  for (const s of segmenter.segment(text)) {
    if (!s.isWordLike) continue;
    let at = s.index;
    for (const part of s.segment.split(/([.:]+)/)) {
      if (part && !/^[.:]+$/.test(part)) out.push({ word: fold(part), start: at, end: at + part.length, cjk: isCjk(fold(part)) });
      at += part.length;
    }
  }
  return out;
}

function addWord(terms: Set<string>, word: string): void {
  const w = cut(word, MAX_WORD);
  terms.add(w);
  const n = length(w);
  for (const p of PREFIX_LENGTHS) if (p < n) terms.add(cut(w, p));
}

function addRun(terms: Set<string>, run: string): void {
  const chars = Array.from(run);
  for (let i = 0; i < chars.length && terms.size < MAX_TERMS; i++) {
    const span = chars.slice(i, i + CJK_SPAN);
    terms.add(span.join(''));
    for (const p of [1, ...PREFIX_LENGTHS]) if (p < span.length) terms.add(span.slice(0, p).join(''));
  }
}

/** What a message needs to be found. */
export interface Searchable {
  body: string;
  author: { id?: string } | { name: string };
  thread?: string;
  file?: unknown;
}

export const facet = {
  from: (userId: string) => `#from:${userId}`,
  file: '#has:file',
  link: '#has:link',
  thread: '#is:thread',
} as const;

/** The fields stored on a message for search: its terms (indexed) and its folded words. */
export function searchFields(m: Searchable): { terms: string[]; searchText: string } {
  const tokens = words(m.body);
  const terms = new Set<string>();
  for (const t of tokens) {
    if (terms.size >= MAX_TERMS) break;
    if (t.cjk) addRun(terms, t.word);
    else addWord(terms, t.word);
  }
  if ('id' in m.author && m.author.id) terms.add(facet.from(m.author.id));
  if (m.file !== undefined && m.file !== null) terms.add(facet.file);
  if (LINK.test(m.body)) terms.add(facet.link);
  if (m.thread !== undefined) terms.add(facet.thread);
  return { terms: [...terms].slice(0, MAX_TERMS + 4), searchText: tokens.map((t) => t.word).join(' ') };
}

/** How a query word is looked up: the stored term to range over, and whether the folded words
 *  must then be checked for one that starts with (CJK: holds) the whole word (`verify`). */
export function lookupOf(word: string, cjk: boolean): { term: string; verify?: string; text?: string } {
  const w = cut(word, cjk ? CJK_SPAN : MAX_WORD);
  const n = length(w);
  const stored = cjk ? [1, ...PREFIX_LENGTHS, CJK_SPAN] : [1, ...PREFIX_LENGTHS, MAX_WORD];
  // A CJK query longer than CJK_SPAN is also checked as text.
  const text = cjk && length(word) > CJK_SPAN ? word : undefined;
  // A one-character Latin word matches a whole word of one character only (its prefixes of
  // one character are not stored).
  if ((cjk && n <= CJK_SPAN && stored.includes(n)) || (!cjk && (n === 1 || (PREFIX_LENGTHS as readonly number[]).includes(n)))) return { term: w, text };
  const longest = Math.max(...(cjk ? [1, ...PREFIX_LENGTHS] : PREFIX_LENGTHS).filter((p) => p <= n));
  return { term: cut(w, longest), verify: w, text };
}
