// Line-based reader for RethinkDB's polyglot test files (../shared/reql-spec/**/*.yaml).
//
// These files are not strict YAML. Every line is: indentation, optionally a list marker `- `,
// optionally a key (letters, digits, `_`, `.`) followed by `:`, then raw text to the end of the
// line. Values are always raw text; a value continues on following lines indented deeper than
// its key (or its list marker); `|`, `|-`, `>` only announce such a block. Nesting follows
// indentation, leniently: a list marker indented a little deeper than its siblings still starts a
// sibling item (some files mix 4- and 5-space indentation).

export interface ScalarNode {
  kind: 'scalar';
  text: string;
  line: number;
}
export interface ListNode {
  kind: 'list';
  items: YNode[];
  line: number;
}
export interface MapNode {
  kind: 'map';
  entries: Map<string, YNode>;
  line: number;
}
export type YNode = ScalarNode | ListNode | MapNode;

export class SpecParseError extends Error {
  constructor(
    message: string,
    readonly line: number,
  ) {
    super(`line ${line}: ${message}`);
  }
}

interface MapFrame {
  kind: 'map';
  node: MapNode;
  col: number;
  /** key whose value is still to come on deeper lines */
  pendingKey?: string;
  pendingLine?: number;
}
interface ListFrame {
  kind: 'list';
  node: ListNode;
  col: number;
  /** a bare `-` whose item is still to come on deeper lines */
  pendingItem?: boolean;
  pendingLine?: number;
}
type Frame = MapFrame | ListFrame;

interface OpenScalar {
  node: ScalarNode;
  /** continuation lines must be indented deeper than this column */
  ownerCol: number;
  folded: boolean;
}

const LINE_RE = /^( *)(-(?: +|$))?(.*)$/;
const KEY_RE = /^([A-Za-z0-9_.]+):(?: +(.*))?$/;
const BLOCK_MARKERS = new Set(['|', '|-', '|+', '>', '>-', '>+']);

function isFolded(marker: string): boolean {
  return marker.startsWith('>');
}

