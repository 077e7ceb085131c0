// The embedded ReQL server is a product of its own: src/reql imports nothing from the rest of
// the repository (only node: built-ins and its own npm dependencies), and its modules form no
// import cycle (type-only imports included, so the layering reads the same in the source).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import t from 'tap';

const ROOT = resolve('src/reql');
/** npm packages src/reql may use: its own package.json's dependencies. */
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
const ALLOWED_PACKAGES = new Set(Object.keys(pkg.dependencies ?? {}));

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      if (name !== 'node_modules' && name !== 'dist') out.push(...sources(p));
    } else if ((name.endsWith('.ts') && !name.endsWith('.d.ts')) || name.endsWith('.js')) out.push(p);
  }
  return out;
}

/** Every module specifier in a file: static imports and re-exports (type-only too) and import(). */
function specifiers(text: string): string[] {
  const noComments = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
  const found: string[] = [];
  const re = /(?:^|[;\s])(?:import|export)\s+(?:type\s+)?(?:[\w*${}\s,]+\s+from\s+)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/gm;
  for (const m of noComments.matchAll(re)) found.push(m[1] ?? m[2]);
  return found;
}

const files = sources(ROOT);
const graph = new Map<string, string[]>();
const outside: string[] = [];
for (const file of files) {
  const deps: string[] = [];
  for (const spec of specifiers(readFileSync(file, 'utf8'))) {
    if (spec.startsWith('node:')) continue;
    if (!spec.startsWith('.')) {
      const pkg = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0];
      if (!ALLOWED_PACKAGES.has(pkg)) outside.push(`${relative(ROOT, file)} imports package ${spec}`);
      continue;
    }
    const target = resolve(dirname(file), /\.ts$/.test(spec) ? spec : spec.replace(/\.js$/, '.ts'));
    if (!target.startsWith(ROOT + '/')) outside.push(`${relative(ROOT, file)} imports ${spec} (outside src/reql)`);
    else deps.push(target);
  }
  graph.set(file, deps);
}

/** Every elementary cycle found by a depth-first search, each as a list of files. */
function cycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (f: string): void => {
    state.set(f, 'open');
    stack.push(f);
    for (const d of graph.get(f) ?? []) {
      if (state.get(d) === 'open') found.push([...stack.slice(stack.indexOf(d)), d]);
      else if (!state.has(d)) visit(d);
    }
    stack.pop();
    state.set(f, 'done');
  };
  for (const f of graph.keys()) if (!state.has(f)) visit(f);
  return found;
}

t.ok(files.length > 10, `found the sources of src/reql (${files.length} files)`);
t.ok([...graph.values()].some((d) => d.length > 0), 'the import graph has edges (the parser reads imports)');
t.same(outside, [], 'src/reql imports nothing from the rest of the repository');
t.same(
  cycles(graph).map((c) => c.map((f) => relative(ROOT, f)).join(' -> ')),
  [],
  'no import cycles in src/reql',
);

t.test('the check itself reads every kind of import and finds cycles', async (t) => {
  const g = new Map([['a', ['b']], ['b', ['c']], ['c', ['a', 'd']], ['d', []]]);
  t.same(cycles(g), [['a', 'b', 'c', 'a']]);
  t.same(cycles(new Map([['a', ['b']], ['b', []]])), []);
  const text = "import { a } from './x.js';\nimport type { B } from \"../y.js\";\nexport { c } from './z.js';\nconst m = await import('./log.js');\n// import './commented.js';\n";
  t.same(specifiers(text), ['./x.js', '../y.js', './z.js', './log.js']);
});
