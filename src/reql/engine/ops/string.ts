// String terms: match (RE2 regular expressions run on JS RegExp), upcase, downcase, split.
import type { Datum, DatumObject } from '../datum.js';
import { logicError } from '../errors.js';
import { OpFamily, int, str } from '../eval.js';
import { T } from '../termtypes.js';

/** The string terms, joined into the engine's table by registry.ts. */
export const stringOps = new OpFamily('string');
const def = stringOps.def;

// ---------------------------------------------------------------------------------------------
// RE2 → JS translation. RE2's syntax differs from JS's: inline flags ((?i), (?s:...), (?U)),
// (?P<name>...) groups, \A \z \Q...\E, POSIX classes, octal escapes, `.` excluding only \n,
// `^`/`$` anchoring only at text (or, with (?m), line) boundaries, no backreferences or
// lookaround. The translator parses the pattern, reports RE2's errors, and emits an
// equivalent JS pattern for the `u` flag in which every construct is spelled explicitly
// (case-insensitivity included), so JS's own flags never change the meaning.

class RegexError extends Error {
  constructor(
    readonly code: string,
    readonly arg: string,
  ) {
    super(arg === '' ? code : `${code}: ${arg}`);
  }
}

interface Flags {
  i: boolean;
  m: boolean;
  s: boolean;
  U: boolean;
}

type Range = [number, number];

const MAX_CP = 0x10ffff;
const MAX_REPEAT = 1000;

const PERL_CLASSES: Record<string, Range[]> = {
  d: [[0x30, 0x39]],
  s: [[0x09, 0x0a], [0x0c, 0x0d], [0x20, 0x20]],
  w: [[0x30, 0x39], [0x41, 0x5a], [0x5f, 0x5f], [0x61, 0x7a]],
};

const POSIX_CLASSES: Record<string, Range[]> = {
  alnum: [[0x30, 0x39], [0x41, 0x5a], [0x61, 0x7a]],
  alpha: [[0x41, 0x5a], [0x61, 0x7a]],
  ascii: [[0x00, 0x7f]],
  blank: [[0x09, 0x09], [0x20, 0x20]],
  cntrl: [[0x00, 0x1f], [0x7f, 0x7f]],
  digit: [[0x30, 0x39]],
  graph: [[0x21, 0x7e]],
  lower: [[0x61, 0x7a]],
  print: [[0x20, 0x7e]],
  punct: [[0x21, 0x2f], [0x3a, 0x40], [0x5b, 0x60], [0x7b, 0x7e]],
  space: [[0x09, 0x0d], [0x20, 0x20]],
  upper: [[0x41, 0x5a]],
  word: [[0x30, 0x39], [0x41, 0x5a], [0x5f, 0x5f], [0x61, 0x7a]],
  xdigit: [[0x30, 0x39], [0x41, 0x46], [0x61, 0x66]],
};

function complement(ranges: Range[]): Range[] {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  const out: Range[] = [];
  let next = 0;
  for (const [lo, hi] of sorted) {
    if (lo > next) out.push([next, lo - 1]);
    next = Math.max(next, hi + 1);
  }
  if (next <= MAX_CP) out.push([next, MAX_CP]);
  return out;
}

const cpEsc = (cp: number): string => `\\u{${cp.toString(16)}}`;

function rangesSource(ranges: Range[]): string {
  return ranges.map(([lo, hi]) => (lo === hi ? cpEsc(lo) : `${cpEsc(lo)}-${cpEsc(hi)}`)).join('');
}

/** The single-code-point case variants of a code point. */
function caseVariants(cp: number): number[] {
  const ch = String.fromCodePoint(cp);
  const out = new Set<number>();
  for (const v of [ch.toLowerCase(), ch.toUpperCase()]) {
    if (v !== ch && [...v].length === 1) out.add(v.codePointAt(0)!);
  }
  return [...out];
}

