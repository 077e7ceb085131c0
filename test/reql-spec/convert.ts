// Converts the query and expectation texts of RethinkDB's polyglot tests into JavaScript for
// rethinkdb-ts.
//
// Two dialects come in:
// - 'js' texts are JavaScript already, but written for RethinkDB's old JS test harness, which
//   renamed snake_case identifiers to camelCase (`common_prefix` → `commonPrefix`,
//   `.coerce_to(` → `.coerceTo(`) and read `__` as an escaped `_` (`'first__error'` is
//   `'first_error'`). We do the same with a tokenizer: strings, numbers and object keys are left
//   alone.
// - 'cd' ("common") texts are Python-flavoured: `True/False/None`, `name=value` keyword options,
//   `x['a']` brackets, `x[1:3]` slices, `lambda a, b: ...`, Python operators on ReQL terms
//   (`r.expr(1) + 2`, `~x`, `a & b`), comprehensions; and also JavaScript-isms (`{key: value}`
//   with bare keys, `true/false/null`). They are parsed into a small syntax tree and printed as
//   JavaScript. Python operators, brackets and slices become calls to a runtime helper (`$py`)
//   that decides at run time, like Python's operator overloading does, whether the operand is a
//   ReQL term (→ `.add()`, `.bracket`, `.slice()`, ...) or a plain value (→ Python semantics).
//
// Anything the converter cannot translate faithfully raises ConvertError; the runner counts such
// a test as skipped with the reason, never as a server failure.
import { createRequire } from 'node:module';

export type Dialect = 'js' | 'cd';

export class ConvertError extends Error {
  override name = 'ConvertError';
}

// ---------------------------------------------------------------------------------------------
// ReQL method names as rethinkdb-ts spells them

interface QueryConfigModule {
  termConfig: Array<[number, string, number, number, unknown]>;
  rConfig: Array<[number, string, number, number, unknown]>;
  rConsts: Array<[number, string]>;
}

const require = createRequire(import.meta.url);
const queryConfig = require('rethinkdb-ts/lib/query-builder/query-config.js') as QueryConfigModule;

/** Every method/function name rethinkdb-ts offers on terms and on `r`. */
export const KNOWN_NAMES: ReadonlySet<string> = new Set<string>([
  ...queryConfig.termConfig.map((c) => c[1]),
  ...queryConfig.rConfig.map((c) => c[1]),
  ...queryConfig.rConsts.map((c) => c[1]),
  'do',
  'expr',
  'run',
  'getCursor',
]);

const norm = (name: string): string => name.replace(/_/g, '').toLowerCase();

const KNOWN_BY_NORM = new Map<string, string>();
for (const n of KNOWN_NAMES) {
  const k = norm(n);
  // toJSON and toJsonString are the same term; prefer the documented long name
  if (!KNOWN_BY_NORM.has(k) || n === 'toJsonString') KNOWN_BY_NORM.set(k, n);
}
KNOWN_BY_NORM.set('tojson', 'toJSON');

/** snake_case → camelCase as the old JS harness did; `__` stands for a literal `_`. */
export function snakeToCamel(name: string): string {
  const m = /^(_*)(.*?)(_*)$/.exec(name);
  if (!m) return name;
  const [, lead, body, trail] = m;
  const camel = body
    .split('__')
    .map((part) => part.replace(/_+([A-Za-z0-9])/g, (_s, c: string) => c.toUpperCase()))
    .join('_');
  return lead + camel + trail;
}

/** A method name (after `.`) in rethinkdb-ts spelling: `coerce_to` → `coerceTo`, `iso8601` → `ISO8601`, `and_` → `and`. */
export function mapMethodName(name: string): string {
  if (KNOWN_NAMES.has(name)) return name;
  const stripped = name.replace(/_+$/, '');
  if (KNOWN_NAMES.has(stripped)) return stripped;
  const known = KNOWN_BY_NORM.get(norm(stripped));
  if (known !== undefined) return known;
  return snakeToCamel(name);
}

/** A variable name as the converted code binds it. */
export function mapVarName(name: string): string {
  return snakeToCamel(name);
}

// ---------------------------------------------------------------------------------------------
// Tokenizer

export type TokType = 'num' | 'str' | 'bytes' | 'id' | 'op' | 'ws' | 'comment';
export interface Token {
  type: TokType;
  /** source text */
  text: string;
  /** decoded value of a 'str' token (cd dialect) */
  value?: string;
  /** decoded bytes of a 'bytes' token */
  bytes?: number[];
  start: number;
}

const OPS = [
  '===', '!==', '**=', '//=', '>>=', '<<=', '...',
  '//', '**', '==', '!=', '<=', '>=', '&&', '||', '=>', '<<', '>>', '+=', '-=', '*=', '/=', '%=', '&=', '|=', '^=', '++', '--',
  '(', ')', '[', ']', '{', '}', ',', '.', ':', ';', '+', '-', '*', '/', '%', '<', '>', '=', '!', '~', '&', '|', '^', '?', '@',
];

const ID_START = /[A-Za-z_$\u00c0-\uffff]/;
const ID_PART = /[A-Za-z0-9_$\u00c0-\uffff]/;