/** Parses the text of a spec file into a tree of maps, lists and raw-text scalars. */
export function parseSpecText(text: string): YNode {
  const root: MapNode = { kind: 'map', entries: new Map(), line: 1 };
  const stack: Frame[] = [{ kind: 'map', node: root, col: 0 }];
  let open: OpenScalar | null = null;
  const lines = text.replace(/\r\n?/g, '\n').split('\n');

  const top = (): Frame => stack[stack.length - 1];

  /** Resolves a pending key / item that got no deeper lines: its value is the empty string. */
  const settle = (f: Frame): void => {
    if (f.kind === 'map' && f.pendingKey !== undefined) {
      f.node.entries.set(f.pendingKey, { kind: 'scalar', text: '', line: f.pendingLine ?? 0 });
      f.pendingKey = undefined;
    } else if (f.kind === 'list' && f.pendingItem) {
      f.node.items.push({ kind: 'scalar', text: '', line: f.pendingLine ?? 0 });
      f.pendingItem = false;
    }
  };

  /** Attaches a freshly made node where the pending key/item of frame f expects it. */
  const attach = (f: Frame, node: YNode): void => {
    if (f.kind === 'map' && f.pendingKey !== undefined) {
      f.node.entries.set(f.pendingKey, node);
      f.pendingKey = undefined;
    } else if (f.kind === 'list' && f.pendingItem) {
      f.node.items.push(node);
      f.pendingItem = false;
    } else {
      throw new Error('internal: attach without pending slot');
    }
  };

  const hasPending = (f: Frame): boolean =>
    (f.kind === 'map' && f.pendingKey !== undefined) || (f.kind === 'list' && f.pendingItem === true);

  /** Puts key: value into the map frame f (at column col). */
  const setKey = (f: MapFrame, key: string, value: string, lineNo: number, col: number): void => {
    if (value === '') {
      f.pendingKey = key;
      f.pendingLine = lineNo;
      return;
    }
    const node: ScalarNode = { kind: 'scalar', text: '', line: lineNo };
    if (BLOCK_MARKERS.has(value)) {
      open = { node, ownerCol: col, folded: isFolded(value) };
    } else {
      node.text = value;
      open = { node, ownerCol: col, folded: false };
    }
    f.node.entries.set(key, node);
  };

  for (let idx = 0; idx < lines.length; idx++) {
    const raw = lines[idx];
    const lineNo = idx + 1;
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const m = LINE_RE.exec(raw);
    if (!m) continue;
    const indent = m[1].length;

    // 1. continuation of an open scalar
    if (open !== null && indent > open.ownerCol) {
      const o: OpenScalar = open;
      const sep = o.node.text === '' ? '' : o.folded ? ' ' : '\n';
      o.node.text += sep + trimmed;
      continue;
    }
    open = null;

    const dash = m[2];
    const rest = m[3];

    if (dash !== undefined) {
      // 2. a list item
      let f = top();
      let list: ListFrame;
      if (f.kind === 'map' && f.pendingKey !== undefined && indent >= f.col) {
        const node: ListNode = { kind: 'list', items: [], line: lineNo };
        attach(f, node);
        list = { kind: 'list', node, col: indent };
        stack.push(list);
      } else if (f.kind === 'list' && f.pendingItem && indent > f.col) {
        const node: ListNode = { kind: 'list', items: [], line: lineNo };
        attach(f, node);
        list = { kind: 'list', node, col: indent };
        stack.push(list);
      } else {
        while (stack.length > 1 && top().col > indent) {
          settle(top());
          stack.pop();
        }
        f = top();
        settle(f);
        if (f.kind !== 'list') {
          throw new SpecParseError('list item outside of a list', lineNo);
        }
        list = f;
      }
      const itemCol = indent + dash.length;
      if (rest === '') {
        list.pendingItem = true;
        list.pendingLine = lineNo;
        continue;
      }
      const km = KEY_RE.exec(rest);
      if (km) {
        const node: MapNode = { kind: 'map', entries: new Map(), line: lineNo };
        list.node.items.push(node);
        const mf: MapFrame = { kind: 'map', node, col: itemCol };
        stack.push(mf);
        setKey(mf, km[1], (km[2] ?? '').trim(), lineNo, itemCol);
        continue;
      }
      const node: ScalarNode = { kind: 'scalar', text: rest.trim(), line: lineNo };
      list.node.items.push(node);
      open = { node, ownerCol: indent, folded: false };
      continue;
    }

    const km = KEY_RE.exec(rest);
    let f = top();
    if (!km) {
      // 3. plain text: the value of a pending key or item
      if (hasPending(f) && indent > f.col) {
        const node: ScalarNode = { kind: 'scalar', text: trimmed, line: lineNo };
        attach(f, node);
        open = { node, ownerCol: f.col, folded: false };
        continue;
      }
      throw new SpecParseError(`unexpected text: ${trimmed}`, lineNo);
    }

    // 4. key: value
    if (hasPending(f) && indent > f.col) {
      const node: MapNode = { kind: 'map', entries: new Map(), line: lineNo };
      attach(f, node);
      const mf: MapFrame = { kind: 'map', node, col: indent };
      stack.push(mf);
      setKey(mf, km[1], (km[2] ?? '').trim(), lineNo, indent);
      continue;
    }
    while (stack.length > 1 && (top().col > indent || (top().kind === 'list' && top().col >= indent))) {
      settle(top());
      stack.pop();
    }
    f = top();
    settle(f);
    if (f.kind !== 'map') throw new SpecParseError('key inside a list', lineNo);
    setKey(f, km[1], (km[2] ?? '').trim(), lineNo, indent);
  }
  while (stack.length > 0) {
    settle(top());
    stack.pop();
  }
  return root;
}

// ---------------------------------------------------------------------------------------------
// From the tree to tests

/** A query or expectation text and the dialect it is written in. */
export interface SpecText {
  /** 'js': JavaScript text; 'cd': common (Python-flavoured) text */
  lang: 'js' | 'cd';
  text: string;
}

export interface SpecTest {
  /** position of the entry in the file's `tests` list (0-based) */
  index: number;
  line: number;
  /** 'def' binds a name; 'query' runs one or more queries */
  kind: 'def' | 'query';
  /** query variants (a test may list several queries with one expectation) */
  queries: SpecText[];
  /** expected result (absent: the query runs for its effect, nothing is checked) */
  expected?: SpecText;
  /** raw texts of the run options, by option name (snake_case as written) */
  runopts: Record<string, string>;
  testopts: Record<string, string>;
}

export interface SpecFile {
  desc: string;
  tables: string[];
  tests: SpecTest[];
  /** entries for other languages only (py:, rb:), not JavaScript tests */
  otherLanguage: number;
}

function scalarText(n: YNode | undefined): string | undefined {
  return n !== undefined && n.kind === 'scalar' ? n.text : undefined;
}

/** The texts of a query field: a scalar or a list of scalars. */
function textsOf(n: YNode | undefined): string[] {
  if (n === undefined) return [];
  // a text that is only a comment (`js: # operators are not translated in JS`) disables the test
  if (n.kind === 'scalar') return n.text.trim() === '' || n.text.trim().startsWith('#') ? [] : [n.text];
  if (n.kind === 'list') return n.items.flatMap((i) => textsOf(i));
  return [];
}