function foldRanges(ranges: Range[]): Range[] {
  const out: Range[] = [...ranges];
  for (const [lo, hi] of ranges) {
    // ASCII letters by shifting whole sub-ranges; other code points one by one when few.
    const lower: Range = [Math.max(lo, 0x61), Math.min(hi, 0x7a)];
    if (lower[0] <= lower[1]) out.push([lower[0] - 32, lower[1] - 32]);
    const upper: Range = [Math.max(lo, 0x41), Math.min(hi, 0x5a)];
    if (upper[0] <= upper[1]) out.push([upper[0] + 32, upper[1] + 32]);
    if (hi - lo <= 512) {
      for (let cp = Math.max(lo, 0x80); cp <= hi; cp++) for (const v of caseVariants(cp)) out.push([v, v]);
    }
  }
  return out;
}

const SYNTAX_CHARS = new Set([...'\\^$.|?*+()[]{}/']);

function literalSource(cp: number, flags: Flags): string {
  if (flags.i) {
    const vars = caseVariants(cp);
    if (vars.length > 0) return `[${rangesSource([[cp, cp], ...vars.map((v): Range => [v, v])])}]`;
  }
  const ch = String.fromCodePoint(cp);
  if (SYNTAX_CHARS.has(ch)) return `\\${ch}`;
  if (cp < 0x20 || cp === 0x2028 || cp === 0x2029 || (cp >= 0xd800 && cp <= 0xdfff)) return cpEsc(cp);
  return ch;
}

const isDigit = (c: string | undefined): boolean => c !== undefined && c >= '0' && c <= '9';
const isOctal = (c: string | undefined): boolean => c !== undefined && c >= '0' && c <= '7';
const isWordChar = (c: string | undefined): boolean => c !== undefined && /^[0-9A-Za-z_]$/.test(c);

interface Translation {
  source: string;
  groups: number;
}

class Translator {
  private readonly cs: string[];
  private pos = 0;
  private groups = 0;
  private readonly names = new Set<string>();

  constructor(private readonly pattern: string) {
    this.cs = Array.from(pattern);
  }

  run(): Translation {
    const source = this.alternation({ i: false, m: false, s: false, U: false }, true);
    return { source, groups: this.groups };
  }

  private rest(from: number): string {
    return this.cs.slice(from).join('');
  }

  /** Parses up to an unmatched `)` (left for the caller) or the end. */
  private alternation(flags: Flags, top: boolean): string {
    let out = '';
    let haveAtom = false;
    let lastRepeat: string | undefined;
    const cs = this.cs;
    while (this.pos < cs.length) {
      const start = this.pos;
      const ch = cs[this.pos];
      // repetition operators
      const rep = this.repetition();
      if (rep !== undefined) {
        if (lastRepeat !== undefined) throw new RegexError('bad repetition operator', lastRepeat + rep.text);
        if (!haveAtom) throw new RegexError('no argument for repetition operator', rep.text);
        const lazy = rep.lazy !== flags.U;
        out += rep.js + (lazy ? '?' : '');
        lastRepeat = rep.text;
        continue;
      }
      lastRepeat = undefined;
      if (ch === '|') {
        this.pos++;
        out += '|';
        haveAtom = false;
        continue;
      }
      if (ch === ')') {
        if (top) throw new RegexError('missing )', this.pattern);
        return out;
      }
      haveAtom = true;
      if (ch === '(') {
        const g = this.group(flags);
        if (g === undefined) {
          haveAtom = false; // a flags-only group like (?i)
          continue;
        }
        out += g;
        continue;
      }
      this.pos++;
      switch (ch) {
        case '[':
          this.pos = start;
          out += this.charClass(flags);
          break;
        case '.':
          out += flags.s ? '[\\s\\S]' : '[^\\n]';
          break;
        case '^':
          out += flags.m ? '(?:(?<![^\\n]))' : '(?:(?<![\\s\\S]))';
          break;
        case '$':
          out += flags.m ? '(?:(?![^\\n]))' : '(?:(?![\\s\\S]))';
          break;
        case '\\':
          this.pos = start;
          out += this.escape(flags);
          break;
        default:
          out += literalSource(ch.codePointAt(0)!, flags);
      }
    }
    return out;
  }