function decodePyString(body: string, raw: boolean, isBytes: boolean): { text: string; bytes: number[] } {
  const out: number[] = []; // code points
  let i = 0;
  const push = (cp: number) => out.push(cp);
  while (i < body.length) {
    const ch = body[i];
    if (ch !== '\\' || raw) {
      const cp = body.codePointAt(i) ?? 0;
      push(cp);
      i += cp > 0xffff ? 2 : 1;
      continue;
    }
    const n = body[i + 1];
    i += 2;
    switch (n) {
      case undefined:
        push(0x5c);
        break;
      case '\n':
        break;
      case '\\': push(0x5c); break;
      case "'": push(0x27); break;
      case '"': push(0x22); break;
      case 'a': push(7); break;
      case 'b': push(8); break;
      case 'f': push(12); break;
      case 'n': push(10); break;
      case 'r': push(13); break;
      case 't': push(9); break;
      case 'v': push(11); break;
      case 'x': {
        const hex = body.slice(i, i + 2);
        if (!/^[0-9a-fA-F]{2}$/.test(hex)) throw new ConvertError(`bad \\x escape in string`);
        push(parseInt(hex, 16));
        i += 2;
        break;
      }
      case 'u':
      case 'U': {
        if (isBytes) {
          push(0x5c);
          push(n.charCodeAt(0));
          break;
        }
        const len = n === 'u' ? 4 : 8;
        const hex = body.slice(i, i + len);
        if (!new RegExp(`^[0-9a-fA-F]{${len}}$`).test(hex)) throw new ConvertError(`bad \\${n} escape in string`);
        push(parseInt(hex, 16));
        i += len;
        break;
      }
      case 'N':
        throw new ConvertError('\\N{...} escapes are not supported');
      default:
        if (/[0-7]/.test(n)) {
          let oct = n;
          while (oct.length < 3 && /[0-7]/.test(body[i] ?? '')) oct += body[i++];
          push(parseInt(oct, 8));
        } else {
          push(0x5c);
          const cp = n.codePointAt(0) ?? 0;
          push(cp);
          if (cp > 0xffff) i++;
        }
    }
  }
  if (isBytes) {
    for (const b of out) if (b > 0xff) throw new ConvertError('non-ASCII character in a bytes literal');
    return { text: '', bytes: out };
  }
  return { text: String.fromCodePoint(...out), bytes: [] };
}