function isNullText(n: YNode | undefined): boolean {
  const t = scalarText(n)?.trim();
  return t === 'null' || t === 'None';
}

/** Picks the JavaScript variant of a field that may be a map keyed by language. */
function pickLang(n: YNode | undefined): { node: YNode; lang: 'js' | 'cd' } | undefined | null {
  if (n === undefined) return undefined;
  if (n.kind !== 'map') return { node: n, lang: 'cd' };
  const js = n.entries.get('js');
  if (js !== undefined) return { node: js, lang: 'js' };
  const cd = n.entries.get('cd');
  if (cd !== undefined) return { node: cd, lang: 'cd' };
  return null; // only other languages
}

function optsOf(n: YNode | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (n === undefined || n.kind !== 'map') return out;
  for (const [k, v] of n.entries) {
    if (v.kind === 'scalar') out[k] = v.text;
  }
  return out;
}

/**
 * Reads one entry of `tests`. Returns null when the entry is not a JavaScript test (py:/rb: only,
 * or `js: null`).
 */
function readEntry(n: YNode, index: number): SpecTest | null {
  if (n.kind !== 'map') return null;
  const e = n.entries;
  const runopts = optsOf(e.get('runopts'));
  const testopts = optsOf(e.get('testopts'));

  // def: a binding, possibly by language (an entry may also hold a test: see readEntries)
  if (e.has('def')) {
    const picked = pickLang(e.get('def'));
    if (!picked) return null;
    const texts = textsOf(picked.node);
    if (texts.length === 0) return null;
    return {
      index,
      line: n.line,
      kind: 'def',
      queries: texts.map((text) => ({ lang: picked.lang, text })),
      runopts,
      testopts,
    };
  }

  // a whole test scoped to one language: `js: {cd: ..., ot: ...}` (or py:/rb: — not ours)
  const jsNode = e.get('js');
  if (jsNode !== undefined && jsNode.kind === 'map') {
    return readEntry(jsNode, index);
  }

  let queries: SpecText[];
  if (jsNode !== undefined) {
    if (isNullText(jsNode)) return null;
    queries = textsOf(jsNode).map((text) => ({ lang: 'js' as const, text }));
  } else {
    // `cd` may itself be keyed by language (`cd: {cd: ..., py: ...}`)
    const picked = pickLang(e.get('cd'));
    if (!picked) return null;
    queries = textsOf(picked.node).map((text) => ({ lang: picked.lang, text }));
  }
  if (queries.length === 0) return null;

  let expected: SpecText | undefined;
  const ot = pickLang(e.get('ot'));
  if (ot) {
    const t = scalarText(ot.node);
    if (t !== undefined && t.trim() !== '') expected = { lang: ot.lang, text: t };
  }
  return { index, line: n.line, kind: 'query', queries, expected, runopts, testopts };
}

/**
 * The tests of one entry: usually one, but an entry can hold a test and a `def` side by side
 * (mutation/insert.yaml, transformation.yaml). The def comes first: the test may use its name,
 * and a def only binds a term, so it needs nothing the test does.
 */
function readEntries(n: YNode, index: number): SpecTest[] {
  if (n.kind !== 'map' || !n.entries.has('def') || n.entries.size === 1) {
    const t = readEntry(n, index);
    return t ? [t] : [];
  }
  const rest: MapNode = { kind: 'map', entries: new Map([...n.entries].filter(([k]) => k !== 'def')), line: n.line };
  const def: MapNode = { kind: 'map', entries: new Map([['def', n.entries.get('def') as YNode]]), line: n.line };
  return [readEntry(def, index), readEntry(rest, index)].filter((t): t is SpecTest => t !== null);
}

/** Splits `table_variable_name` ("tbl", "tbl tbl2", "tbl, tbl2") into names. */
export function tableNames(text: string | undefined): string[] {
  if (!text) return [];
  return text
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter((s) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(s));
}

export function readSpecFile(text: string): SpecFile {
  const root = parseSpecText(text);
  if (root.kind !== 'map') throw new SpecParseError('top level is not a map', 1);
  const desc = scalarText(root.entries.get('desc')) ?? '';
  const tables = tableNames(scalarText(root.entries.get('table_variable_name')));
  const testsNode = root.entries.get('tests');
  const tests: SpecTest[] = [];
  let otherLanguage = 0;
  if (testsNode !== undefined && testsNode.kind === 'list') {
    testsNode.items.forEach((item, i) => {
      const found = readEntries(item, i);
      if (found.length > 0) tests.push(...found);
      else otherLanguage++;
    });
  }
  return { desc, tables, tests, otherLanguage };
}