  /** A repetition operator at the current position (consumed), if there is one. */
  private repetition(): { text: string; js: string; lazy: boolean } | undefined {
    const cs = this.cs;
    const start = this.pos;
    const ch = cs[this.pos];
    let js: string;
    if (ch === '*' || ch === '+' || ch === '?') {
      this.pos++;
      js = ch;
    } else if (ch === '{') {
      let j = this.pos + 1;
      let lo = '';
      while (isDigit(cs[j])) lo += cs[j++];
      if (lo === '') return undefined;
      let hi: string | undefined = lo;
      if (cs[j] === ',') {
        j++;
        hi = '';
        while (isDigit(cs[j])) hi += cs[j++];
      }
      if (cs[j] !== '}') return undefined;
      j++;
      const text = cs.slice(start, j).join('');
      const min = Number(lo);
      const max = hi === '' ? -1 : Number(hi);
      if (min > MAX_REPEAT || max > MAX_REPEAT || (max >= 0 && max < min)) throw new RegexError('invalid repetition size', text);
      this.pos = j;
      js = hi === '' ? `{${min},}` : max === min ? `{${min}}` : `{${min},${max}}`;
    } else return undefined;
    let lazy = false;
    if (cs[this.pos] === '?') {
      lazy = true;
      this.pos++;
    }
    return { text: cs.slice(start, this.pos).join(''), js, lazy };
  }

  /** A group at `(`; undefined for a flags-only group, which changes `flags` in place. */
  private group(flags: Flags): string | undefined {
    const cs = this.cs;
    const start = this.pos;
    this.pos++;
    let open = '(';
    let inner: Flags = { ...flags };
    if (cs[this.pos] === '?') {
      const named = cs[this.pos + 1] === 'P' && cs[this.pos + 2] === '<' ? this.pos + 3 : cs[this.pos + 1] === '<' && cs[this.pos + 2] !== '=' && cs[this.pos + 2] !== '!' ? this.pos + 2 : -1;
      if (named >= 0) {
        let j = named;
        let name = '';
        while (j < cs.length && cs[j] !== '>') name += cs[j++];
        if (j >= cs.length) throw new RegexError('invalid named capture group', this.rest(start));
        const text = cs.slice(start, j + 1).join('');
        if (name === '' || ![...name].every(isWordChar)) throw new RegexError('invalid named capture group', text);
        if (this.names.has(name)) throw new RegexError('invalid named capture group', cs.slice(start, j + 1).join(''));
        this.names.add(name);
        this.pos = j + 1;
        open = '('; // results report groups by position, so the name need not reach JS
        this.groups++;
      } else {
        // flags: (?flags) or (?flags:re)
        let j = this.pos + 1;
        let negate = false;
        let sawFlag = false;
        const next: Flags = { ...flags };
        for (;;) {
          const c = cs[j];
          if (c === undefined) throw new RegexError('missing )', this.pattern);
          if (c === 'i' || c === 'm' || c === 's' || c === 'U') {
            next[c] = !negate;
            sawFlag = true;
            j++;
          } else if (c === '-') {
            if (negate) throw new RegexError('invalid perl operator', cs.slice(start, j + 1).join(''));
            negate = true;
            sawFlag = false;
            j++;
          } else if (c === ')' || c === ':') {
            if ((negate && !sawFlag) || (!negate && !sawFlag && c === ')')) {
              throw new RegexError('invalid perl operator', cs.slice(start, j + 1).join(''));
            }
            break;
          } else {
            throw new RegexError('invalid perl operator', cs.slice(start, j + 1).join(''));
          }
        }
        if (cs[j] === ')') {
          Object.assign(flags, next);
          this.pos = j + 1;
          return undefined;
        }
        this.pos = j + 1;
        open = '(?:';
        inner = next;
      }
    } else {
      this.groups++;
    }
    const body = this.alternation(inner, false);
    if (cs[this.pos] !== ')') throw new RegexError('missing )', this.pattern);
    this.pos++;
    return `${open}${body})`;
  }