/** Splits a text into tokens (whitespace and comments included, so a JS text can be rebuilt). */
export function tokenize(src: string, dialect: Dialect): Token[] {
  const toks: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const start = i;
    const ch = src[i];
    // whitespace
    if (/\s/.test(ch)) {
      while (i < src.length && /\s/.test(src[i])) i++;
      toks.push({ type: 'ws', text: src.slice(start, i), start });
      continue;
    }
    // comments
    if (dialect === 'cd' && ch === '#') {
      while (i < src.length && src[i] !== '\n') i++;
      toks.push({ type: 'comment', text: src.slice(start, i), start });
      continue;
    }
    if (dialect === 'js' && ch === '/' && src[i + 1] === '/') {
      while (i < src.length && src[i] !== '\n') i++;
      toks.push({ type: 'comment', text: src.slice(start, i), start });
      continue;
    }
    if (dialect === 'js' && ch === '/' && src[i + 1] === '*') {
      const end = src.indexOf('*/', i + 2);
      i = end < 0 ? src.length : end + 2;
      toks.push({ type: 'comment', text: src.slice(start, i), start });
      continue;
    }
    // strings (with Python prefixes in the cd dialect)
    let prefix = '';
    if (dialect === 'cd') {
      const pm = /^([rRuUbBfF]{1,2})(?=['"])/.exec(src.slice(i, i + 3));
      if (pm && !(i > 0 && ID_PART.test(src[i - 1]))) prefix = pm[1].toLowerCase();
    }
    const q = src[i + prefix.length];
    if (q === "'" || q === '"' || (q === '`' && dialect === 'js')) {
      let j = i + prefix.length;
      const triple = dialect === 'cd' && src.startsWith(q.repeat(3), j);
      const delim = triple ? q.repeat(3) : q;
      j += delim.length;
      const bodyStart = j;
      let closed = false;
      while (j < src.length) {
        if (src[j] === '\\') {
          j += 2;
          continue;
        }
        if (src.startsWith(delim, j)) {
          closed = true;
          break;
        }
        if (!triple && src[j] === '\n' && q !== '`') break;
        j++;
      }
      if (!closed) throw new ConvertError(`unterminated string at ${start}`);
      const body = src.slice(bodyStart, j);
      j += delim.length;
      const text = src.slice(start, j);
      i = j;
      if (dialect === 'cd') {
        if (prefix.includes('f')) throw new ConvertError('f-strings are not supported');
        const isBytes = prefix.includes('b');
        const dec = decodePyString(body, prefix.includes('r'), isBytes);
        if (isBytes) toks.push({ type: 'bytes', text, bytes: dec.bytes, start });
        else toks.push({ type: 'str', text, value: dec.text, start });
      } else {
        toks.push({ type: 'str', text, start });
      }
      continue;
    }
    // numbers
    if (/[0-9]/.test(ch) || (ch === '.' && /[0-9]/.test(src[i + 1] ?? ''))) {
      const m = /^(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)([lLjJ]?)/.exec(src.slice(i));
      if (!m) throw new ConvertError(`bad number at ${start}`);
      if (m[2] === 'j' || m[2] === 'J') throw new ConvertError('complex numbers are not supported');
      i += m[0].length;
      toks.push({ type: 'num', text: m[0], value: m[1], start });
      continue;
    }
    // identifiers
    if (ID_START.test(ch)) {
      while (i < src.length && ID_PART.test(src[i])) i++;
      toks.push({ type: 'id', text: src.slice(start, i), start });
      continue;
    }
    // operators
    const op = OPS.find((o) => src.startsWith(o, i));
    if (!op) throw new ConvertError(`unexpected character ${JSON.stringify(ch)} at ${start}`);
    i += op.length;
    toks.push({ type: 'op', text: op, start });
  }
  return toks;
}

const significant = (toks: Token[]): Token[] => toks.filter((t) => t.type !== 'ws' && t.type !== 'comment');

// ---------------------------------------------------------------------------------------------
// Statements: `name = expr`

export interface Converted {
  /** JavaScript expression text */
  js: string;
  /** the variable the statement assigns, if it is `name = expr` */
  assign?: string;
}

/** Finds a top-level `name = ...` assignment; returns the name and the offset of the value. */
function splitAssignment(toks: Token[]): { name: string; valueStart: number } | null {
  const sig = significant(toks);
  let k = 0;
  if (sig[k]?.type === 'id' && (sig[k].text === 'var' || sig[k].text === 'let' || sig[k].text === 'const')) k++;
  const name = sig[k];
  const eq = sig[k + 1];
  if (name?.type === 'id' && eq?.type === 'op' && eq.text === '=') {
    return { name: name.text, valueStart: eq.start + 1 };
  }
  return null;
}

/** Converts a query/def text (possibly `name = expr`) into a JavaScript expression. */
export function convertStatement(text: string, dialect: Dialect): Converted {
  const trimmed = text.trim().replace(/;\s*$/, '');
  const toks = tokenize(trimmed, dialect);
  const asg = splitAssignment(toks);
  if (asg) {
    const value = trimmed.slice(asg.valueStart);
    return { js: convertExpr(value, dialect), assign: mapVarName(asg.name) };
  }
  return { js: convertExpr(trimmed, dialect) };
}

/** Converts an expression text into a JavaScript expression. */
export function convertExpr(text: string, dialect: Dialect): string {
  const src = text.trim();
  if (src === '') throw new ConvertError('empty expression');
  if (dialect === 'js') return rewriteJs(src);
  const parser = new PyParser(tokenize(src, 'cd'));
  const ast = parser.parseTop();
  return gen(ast);
}

// ---------------------------------------------------------------------------------------------
// JavaScript texts: rename identifiers, unescape `__`

function rewriteJs(src: string): string {
  const toks = tokenize(src, 'js');
  let out = '';
  let prevSig: Token | undefined;
  for (let k = 0; k < toks.length; k++) {
    const t = toks[k];
    if (t.type === 'str') {
      out += t.text.replace(/__/g, '_');
    } else if (t.type === 'id') {
      let next: Token | undefined;
      for (let m = k + 1; m < toks.length; m++) {
        if (toks[m].type !== 'ws' && toks[m].type !== 'comment') {
          next = toks[m];
          break;
        }
      }
      const afterDot = prevSig?.type === 'op' && prevSig.text === '.';
      const isKey =
        next?.type === 'op' && next.text === ':' && prevSig?.type === 'op' && (prevSig.text === '{' || prevSig.text === ',');
      if (afterDot) out += mapMethodName(t.text);
      else if (isKey) out += t.text.replace(/__/g, '_');
      else out += mapVarName(t.text);
    } else {
      out += t.text;
    }
    if (t.type !== 'ws' && t.type !== 'comment') prevSig = t;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The common (Python-flavoured) dialect: parser

type Node =
  | { k: 'num'; text: string }
  | { k: 'str'; value: string }
  | { k: 'bytes'; bytes: number[] }
  | { k: 'const'; value: 'true' | 'false' | 'null' | 'undefined' }
  | { k: 'name'; id: string }
  | { k: 'list'; items: Node[] }
  | { k: 'dict'; entries: Array<{ key: Node; value: Node }> }
  | { k: 'attr'; obj: Node; name: string }
  | { k: 'call'; fn: Node; args: Node[]; kwargs: Array<{ name: string; value: Node }> }
  | { k: 'index'; obj: Node; index: Node }
  | { k: 'slice'; obj: Node; lo: Node | null; hi: Node | null; step: Node | null }
  | { k: 'lambda'; params: string[]; body: Node }
  | { k: 'unary'; op: string; x: Node }
  | { k: 'binary'; op: string; a: Node; b: Node }
  | { k: 'bool'; op: 'and' | 'or'; a: Node; b: Node }
  | { k: 'not'; x: Node }
  | { k: 'cond'; test: Node; a: Node; b: Node }
  | { k: 'comp'; elt: Node; targets: string[]; iter: Node; cond: Node | null };

const COMPARE_OPS = new Set(['==', '!=', '===', '!==', '<', '<=', '>', '>=']);

class PyParser {
  private toks: Token[];
  private pos = 0;

  constructor(tokens: Token[]) {
    this.toks = significant(tokens);
  }

  private peek(o = 0): Token | undefined {
    return this.toks[this.pos + o];
  }
  private isOp(text: string, o = 0): boolean {
    const t = this.peek(o);
    return t !== undefined && t.type === 'op' && t.text === text;
  }
  private isKw(text: string, o = 0): boolean {
    const t = this.peek(o);
    return t !== undefined && t.type === 'id' && t.text === text;
  }
  private next(): Token {
    const t = this.toks[this.pos++];
    if (t === undefined) throw new ConvertError('unexpected end of expression');
    return t;
  }
  private expectOp(text: string): void {
    const t = this.next();
    if (t.type !== 'op' || t.text !== text) throw new ConvertError(`expected ${text} but found ${t.text}`);
  }

  parseTop(): Node {
    const e = this.parseExpr();
    if (this.isOp(';')) this.pos++;
    if (this.pos < this.toks.length) throw new ConvertError(`unexpected ${this.peek()?.text} after expression`);
    return e;
  }

  /** expression, possibly a bare tuple `a, b` (only where Python allows it: not inside calls) */
  parseExpr(): Node {
    // lambda
    if (this.isKw('lambda')) {
      this.pos++;
      const params: string[] = [];
      while (!this.isOp(':')) {
        const t = this.next();
        if (t.type !== 'id') throw new ConvertError(`unsupported lambda parameter ${t.text}`);
        params.push(t.text);
        if (this.isOp('=')) throw new ConvertError('lambda default arguments are not supported');
        if (this.isOp(',')) this.pos++;
      }
      this.expectOp(':');
      return { k: 'lambda', params, body: this.parseExpr() };
    }
    // JS: function (a, b) { return expr; }
    if (this.isKw('function')) {
      this.pos++;
      if (this.peek()?.type === 'id') this.pos++;
      this.expectOp('(');
      const params: string[] = [];
      while (!this.isOp(')')) {
        const t = this.next();
        if (t.type !== 'id') throw new ConvertError(`unsupported function parameter ${t.text}`);
        params.push(t.text);
        if (this.isOp(',')) this.pos++;
      }
      this.expectOp(')');
      this.expectOp('{');
      if (!this.isKw('return')) throw new ConvertError('only `function(...) { return expr }` is supported in common texts');
      this.pos++;
      const body = this.parseExpr();
      if (this.isOp(';')) this.pos++;
      this.expectOp('}');
      return { k: 'lambda', params, body };
    }
    // JS arrow: x => expr, (a, b) => expr
    if (this.peek()?.type === 'id' && this.isOp('=>', 1)) {
      const p = this.next().text;
      this.pos++;
      return { k: 'lambda', params: [p], body: this.parseExpr() };
    }
    if (this.isOp('(')) {
      let j = 1;
      const params: string[] = [];
      let ok = true;
      while (!this.isOp(')', j)) {
        const t = this.peek(j);
        if (t?.type !== 'id') {
          ok = false;
          break;
        }
        params.push(t.text);
        j++;
        if (this.isOp(',', j)) j++;
      }
      if (ok && this.isOp('=>', j + 1)) {
        this.pos += j + 2;
        return { k: 'lambda', params, body: this.parseExpr() };
      }
    }
    const e = this.parseOr();
    if (this.isKw('if')) {
      this.pos++;
      const test = this.parseOr();
      if (!this.isKw('else')) throw new ConvertError('expected else');
      this.pos++;
      return { k: 'cond', test, a: e, b: this.parseExpr() };
    }
    if (this.isOp('?')) {
      this.pos++;
      const a = this.parseExpr();
      this.expectOp(':');
      return { k: 'cond', test: e, a, b: this.parseExpr() };
    }
    return e;
  }

  private parseOr(): Node {
    let a = this.parseAnd();
    while (this.isKw('or') || this.isOp('||')) {
      this.pos++;
      a = { k: 'bool', op: 'or', a, b: this.parseAnd() };
    }
    return a;
  }
  private parseAnd(): Node {
    let a = this.parseNot();
    while (this.isKw('and') || this.isOp('&&')) {
      this.pos++;
      a = { k: 'bool', op: 'and', a, b: this.parseNot() };
    }
    return a;
  }
  private parseNot(): Node {
    if (this.isKw('not')) {
      this.pos++;
      return { k: 'not', x: this.parseNot() };
    }
    return this.parseCompare();
  }
  private parseCompare(): Node {
    const first = this.parseBitOr();
    const parts: Array<{ op: string; b: Node }> = [];
    for (;;) {
      const t = this.peek();
      let op: string | undefined;
      if (t?.type === 'op' && COMPARE_OPS.has(t.text)) {
        op = t.text === '===' ? '==' : t.text === '!==' ? '!=' : t.text;
        this.pos++;
      } else if (this.isKw('in')) {
        op = 'in';
        this.pos++;
      } else if (this.isKw('not') && this.isKw('in', 1)) {
        op = 'not in';
        this.pos += 2;
      } else if (this.isKw('is')) {
        this.pos++;
        if (this.isKw('not')) {
          this.pos++;
          op = 'is not';
        } else op = 'is';
      }
      if (op === undefined) break;
      parts.push({ op, b: this.parseBitOr() });
    }
    if (parts.length === 0) return first;
    if (parts.length > 1) throw new ConvertError('chained comparisons are not supported');
    return { k: 'binary', op: parts[0].op, a: first, b: parts[0].b };
  }
  private parseBinLevel(ops: string[], nextLevel: () => Node): Node {
    let a = nextLevel();
    for (;;) {
      const t = this.peek();
      if (t?.type === 'op' && ops.includes(t.text)) {
        this.pos++;
        a = { k: 'binary', op: t.text, a, b: nextLevel() };
      } else return a;
    }
  }
  private parseBitOr(): Node {
    return this.parseBinLevel(['|'], () => this.parseBitXor());
  }
  private parseBitXor(): Node {
    return this.parseBinLevel(['^'], () => this.parseBitAnd());
  }
  private parseBitAnd(): Node {
    return this.parseBinLevel(['&'], () => this.parseShift());
  }
  private parseShift(): Node {
    return this.parseBinLevel(['<<', '>>'], () => this.parseArith());
  }
  private parseArith(): Node {
    return this.parseBinLevel(['+', '-'], () => this.parseTerm());
  }
  private parseTerm(): Node {
    return this.parseBinLevel(['*', '/', '//', '%'], () => this.parseFactor());
  }
  private parseFactor(): Node {
    const t = this.peek();
    if (t?.type === 'op' && (t.text === '-' || t.text === '+' || t.text === '~' || t.text === '!')) {
      this.pos++;
      const x = this.parseFactor();
      if (t.text === '!') return { k: 'not', x };
      if (t.text === '-' && x.k === 'num') return { k: 'num', text: '-' + x.text };
      return { k: 'unary', op: t.text, x };
    }
    return this.parsePower();
  }
  private parsePower(): Node {
    const a = this.parsePostfix();
    if (this.isOp('**')) {
      this.pos++;
      return { k: 'binary', op: '**', a, b: this.parseFactor() };
    }
    return a;
  }
  private parsePostfix(): Node {
    let e = this.parseAtom();
    for (;;) {
      if (this.isOp('.')) {
        this.pos++;
        const t = this.next();
        if (t.type !== 'id') throw new ConvertError(`expected a name after . but found ${t.text}`);
        e = { k: 'attr', obj: e, name: t.text };
      } else if (this.isOp('(')) {
        this.pos++;
        e = this.parseCallArgs(e);
      } else if (this.isOp('[')) {
        this.pos++;
        e = this.parseSubscript(e);
      } else return e;
    }
  }
  private parseCallArgs(fn: Node): Node {
    const args: Node[] = [];
    const kwargs: Array<{ name: string; value: Node }> = [];
    while (!this.isOp(')')) {
      if (this.isOp('*') || this.isOp('**')) throw new ConvertError('*args/**kwargs are not supported');
      const t = this.peek();
      if (t?.type === 'id' && this.isOp('=', 1)) {
        this.pos += 2;
        kwargs.push({ name: t.text, value: this.parseExpr() });
      } else {
        if (kwargs.length > 0) throw new ConvertError('positional argument after keyword argument');
        const e = this.parseExpr();
        if (this.isKw('for')) throw new ConvertError('generator expressions are not supported');
        args.push(e);
      }
      if (this.isOp(',')) this.pos++;
      else if (!this.isOp(')')) throw new ConvertError(`expected , or ) but found ${this.peek()?.text ?? 'end'}`);
    }
    this.expectOp(')');
    return { k: 'call', fn, args, kwargs };
  }
  private parseSubscript(obj: Node): Node {
    const parts: Array<Node | null> = [null];
    let colons = 0;
    while (!this.isOp(']')) {
      if (this.isOp(':')) {
        this.pos++;
        colons++;
        parts.push(null);
        continue;
      }
      if (parts[colons] !== null) throw new ConvertError('unsupported subscript');
      parts[colons] = this.parseExpr();
      if (this.isOp(',')) throw new ConvertError('tuple subscripts are not supported');
    }
    this.expectOp(']');
    if (colons === 0) {
      const index = parts[0];
      if (index === null) throw new ConvertError('empty subscript');
      return { k: 'index', obj, index };
    }
    if (colons > 2) throw new ConvertError('bad slice');
    return { k: 'slice', obj, lo: parts[0] ?? null, hi: parts[1] ?? null, step: parts[2] ?? null };
  }
  private parseAtom(): Node {
    const t = this.next();
    switch (t.type) {
      case 'num':
        return { k: 'num', text: t.value ?? t.text };
      case 'str': {
        let value = t.value ?? '';
        // adjacent literals concatenate
        while (this.peek()?.type === 'str') value += this.next().value ?? '';
        return { k: 'str', value };
      }
      case 'bytes': {
        const bytes = [...(t.bytes ?? [])];
        while (this.peek()?.type === 'bytes') bytes.push(...(this.next().bytes ?? []));
        return { k: 'bytes', bytes };
      }
      case 'id':
        switch (t.text) {
          case 'True':
          case 'true':
            return { k: 'const', value: 'true' };
          case 'False':
          case 'false':
            return { k: 'const', value: 'false' };
          case 'None':
          case 'null':
          case 'nil': // Ruby's null, in a few "common" texts
            return { k: 'const', value: 'null' };
          case 'undefined':
            return { k: 'const', value: 'undefined' };
          case 'new':
          case 'yield':
          case 'await':
          case 'def':
          case 'class':
            throw new ConvertError(`unsupported keyword ${t.text}`);
        }
        return { k: 'name', id: t.text };
      case 'op':
        if (t.text === '(') {
          if (this.isOp(')')) {
            this.pos++;
            return { k: 'list', items: [] };
          }
          const e = this.parseExpr();
          if (this.isKw('for')) throw new ConvertError('generator expressions are not supported');
          if (this.isOp(',')) {
            const items = [e];
            while (this.isOp(',')) {
              this.pos++;
              if (this.isOp(')')) break;
              items.push(this.parseExpr());
            }
            this.expectOp(')');
            return { k: 'list', items };
          }
          this.expectOp(')');
          return e;
        }
        if (t.text === '[') {
          const items: Node[] = [];
          if (this.isOp(']')) {
            this.pos++;
            return { k: 'list', items };
          }
          const first = this.parseExpr();
          if (this.isKw('for')) return this.parseComprehension(first, ']');
          items.push(first);
          while (this.isOp(',')) {
            this.pos++;
            if (this.isOp(']')) break;
            items.push(this.parseExpr());
          }
          this.expectOp(']');
          return { k: 'list', items };
        }
        if (t.text === '{') {
          const entries: Array<{ key: Node; value: Node }> = [];
          while (!this.isOp('}')) {
            const kt = this.peek();
            let key: Node;
            if (kt?.type === 'id' && this.isOp(':', 1) && !['True', 'False', 'None'].includes(kt.text)) {
              // JS-style bare key
              this.pos++;
              key = { k: 'str', value: kt.text };
            } else {
              key = this.parseOr();
            }
            if (!this.isOp(':')) throw new ConvertError('set literals are not supported');
            this.pos++;
            const value = this.parseExpr();
            if (this.isKw('for')) throw new ConvertError('dict comprehensions are not supported');
            entries.push({ key, value });
            if (this.isOp(',')) this.pos++;
            else if (!this.isOp('}')) throw new ConvertError(`expected , or } but found ${this.peek()?.text ?? 'end'}`);
          }
          this.expectOp('}');
          return { k: 'dict', entries };
        }
        throw new ConvertError(`unexpected ${t.text}`);
      default:
        throw new ConvertError(`unexpected ${t.text}`);
    }
  }
  private parseComprehension(elt: Node, close: string): Node {
    this.pos++; // for
    const targets: string[] = [];
    const paren = this.isOp('(');
    if (paren) this.pos++;
    for (;;) {
      const t = this.next();
      if (t.type !== 'id') throw new ConvertError('unsupported comprehension target');
      targets.push(t.text);
      if (this.isOp(',')) {
        this.pos++;
        continue;
      }
      break;
    }
    if (paren) this.expectOp(')');
    if (!this.isKw('in')) throw new ConvertError('expected in');
    this.pos++;
    const iter = this.parseOr();
    let cond: Node | null = null;
    if (this.isKw('if')) {
      this.pos++;
      cond = this.parseOr();
    }
    if (this.isKw('for')) throw new ConvertError('nested comprehensions are not supported');
    this.expectOp(close);
    return { k: 'comp', elt, targets, iter, cond };
  }
}

// ---------------------------------------------------------------------------------------------
// The common dialect: JavaScript printer

/** Python builtins the runtime provides; the runner puts them in scope, where test definitions may shadow them. */
export const PY_BUILTINS = ['len', 'range', 'float', 'int', 'str', 'list', 'dict', 'sorted', 'abs', 'bool', 'unicode', 'repr', 'sum', 'min', 'max'] as const;

function genNum(text: string): string {
  let t = text;
  if (/^-?0[oO]/.test(t)) return String(parseInt(t.replace(/0[oO]/, ''), 8));
  if (/^-?0[bB]/.test(t)) return String(parseInt(t.replace(/0[bB]/, ''), 2));
  if (/^-?[0-9]*\.$/.test(t)) t += '0';
  const n = Number(t);
  if (Number.isNaN(n)) throw new ConvertError(`bad number ${text}`);
  return t.startsWith('-') ? `(${t})` : t;
}

function genKey(key: Node): string {
  if (key.k === 'str') return JSON.stringify(key.value);
  if (key.k === 'num') return JSON.stringify(String(Number(key.text)));
  return `[${gen(key)}]`;
}

function gen(n: Node): string {
  switch (n.k) {
    case 'num':
      return genNum(n.text);
    case 'str':
      return JSON.stringify(n.value);
    case 'bytes':
      return `$py.bytes([${n.bytes.join(',')}])`;
    case 'const':
      return n.value;
    case 'name':
      return mapVarName(n.id);
    case 'list':
      return `[${n.items.map(gen).join(', ')}]`;
    case 'dict':
      return `{${n.entries.map((e) => `${genKey(e.key)}: ${gen(e.value)}`).join(', ')}}`;
    case 'attr':
      return `${genCallee(n.obj)}.${mapMethodName(n.name)}`;
    case 'call': {
      const args = n.args.map(gen);
      if (n.kwargs.length > 0) {
        args.push(`{${n.kwargs.map((kw) => `${JSON.stringify(snakeToCamel(kw.name))}: ${gen(kw.value)}`).join(', ')}}`);
      }
      // Python's float('nan') and friends
      return `${genCallee(n.fn)}(${args.join(', ')})`;
    }
    case 'index':
      return `$py.index(${gen(n.obj)}, ${gen(n.index)})`;
    case 'slice':
      if (n.step !== null) return `$py.slice(${gen(n.obj)}, ${n.lo ? gen(n.lo) : 'null'}, ${n.hi ? gen(n.hi) : 'null'}, ${gen(n.step)})`;
      return `$py.slice(${gen(n.obj)}, ${n.lo ? gen(n.lo) : 'null'}, ${n.hi ? gen(n.hi) : 'null'})`;
    case 'lambda':
      return `((${n.params.map(mapVarName).join(', ')}) => (${gen(n.body)}))`;
    case 'unary':
      return `$py.unary(${JSON.stringify(n.op)}, ${gen(n.x)})`;
    case 'binary':
      return `$py.op(${JSON.stringify(n.op)}, ${gen(n.a)}, ${gen(n.b)})`;
    case 'bool':
      return `$py.${n.op}(${gen(n.a)}, () => (${gen(n.b)}))`;
    case 'not':
      return `$py.not(${gen(n.x)})`;
    case 'cond':
      return `($py.truthy(${gen(n.test)}) ? (${gen(n.a)}) : (${gen(n.b)}))`;
    case 'comp': {
      const params = n.targets.map(mapVarName);
      const target = params.length === 1 ? params[0] : `[${params.join(', ')}]`;
      const cond = n.cond ? `(${target}) => (${gen(n.cond)})` : 'null';
      return `$py.comp(${gen(n.iter)}, (${target}) => (${gen(n.elt)}), ${cond})`;
    }
  }
}

/** A callee or object of an attribute access: wrap what would not parse as a member base. */
function genCallee(n: Node): string {
  const s = gen(n);
  if (n.k === 'num' || n.k === 'lambda' || n.k === 'dict' || n.k === 'cond') return `(${s})`;
  return s;
}

// ---------------------------------------------------------------------------------------------
// Runtime support for converted common-dialect code (Python semantics, ReQL overloads)

/** The part of rethinkdb-ts's `r` the runtime needs. */
export interface RLike {
  expr(value: unknown): unknown;
}

export type IsTerm = (x: unknown) => boolean;

type AnyFn = (...args: unknown[]) => unknown;

function callMethod(obj: unknown, name: string, ...args: unknown[]): unknown {
  const f = (obj as Record<string, unknown>)[name];
  if (typeof f !== 'function') throw new TypeError(`${name} is not a method of this value`);
  return (f as AnyFn).apply(obj, args);
}

/** Python-style equality of plain values. */
function pyEq(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a === 'number' && typeof b === 'number') return a === b;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => pyEq(x, b[i]));
  if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) return a.equals(b);
  if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    return ka.length === kb.length && ka.every((k) => k in b && pyEq((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
  }
  return false;
}

function pyCmp(a: unknown, b: unknown): number {
  if (typeof a === 'number' && typeof b === 'number') return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === 'string' && typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === 'boolean' || typeof b === 'boolean') return pyCmp(Number(a), Number(b));
  if (Array.isArray(a) && Array.isArray(b)) {
    for (let i = 0; i < Math.min(a.length, b.length); i++) {
      const c = pyCmp(a[i], b[i]);
      if (c !== 0) return c;
    }
    return a.length - b.length;
  }
  throw new TypeError(`cannot order ${typeof a} and ${typeof b}`);
}

function pyTruthy(x: unknown): boolean {
  if (x === null || x === undefined || x === false || x === 0 || x === '') return false;
  if (Array.isArray(x)) return x.length > 0;
  if (typeof x === 'object' && !Buffer.isBuffer(x) && !(x instanceof Date)) return Object.keys(x as object).length > 0;
  return true;
}

function pyIndex(len: number, i: number): number {
  if (!Number.isInteger(i)) throw new TypeError('indices must be integers');
  const j = i < 0 ? len + i : i;
  if (j < 0 || j >= len) throw new RangeError('index out of range');
  return j;
}

function pySliceBounds(len: number, lo: number | null, hi: number | null): [number, number] {
  const clamp = (v: number) => Math.max(0, Math.min(len, v < 0 ? len + v : v));
  return [lo === null ? 0 : clamp(lo), hi === null ? len : clamp(hi)];
}

function pyFormat(fmt: string, args: unknown): string {
  const list = Array.isArray(args) ? [...args] : [args];
  return fmt.replace(/%([sdrf%])/g, (_m, c: string) => {
    if (c === '%') return '%';
    const v = list.shift();
    if (c === 'd') return String(Math.trunc(Number(v)));
    if (c === 'r') return typeof v === 'string' ? `'${v}'` : String(v);
    return String(v);
  });
}

const TERM_OPS: Record<string, string> = {
  '+': 'add',
  '-': 'sub',
  '*': 'mul',
  '/': 'div',
  '%': 'mod',
  '==': 'eq',
  '!=': 'ne',
  '<': 'lt',
  '<=': 'le',
  '>': 'gt',
  '>=': 'ge',
  '&': 'and',
  '|': 'or',
};

export interface PyRuntime {
  op(op: string, a: unknown, b: unknown): unknown;
  unary(op: string, x: unknown): unknown;
  index(obj: unknown, key: unknown): unknown;
  slice(obj: unknown, lo: unknown, hi: unknown, step?: unknown): unknown;
  truthy(x: unknown): boolean;
  and(a: unknown, b: () => unknown): unknown;
  or(a: unknown, b: () => unknown): unknown;
  not(x: unknown): unknown;
  bytes(b: number[]): Buffer;
  comp(iter: unknown, elt: (x: unknown) => unknown, cond: ((x: unknown) => unknown) | null): unknown[];
  [builtin: string]: unknown;
}

/** Creates the `$py` helper object that converted common-dialect code calls. */
export function createPyRuntime(r: RLike, isTerm: IsTerm): PyRuntime {
  const termOp = (op: string, a: unknown, b: unknown): unknown => {
    const m = TERM_OPS[op];
    if (m === undefined) throw new ConvertError(`Python operator ${op} has no ReQL equivalent`);
    return callMethod(isTerm(a) ? a : r.expr(a), m, b);
  };
  const toIterable = (x: unknown): unknown[] => {
    if (Array.isArray(x)) return x;
    if (typeof x === 'string') return [...x];
    if (Buffer.isBuffer(x)) return [...x];
    if (x !== null && typeof x === 'object') return Object.keys(x);
    throw new TypeError('not iterable');
  };
  const rt: PyRuntime = {
    op(op, a, b) {
      if (isTerm(a) || isTerm(b)) return termOp(op, a, b);
      switch (op) {
        case '+':
          if (typeof a === 'number' && typeof b === 'number') return a + b;
          if (typeof a === 'string' && typeof b === 'string') return a + b;
          if (Array.isArray(a) && Array.isArray(b)) return [...a, ...b];
          if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) return Buffer.concat([a, b]);
          throw new TypeError(`unsupported operand types for +`);
        case '-':
          return (a as number) - (b as number);
        case '*':
          if (typeof a === 'number' && typeof b === 'number') return a * b;
          if ((typeof a === 'string' || Array.isArray(a)) && typeof b === 'number') return rt.op('*', b, a);
          if (typeof a === 'number' && typeof b === 'string') return b.repeat(Math.max(0, a));
          if (typeof a === 'number' && Array.isArray(b)) return Array.from({ length: Math.max(0, a) }, () => b).flat();
          throw new TypeError('unsupported operand types for *');
        case '/':
          return (a as number) / (b as number);
        case '//':
          return Math.floor((a as number) / (b as number));
        case '%':
          if (typeof a === 'string') return pyFormat(a, b);
          return (((a as number) % (b as number)) + (b as number)) % (b as number);
        case '**':
          return (a as number) ** (b as number);
        case '==':
          return pyEq(a, b);
        case '!=':
          return !pyEq(a, b);
        case '<':
          return pyCmp(a, b) < 0;
        case '<=':
          return pyCmp(a, b) <= 0;
        case '>':
          return pyCmp(a, b) > 0;
        case '>=':
          return pyCmp(a, b) >= 0;
        case 'in':
          if (typeof b === 'string') return b.includes(String(a));
          return toIterable(b).some((x) => pyEq(x, a));
        case 'not in':
          return !(rt.op('in', a, b) as boolean);
        case 'is':
          return a === b;
        case 'is not':
          return a !== b;
        case '&':
          return typeof a === 'boolean' ? a && (b as boolean) : (a as number) & (b as number);
        case '|':
          return typeof a === 'boolean' ? a || (b as boolean) : (a as number) | (b as number);
        case '^':
          return (a as number) ^ (b as number);
        case '<<':
          return (a as number) << (b as number);
        case '>>':
          return (a as number) >> (b as number);
      }
      throw new ConvertError(`unsupported operator ${op}`);
    },
    unary(op, x) {
      if (isTerm(x)) {
        if (op === '~') return callMethod(x, 'not');
        if (op === '-') return callMethod(r.expr(0), 'sub', x);
        if (op === '+') return x;
        throw new ConvertError(`unsupported unary operator ${op} on a term`);
      }
      if (op === '-') return -(x as number);
      if (op === '+') return +(x as number);
      if (op === '~') return ~(x as number);
      throw new ConvertError(`unsupported unary operator ${op}`);
    },
    index(obj, key) {
      if (isTerm(obj)) return (obj as AnyFn)(key);
      if (Array.isArray(obj)) return obj[pyIndex(obj.length, key as number)];
      if (typeof obj === 'string') return [...obj][pyIndex([...obj].length, key as number)];
      if (Buffer.isBuffer(obj)) return obj[pyIndex(obj.length, key as number)];
      if (obj !== null && typeof obj === 'object') {
        const k = String(key);
        if (!(k in obj)) throw new RangeError(`KeyError: ${k}`);
        return (obj as Record<string, unknown>)[k];
      }
      throw new TypeError('value is not subscriptable');
    },
    slice(obj, lo, hi, step) {
      if (isTerm(obj)) {
        if (step !== undefined && step !== null) throw new ConvertError('slices with a step are not supported on ReQL terms');
        // the Python driver: x[a:] → slice(a, -1, right_bound='closed'); x[a:b] → slice(a, b)
        const start = lo === null ? 0 : lo;
        if (hi === null) return callMethod(obj, 'slice', start, -1, { rightBound: 'closed' });
        return callMethod(obj, 'slice', start, hi);
      }
      const s = step === undefined || step === null ? 1 : (step as number);
      if (s !== 1) throw new ConvertError('slices with a step are not supported');
      if (Array.isArray(obj) || typeof obj === 'string' || Buffer.isBuffer(obj)) {
        const len = typeof obj === 'string' ? [...obj].length : obj.length;
        const [a, b] = pySliceBounds(len, lo as number | null, hi as number | null);
        if (typeof obj === 'string') return [...obj].slice(a, b).join('');
        return obj.slice(a, b);
      }
      throw new TypeError('value cannot be sliced');
    },
    truthy(x) {
      if (isTerm(x)) throw new ConvertError('a ReQL term has no truth value (Python would raise)');
      return pyTruthy(x);
    },
    and(a, b) {
      return rt.truthy(a) ? b() : a;
    },
    or(a, b) {
      return rt.truthy(a) ? a : b();
    },
    not(x) {
      if (isTerm(x)) return callMethod(x, 'not');
      return !pyTruthy(x);
    },
    bytes(b) {
      return Buffer.from(b);
    },
    comp(iter, elt, cond) {
      const xs = toIterable(iter);
      return xs.filter((x) => (cond ? pyTruthy(cond(x)) : true)).map((x) => elt(x));
    },
    // builtins
    len(x: unknown) {
      if (isTerm(x)) throw new ConvertError('len() of a ReQL term');
      if (typeof x === 'string') return [...x].length;
      return toIterable(x).length;
    },
    range(a: number, b?: number, step = 1) {
      const [lo, hi] = b === undefined ? [0, a] : [a, b];
      const out: number[] = [];
      for (let i = lo; step > 0 ? i < hi : i > hi; i += step) out.push(i);
      return out;
    },
    float(x: unknown) {
      if (typeof x === 'string') {
        const s = x.trim().toLowerCase();
        if (s === 'nan') return NaN;
        if (s === 'inf' || s === '+inf' || s === 'infinity') return Infinity;
        if (s === '-inf' || s === '-infinity') return -Infinity;
      }
      return Number(x);
    },
    int(x: unknown) {
      return Math.trunc(Number(x));
    },
    str(x: unknown) {
      return typeof x === 'string' ? x : JSON.stringify(x);
    },
    unicode(x: unknown) {
      return typeof x === 'string' ? x : JSON.stringify(x);
    },
    bool(x: unknown) {
      return pyTruthy(x);
    },
    list(x: unknown) {
      return [...toIterable(x)];
    },
    dict(x: unknown) {
      if (Array.isArray(x)) return Object.fromEntries(x as Array<[string, unknown]>);
      return { ...(x as object) };
    },
    sorted(x: unknown) {
      return [...toIterable(x)].sort(pyCmp);
    },
    abs(x: number) {
      return Math.abs(x);
    },
    sum(x: unknown) {
      return toIterable(x).reduce((s: number, v) => s + (v as number), 0);
    },
    min(...xs: unknown[]) {
      const list = xs.length === 1 ? toIterable(xs[0]) : xs;
      return list.reduce((m, v) => (pyCmp(v, m) < 0 ? v : m));
    },
    max(...xs: unknown[]) {
      const list = xs.length === 1 ? toIterable(xs[0]) : xs;
      return list.reduce((m, v) => (pyCmp(v, m) > 0 ? v : m));
    },
    repr(x: unknown) {
      return JSON.stringify(x);
    },
  };
  return rt;
}