  /** An escape outside a class at `\`. */
  private escape(flags: Flags): string {
    const cs = this.cs;
    const start = this.pos;
    const c = cs[this.pos + 1];
    if (c === undefined) throw new RegexError('trailing \\', '');
    switch (c) {
      case 'A':
        this.pos += 2;
        return '(?:(?<![\\s\\S]))';
      case 'z':
        this.pos += 2;
        return '(?:(?![\\s\\S]))';
      case 'b':
        this.pos += 2;
        return '(?:(?:(?<=[0-9A-Za-z_])(?![0-9A-Za-z_])|(?<![0-9A-Za-z_])(?=[0-9A-Za-z_])))';
      case 'B':
        this.pos += 2;
        return '(?:(?:(?<=[0-9A-Za-z_])(?=[0-9A-Za-z_])|(?<![0-9A-Za-z_])(?![0-9A-Za-z_])))';
      case 'C':
        this.pos += 2;
        return '[\\s\\S]';
      case 'Q': {
        let j = this.pos + 2;
        let out = '';
        while (j < cs.length && !(cs[j] === '\\' && cs[j + 1] === 'E')) out += literalSource(cs[j++].codePointAt(0)!, flags);
        this.pos = j < cs.length ? j + 2 : j;
        return out === '' ? '(?:)' : `(?:${out})`;
      }
      case 'E':
        this.pos += 2;
        return '(?:)';
    }
    const item = this.classEscape(start);
    if (typeof item === 'number') return literalSource(item, flags);
    if ('js' in item) return `[${item.js}]`;
    return `[${rangesSource(flags.i ? foldRanges(item.ranges) : item.ranges)}]`;
  }

  /**
   * An escape usable both inside and outside classes: a code point, a set of ranges, or a JS
   * class item (Unicode properties). Advances past it.
   */
  private classEscape(start: number): number | { ranges: Range[] } | { js: string } {
    const cs = this.cs;
    const c = cs[start + 1];
    if (c === undefined) throw new RegexError('trailing \\', '');
    this.pos = start + 2;
    const bad = () => new RegexError('invalid escape sequence', cs.slice(start, this.pos).join(''));
    const lower = c.toLowerCase();
    if ((c === 'd' || c === 's' || c === 'w' || c === 'D' || c === 'S' || c === 'W') && PERL_CLASSES[lower]) {
      const r = PERL_CLASSES[lower];
      return { ranges: c === lower ? r : complement(r) };
    }
    switch (c) {
      case 'a':
        return 0x07;
      case 'f':
        return 0x0c;
      case 't':
        return 0x09;
      case 'n':
        return 0x0a;
      case 'r':
        return 0x0d;
      case 'v':
        return 0x0b;
      case 'x': {
        if (cs[this.pos] === '{') {
          let j = this.pos + 1;
          let hex = '';
          while (j < cs.length && /^[0-9A-Fa-f]$/.test(cs[j])) hex += cs[j++];
          if (cs[j] !== '}' || hex === '') {
            this.pos = Math.min(j + 1, cs.length);
            throw bad();
          }
          this.pos = j + 1;
          const cp = parseInt(hex, 16);
          if (cp > MAX_CP) throw bad();
          return cp;
        }
        const h = cs.slice(this.pos, this.pos + 2).join('');
        if (!/^[0-9A-Fa-f]{2}$/.test(h)) {
          this.pos = Math.min(this.pos + 2, cs.length);
          throw bad();
        }
        this.pos += 2;
        return parseInt(h, 16);
      }
      case 'p':
      case 'P': {
        let name: string;
        if (cs[this.pos] === '{') {
          const end = cs.indexOf('}', this.pos);
          if (end < 0) {
            this.pos = cs.length;
            throw bad();
          }
          name = cs.slice(this.pos + 1, end).join('');
          this.pos = end + 1;
        } else {
          if (cs[this.pos] === undefined) throw bad();
          name = cs[this.pos++];
        }
        let neg = c === 'P';
        if (name.startsWith('^')) {
          neg = !neg;
          name = name.slice(1);
        }
        const text = cs.slice(start, this.pos).join('');
        if (name === 'Any') return { ranges: neg ? [] : [[0, MAX_CP]] };
        const prop = name.length <= 2 ? name : `Script=${name}`;
        const js = `\\${neg ? 'P' : 'p'}{${prop}}`;
        try {
          new RegExp(js, 'u');
        } catch {
          throw new RegexError('invalid character class range', text);
        }
        return { js };
      }
    }
    if (c === '0' || (c >= '1' && c <= '7' && isOctal(cs[this.pos]))) {
      let digits = c;
      while (digits.length < 3 && isOctal(cs[this.pos])) digits += cs[this.pos++];
      return parseInt(digits, 8);
    }
    const cp = c.codePointAt(0)!;
    if (cp < 0x80 && !/^[0-9A-Za-z]$/.test(c)) return cp;
    throw bad();
  }

  private charClass(flags: Flags): string {
    const cs = this.cs;
    const start = this.pos;
    this.pos++;
    let negated = false;
    if (cs[this.pos] === '^') {
      negated = true;
      this.pos++;
    }
    const ranges: Range[] = [];
    const items: string[] = [];
    let first = true;
    for (;;) {
      if (this.pos >= cs.length) throw new RegexError('missing ]', this.rest(start));
      const ch = cs[this.pos];
      if (ch === ']' && !first) {
        this.pos++;
        break;
      }
      first = false;
      // POSIX classes [:name:] and [:^name:]
      if (ch === '[' && cs[this.pos + 1] === ':') {
        const end = cs.indexOf(']', this.pos + 2);
        const body = end > 0 ? cs.slice(this.pos + 2, end).join('') : '';
        if (end > 0 && body.endsWith(':')) {
          const text = cs.slice(this.pos, end + 1).join('');
          let name = body.slice(0, -1);
          const neg = name.startsWith('^');
          if (neg) name = name.slice(1);
          const r = POSIX_CLASSES[name];
          if (!r) throw new RegexError('invalid character class range', text);
          ranges.push(...(neg ? complement(r) : r));
          this.pos = end + 1;
          continue;
        }
      }
      const itemStart = this.pos;
      const lo = this.classAtom();
      if (typeof lo !== 'number') {
        if ('js' in lo) items.push(lo.js);
        else ranges.push(...lo.ranges);
        continue;
      }
      if (cs[this.pos] === '-' && cs[this.pos + 1] !== undefined && cs[this.pos + 1] !== ']') {
        this.pos++;
        const hi = this.classAtom();
        const text = cs.slice(itemStart, this.pos).join('');
        if (typeof hi !== 'number' || hi < lo) throw new RegexError('invalid character class range', text);
        ranges.push([lo, hi]);
      } else ranges.push([lo, lo]);
    }
    const all = flags.i ? foldRanges(ranges) : ranges;
    return `[${negated ? '^' : ''}${rangesSource(all)}${items.join('')}]`;
  }

  private classAtom(): number | { ranges: Range[] } | { js: string } {
    const cs = this.cs;
    const ch = cs[this.pos];
    if (ch === '\\') return this.classEscape(this.pos);
    this.pos++;
    return ch.codePointAt(0)!;
  }
}

interface Compiled {
  re: RegExp;
  groups: number;
}

const cache = new Map<string, Compiled>();

export function compileRegex(pattern: string): Compiled {
  const hit = cache.get(pattern);
  if (hit) return hit;
  let compiled: Compiled;
  try {
    const { source, groups } = new Translator(pattern).run();
    compiled = { re: new RegExp(source, 'ud'), groups };
  } catch (e) {
    if (e instanceof RegexError) throw logicError(`Error in regexp \`${pattern}\` (portion \`${e.arg}\`): ${e.message}`);
    throw logicError(`Error in regexp \`${pattern}\` (portion \`${pattern}\`): ${(e as Error).message}`);
  }
  if (cache.size >= 1000) cache.delete(cache.keys().next().value as string);
  cache.set(pattern, compiled);
  return compiled;
}

/** UTF-8 byte offset of a UTF-16 index in s. */
function byteOffset(s: string, i: number, ascii: boolean): number {
  return ascii ? i : Buffer.byteLength(s.slice(0, i), 'utf8');
}

def(T.MATCH, 2, 2, (c, t) => {
  const [sv, pv] = c.dargs(t);
  const s = str(sv);
  const { re } = compileRegex(str(pv));
  re.lastIndex = 0;
  const m = re.exec(s);
  if (!m || !m.indices) return null;
  // eslint-disable-next-line no-control-regex
  const ascii = /^[\u0000-\u007f]*$/.test(s);
  const [start, end] = m.indices[0];
  const groups: Datum[] = [];
  for (let k = 1; k < m.length; k++) {
    const ix = m.indices[k];
    if (ix === undefined || m[k] === undefined) groups.push(null);
    else groups.push({ str: m[k], start: byteOffset(s, ix[0], ascii), end: byteOffset(s, ix[1], ascii) });
  }
  const out: DatumObject = { str: m[0], start: byteOffset(s, start, ascii), end: byteOffset(s, end, ascii), groups };
  return out;
});

// upcase/downcase change ASCII letters only.
def(T.UPCASE, 1, 1, (c, t) => str(c.datum(t.args[0])).replace(/[a-z]+/g, (x) => x.toUpperCase()));
def(T.DOWNCASE, 1, 1, (c, t) => str(c.datum(t.args[0])).replace(/[A-Z]+/g, (x) => x.toLowerCase()));

// --- split ---
const WHITESPACE = new Set([0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x20, 0x85, 0xa0, 0x1680, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000]);
for (let cp = 0x2000; cp <= 0x200a; cp++) WHITESPACE.add(cp);
const isSpace = (ch: string): boolean => WHITESPACE.has(ch.codePointAt(0)!);

function splitWhitespace(s: string, max: number): string[] {
  const cs = Array.from(s);
  const out: string[] = [];
  let i = 0;
  for (;;) {
    while (i < cs.length && isSpace(cs[i])) i++;
    if (i >= cs.length) break;
    if (max >= 0 && out.length === max) {
      out.push(cs.slice(i).join(''));
      break;
    }
    let j = i;
    while (j < cs.length && !isSpace(cs[j])) j++;
    out.push(cs.slice(i, j).join(''));
    i = j;
  }
  return out;
}

function splitSeparator(s: string, sep: string, max: number): string[] {
  const out: string[] = [];
  let from = 0;
  for (;;) {
    if (max >= 0 && out.length === max) break;
    const at = s.indexOf(sep, from);
    if (at < 0) break;
    out.push(s.slice(from, at));
    from = at + sep.length;
  }
  out.push(s.slice(from));
  return out;
}

const graphemes = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

function splitCharacters(s: string, max: number): string[] {
  const out: string[] = [];
  for (const { segment, index } of graphemes.segment(s)) {
    if (max >= 0 && out.length === max) {
      out.push(s.slice(index));
      break;
    }
    out.push(segment);
  }
  return out;
}

def(T.SPLIT, 1, 3, (c, t) => {
  const [sv, sepv = null, maxv = null] = c.dargs(t);
  const s = str(sv);
  const sep = sepv === null ? null : str(sepv);
  const max = maxv === null ? -1 : int(maxv);
  if (sep === null) return splitWhitespace(s, max);
  if (sep === '') return splitCharacters(s, max);
  return splitSeparator(s, sep, max);
});
