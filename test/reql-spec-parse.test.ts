// Unit tests of the spec runner's reader (parse.ts), converter (convert.ts), comparison helpers
// (expect.ts) and skip list (skips.ts). No server needed.
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { parseSpecText, readSpecFile, tableNames, type YNode } from './reql-spec/parse.js';
import { ConvertError, PY_BUILTINS, convertExpr, convertStatement, createPyRuntime, mapMethodName, snakeToCamel, tokenize } from './reql-spec/convert.js';
import {
  ErrMatcher,
  RESPONSE_INFO,
  classifyError,
  compare,
  errorTypeMatches,
  expectationHelpers,
  isActualError,
  type ActualError,
} from './reql-spec/expect.js';
import { driverCheckReason, findSkip, outOfScopeRefusal } from './reql-spec/skips.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const SPEC_DIR = path.resolve(here, '..', '..', 'shared', 'reql-spec');

const require = createRequire(import.meta.url);
const { r } = require('rethinkdb-ts') as { r: ((x: unknown) => unknown) & Record<string, (...a: unknown[]) => unknown> };
const { isQuery } = require('rethinkdb-ts/lib/query-builder/query.js') as { isQuery(x: unknown): boolean };
const termOf = (x: unknown): unknown => (x as { term: unknown }).term;

/** Evaluates converted code the way the runner does (names in a scope object). */
function run(js: string, scope: Record<string, unknown> = {}): unknown {
  const py = createPyRuntime(r as unknown as { expr(v: unknown): unknown }, isQuery);
  const builtins = Object.fromEntries(PY_BUILTINS.map((n) => [n, py[n]]));
  const s: Record<string, unknown> = { r, $py: py, ...builtins, ...expectationHelpers(), ...scope };
  return new Function('__scope', `with (__scope) { return (\n${js}\n); }`)(s);
}

const scalar = (n: YNode | undefined): string | undefined => (n && n.kind === 'scalar' ? n.text : undefined);

// ---------------------------------------------------------------------------------------------
t.test('reader: lines, keys, raw values', async (t) => {
  const root = parseSpecText(
    [
      'desc: a file: with colons',
      'table_variable_name: tbl, tbl2',
      'tests:',
      '',
      '    # a comment',
      "    - cd: r.expr({'a': 1})",
      "      ot: {'a': 1}",
      '    - py: x = 1',
      '      js: x = 1',
      '',
    ].join('\n'),
  );
  t.equal(root.kind, 'map');
  if (root.kind !== 'map') return;
  t.equal(scalar(root.entries.get('desc')), 'a file: with colons', 'the value is raw text after the first key');
  const tests = root.entries.get('tests');
  t.equal(tests?.kind, 'list');
  if (tests?.kind !== 'list') return;
  t.equal(tests.items.length, 2);
  const first = tests.items[0];
  t.equal(first.kind, 'map');
  if (first.kind === 'map') {
    t.equal(scalar(first.entries.get('cd')), "r.expr({'a': 1})");
    t.equal(scalar(first.entries.get('ot')), "{'a': 1}", 'flow syntax stays raw text');
  }
});

t.test('reader: continuation lines and blocks', async (t) => {
  const f = readSpecFile(
    [
      'tests:',
      "  - cd: r.expr([1,",
      '           2, 3])',
      '    ot: [1,2,3]',
      '  - js: |',
      '      tbl.insert(function(){',
      '          var res = []',
      '          return res;',
      '      }())',
      '    ot: 1',
      '  - def: rows = [{"id":0},',
      '                 {"id":1}]',
    ].join('\n'),
  );
  t.equal(f.tests.length, 3);
  t.equal(f.tests[0].queries[0].text, 'r.expr([1,\n2, 3])', 'deeper lines continue the value, joined with newlines');
  t.equal(f.tests[1].queries[0].lang, 'js');
  t.match(f.tests[1].queries[0].text, /^tbl\.insert\(function\(\)\{\nvar res = \[\]\nreturn res;\n\}\(\)\)$/, '| announces a block');
  t.equal(f.tests[2].kind, 'def');
  t.equal(f.tests[2].queries[0].text, 'rows = [{"id":0},\n{"id":1}]');
});

t.test('reader: lists of queries, language maps, js: null, scoped tests', async (t) => {
  const f = readSpecFile(
    [
      'tests:',
      '    - cd:',
      '        - r.expr([])',
      '        - r([])',
      '      py: r.expr([])',
      '      ot: []',
      '    - cd: tbl.group("a").count()',
      '      ot:',
      '        cd: {0: 1}',
      "        js: [{'group':0,'reduction':1}]",
      '    - cd: r.expr(r.epoch_time(1))',
      '      js: null',
      '      ot:',
      '        py: datetime.fromtimestamp(1)',
      '    - py:',
      '        cd: r.binary(b"x")',
      '        ot: b"x"',
      '    - js:',
      '        cd: r.expr(1e400)',
      '        ot: 1',
      '    - def:',
      '        cd: t1 = 1',
      '        js: t1 = 1000',
      '    - def:',
      '        py: only_py = 1',
      '    - cd:',
      '        cd: tbl3.get(1)',
      '        py: tbl3.get(1)',
      '      ot: null',
      '    - js: # operators are not translated in JS',
      '      ot: 1',
    ].join('\n'),
  );
  t.equal(f.otherLanguage, 4, 'js: null, py-scoped, py-only def and a commented-out js text are not JS tests');
  const [list, grouped, scoped, def, cdMap] = f.tests;
  t.same(
    list.queries.map((q) => q.text),
    ['r.expr([])', 'r([])'],
    'a list of queries shares one expectation',
  );
  t.same(grouped.expected, { lang: 'js', text: "[{'group':0,'reduction':1}]" }, 'ot keyed by language: js first');
  t.same(scoped.queries, [{ lang: 'cd', text: 'r.expr(1e400)' }]);
  t.same(scoped.expected, { lang: 'cd', text: '1' });
  t.equal(def.kind, 'def');
  t.same(def.queries, [{ lang: 'js', text: 't1 = 1000' }]);
  t.same(cdMap.queries, [{ lang: 'cd', text: 'tbl3.get(1)' }], 'cd keyed by language');
});

t.test('reader: uneven indentation keeps siblings (changefeeds/point.yaml style)', async (t) => {
  const f = readSpecFile(
    [
      'tests:',
      '    - cd: a()',
      '      ot: 1',
      '     - cd: basic.close()',
      '       rb: def pass; end',
      '     # comment at another indentation',
      ' # and another',
      '     - cd: b()',
      '       ot: 2',
      '     - def: c = 1',
      '    - cd: d()',
      '      ot: 4',
    ].join('\n'),
  );
  t.same(
    f.tests.map((x) => x.queries[0].text),
    ['a()', 'basic.close()', 'b()', 'c = 1', 'd()'],
  );
  t.same(
    f.tests.map((x) => x.expected?.text),
    ['1', undefined, '2', undefined, '4'],
  );
});

t.test('reader: an entry holding a def and a test', async (t) => {
  const f = readSpecFile(
    [
      'tests:',
      "    - js: r.db('test').tableCreate('testpkey', {primaryKey:'foo'})",
      "      py: r.db('test').table_create('testpkey', primary_key='foo')",
      "      ot: partial({'tables_created':1})",
      '',
      "      def: tblpkey = r.db('test').table('testpkey')",
      "    - cd: tblpkey.insert({})",
      '      ot: 1',
    ].join('\n'),
  );
  t.same(
    f.tests.map((x) => [x.kind, x.queries[0].text, x.expected?.text]),
    [
      ['def', "tblpkey = r.db('test').table('testpkey')", undefined],
      ['query', "r.db('test').tableCreate('testpkey', {primaryKey:'foo'})", "partial({'tables_created':1})"],
      ['query', 'tblpkey.insert({})', '1'],
    ],
    'both run, the def first',
  );
});

t.test('reader: runopts, testopts, tables', async (t) => {
  const f = readSpecFile(
    [
      'desc: x',
      'table_variable_name: tbl tbl2 tbl3',
      'tests:',
      "  - cd: r.expr([1, 2])",
      '    runopts:',
      "      read_mode: [ 'a', 'b' ]",
      '      max_batch_rows: 1',
      '    testopts:',
      '      precision: 0.001',
      '    ot: [1, 2]',
      '  - ot: arrlen(x)',
      '    ot: 4',
    ].join('\n'),
  );
  t.same(f.tables, ['tbl', 'tbl2', 'tbl3']);
  t.equal(f.tests.length, 1, 'an entry with only expectations is not a test');
  t.same(f.tests[0].runopts, { read_mode: "[ 'a', 'b' ]", max_batch_rows: '1' });
  t.same(f.tests[0].testopts, { precision: '0.001' });
  t.same(tableNames('tbl, tbl2'), ['tbl', 'tbl2']);
  t.same(tableNames(undefined), []);
});

t.test('reader: the real Tier 1 files', { skip: !existsSync(SPEC_DIR) && 'spec folder not present' }, async (t) => {
  const tier1 = [
    'changefeeds/table.yaml', 'changefeeds/point.yaml', 'changefeeds/squash.yaml', 'changefeeds/include_states.yaml', 'changefeeds/edge.yaml',
    'mutation/insert.yaml', 'mutation/update.yaml', 'mutation/delete.yaml', 'mutation/replace.yaml', 'mutation/atomic_get_set.yaml', 'mutation/sync.yaml',
    'meta/dbs.yaml', 'meta/table.yaml', 'sindex/api.yaml', 'sindex/status.yaml', 'selection.yaml', 'default.yaml', 'match.yaml', 'control.yaml',
    'datum/null.yaml', 'datum/bool.yaml', 'datum/number.yaml', 'datum/string.yaml', 'datum/array.yaml', 'datum/object.yaml', 'datum/uuid.yaml',
    'datum/binary.yaml', 'datum/typeof.yaml', 'math_logic/comparison.yaml', 'math_logic/logic.yaml', 'math_logic/add.yaml', 'math_logic/sub.yaml',
    'times/api.yaml', 'times/constructors.yaml', 'times/time_arith.yaml', 'transform/array.yaml', 'transform/object.yaml', 'transform/table.yaml',
    'transform/map.yaml', 'aggregation.yaml', 'range.yaml',
  ];
  let total = 0;
  let unconvertible = 0;
  const per: Record<string, number> = {};
  for (const f of tier1) {
    const spec = readSpecFile(readFileSync(path.join(SPEC_DIR, f), 'utf8'));
    const n = spec.tests.filter((x) => x.kind === 'query' && x.expected).length;
    per[f] = n;
    total += n;
    for (const x of spec.tests) {
      for (const q of x.queries) {
        try {
          convertStatement(q.text, q.lang);
        } catch {
          unconvertible++;
        }
      }
      if (x.expected) {
        try {
          convertExpr(x.expected.text, x.expected.lang);
        } catch {
          unconvertible++;
        }
      }
    }
  }
  t.ok(total >= 1600 && total <= 1640, `about 1,620 tests with a js/cd query and an expectation (found ${total})`);
  t.equal(per['sindex/api.yaml'], 306);
  t.equal(per['changefeeds/point.yaml'], 26, 'point.yaml mixes 4- and 5-space items');
  t.equal(per['aggregation.yaml'], 96);
  t.equal(per['times/constructors.yaml'], 15, 'js: null tests are not counted');
  t.equal(unconvertible, 0, 'every Tier 1 query and expectation converts');
  const sync = readSpecFile(readFileSync(path.join(SPEC_DIR, 'mutation/update.yaml'), 'utf8'));
  t.same(sync.tables, ['tbl', 'tbl2'], 'comma-separated table names');
});

// ---------------------------------------------------------------------------------------------
t.test('names: snake_case to rethinkdb-ts spelling', async (t) => {
  t.equal(snakeToCamel('common_prefix'), 'commonPrefix');
  t.equal(snakeToCamel('first__error'), 'first_error', '__ stands for a literal _');
  t.equal(snakeToCamel('_debug_scratch'), '_debugScratch');
  t.equal(snakeToCamel('tbl'), 'tbl');
  t.equal(mapMethodName('coerce_to'), 'coerceTo');
  t.equal(mapMethodName('type_of'), 'typeOf');
  t.equal(mapMethodName('iso8601'), 'ISO8601');
  t.equal(mapMethodName('to_iso8601'), 'toISO8601');
  t.equal(mapMethodName('to_json_string'), 'toJsonString');
  t.equal(mapMethodName('to_json'), 'toJSON');
  t.equal(mapMethodName('and_'), 'and');
  t.equal(mapMethodName('not_'), 'not');
  t.equal(mapMethodName('get_all'), 'getAll');
  t.equal(mapMethodName('orderBy'), 'orderBy');
  t.equal(mapMethodName('length'), 'length', 'plain JS names pass');
});

t.test('tokenizer: Python strings and numbers', async (t) => {
  const toks = tokenize(`u'h\\u00e9' "a\\x00b" r'\\d+' b'\\x00\\xfe' '''x'y''' 1e3 0x1F 10L .5`, 'cd').filter((x) => x.type !== 'ws');
  t.same(
    toks.map((x) => x.type),
    ['str', 'str', 'str', 'bytes', 'str', 'num', 'num', 'num', 'num'],
  );
  t.equal(toks[0].value, 'hé');
  t.equal(toks[1].value, 'a\u0000b');
  t.equal(toks[2].value, '\\d+', 'raw strings keep backslashes');
  t.same(toks[3].bytes, [0, 0xfe]);
  t.equal(toks[4].value, "x'y");
  t.equal(toks[7].value, '10', 'Python 2 long suffix dropped');
  t.throws(() => tokenize("'open", 'cd'), ConvertError);
});

t.test('convert: common (Python-flavoured) texts', async (t) => {
  const cases: Array<[string, string]> = [
    ['r.expr(True).type_of()', 'r.expr(true).typeOf()'],
    ['r.expr([None, False])', 'r.expr([null, false])'],
    ["r.expr([1, 2]).coerce_to('string')", 'r.expr([1, 2]).coerceTo("string")'],
    ["tbl.between(1, 2, index='a', right_bound='closed')", 'tbl.between(1, 2, {"index": "a", "rightBound": "closed"})'],
    ['tbl.order_by(index=r.desc(\'id\'))', 'tbl.orderBy({"index": r.desc("id")})'],
    ['tbl.get(1).changes({include_initial:true})', 'tbl.get(1).changes({"include_initial": true})'],
    ["r({a:1, b:'two', c:True})", 'r({"a": 1, "b": "two", "c": true})'],
    ["r.iso8601('2013-01-01T00:00:00Z').to_iso8601()", 'r.ISO8601("2013-01-01T00:00:00Z").toISO8601()'],
    ['r.expr(-1)', 'r.expr((-1))'],
    ['r.epoch_time(rt1 + 1000)', 'r.epochTime($py.op("+", rt1, 1000))'],
    ['tbl.map(lambda row: row[\'a\'])', 'tbl.map(((row) => ($py.index(row, "a"))))'],
    ['r.expr([1, 2, 3])[1:2]', '$py.slice(r.expr([1, 2, 3]), 1, 2)'],
    ['r.expr([1, 2, 3])[1:]', '$py.slice(r.expr([1, 2, 3]), 1, null)'],
    ['(null)', 'null'],
    ["{0:1200, 'a':2}", '{"0": 1200, "a": 2}'],
    ["err('ReqlQueryLogicError', 'a:' + ' b', [0])", 'err("ReqlQueryLogicError", $py.op("+", "a:", " b"), [0])'],
    ['r.expr(1).do(function (x) { return x; })', 'r.expr(1).do(((x) => (x)))'],
    ['~r.expr(True)', '$py.unary("~", r.expr(true))'],
    ["'ab' if x else 'cd'", '($py.truthy(x) ? ("ab") : ("cd"))'],
    ['a and not b', '$py.and(a, () => ($py.not(b)))'],
    ["tbl.insert({'id':1}, durability='soft', return_changes=True)", 'tbl.insert({"id": 1}, {"durability": "soft", "returnChanges": true})'],
    ["b'\\x00\\x01'", '$py.bytes([0,1])'],
    ["'a' 'b'", '"ab"'],
    ['float("nan")', 'float("nan")'],
    ['r.expr(nil)', 'r.expr(null)'],
  ];
  for (const [src, js] of cases) t.equal(convertExpr(src, 'cd'), js, src);
  t.same(convertStatement('basic = tbl.get(1).changes()', 'cd'), { js: 'tbl.get(1).changes()', assign: 'basic' });
  t.same(convertStatement('tbl_soft = r.db("test").table("x")', 'cd'), { js: 'r.db("test").table("x")', assign: 'tblSoft' });
  t.same(convertStatement('r.expr(1).eq(1)', 'cd'), { js: 'r.expr(1).eq(1)' });
  t.throws(() => convertExpr('f(*args)', 'cd'), ConvertError);
  t.throws(() => convertExpr('1 < x < 3', 'cd'), ConvertError);
  t.throws(() => convertExpr('r.expr(1) +', 'cd'), ConvertError);
  t.throws(() => convertExpr('', 'cd'), ConvertError);
});

t.test('convert: JavaScript texts', async (t) => {
  const cases: Array<[string, string]> = [
    ["tbl.insert({'id':0}, {'return__changes':true}).pluck('changes', 'first__error')", "tbl.insert({'id':0}, {'return_changes':true}).pluck('changes', 'first_error')"],
    ["tbl.between(commonPrefix.append('2'), common_prefix.append('9'), {index:'sindex'})", "tbl.between(commonPrefix.append('2'), commonPrefix.append('9'), {index:'sindex'})"],
    ["tbl.union(tbl.coerce_to(\"array\")).group(r.row('a'))", "tbl.union(tbl.coerceTo(\"array\")).group(r.row('a'))"],
    ['tbl.changes({squash:false,include_initial:true})', 'tbl.changes({squash:false,include_initial:true})'],
    ["r.row('new_val')('update')", "r.row('new_val')('update')"],
    ['function(row){ return row("a"); }', 'function(row){ return row("a"); }'],
    ['x ? a_b : c_d', 'x ? aB : cD'],
    ['r.epochTime(1.444).toISO8601()', 'r.epochTime(1.444).toISO8601()'],
  ];
  for (const [src, js] of cases) t.equal(convertExpr(src, 'js'), js, src);
  t.same(convertStatement("pre_changes = tbl.changes().limit(pre.length)('new_val')", 'js'), {
    js: "tbl.changes().limit(pre.length)('new_val')",
    assign: 'preChanges',
  });
  t.same(convertStatement('s = Buffer("\\x00", \'binary\');', 'js'), { js: 'Buffer("\\x00", \'binary\')', assign: 's' });
  t.same(convertStatement('r.expr(1).eq(2)', 'js'), { js: 'r.expr(1).eq(2)' }, '== is not an assignment');
});

// ---------------------------------------------------------------------------------------------
t.test('runtime: Python operators on plain values', async (t) => {
  const py = createPyRuntime(r as unknown as { expr(v: unknown): unknown }, isQuery);
  t.equal(py.op('+', 1, 2), 3);
  t.equal(py.op('+', 'a', 'b'), 'ab');
  t.same(py.op('+', [1], [2]), [1, 2]);
  t.equal(py.op('*', 'ab', 2), 'abab');
  t.same(py.op('*', [0], 3), [0, 0, 0]);
  t.equal(py.op('%', -1, 3), 2, 'Python modulo');
  t.equal(py.op('//', 7, 2), 3);
  t.equal(py.op('==', [1, { a: 2 }], [1, { a: 2 }]), true);
  t.equal(py.op('in', 2, [1, 2]), true);
  t.equal(py.index([1, 2, 3], -1), 3);
  t.equal(py.index({ a: 1 }, 'a'), 1);
  t.equal(py.slice('abcdef', 1, 3), 'bc');
  t.same(py.slice([1, 2, 3, 4], -2, null), [3, 4]);
  t.same(py.comp([1, 2, 3], (x) => (x as number) * 2, (x) => (x as number) > 1), [4, 6]);
  t.same((py.range as (n: number) => number[])(3), [0, 1, 2]);
  t.ok(Number.isNaN((py.float as (s: string) => number)('nan')));
  t.equal((py.len as (x: unknown) => number)('héllo'), 5);
  t.equal(py.truthy([]), false);
  t.equal(py.truthy({ a: 1 }), true);
});

t.test('runtime: Python operators on ReQL terms build terms', async (t) => {
  const py = createPyRuntime(r as unknown as { expr(v: unknown): unknown }, isQuery);
  t.same(termOf(py.op('+', r.expr(1), 2)), termOf((r.expr(1) as { add(x: unknown): unknown }).add(2)));
  t.same(termOf(py.op('+', 2, r.expr(1))), termOf((r.expr(2) as { add(x: unknown): unknown }).add(r.expr(1))), 'reflected operand');
  t.same(termOf(py.op('<', r.row, 3)), termOf((r.row as unknown as { lt(x: unknown): unknown }).lt(3)));
  t.same(termOf(py.op('&', r.expr(true), false)), termOf((r.expr(true) as { and(x: unknown): unknown }).and(false)));
  t.same(termOf(py.op('|', r.expr(true), false)), termOf((r.expr(true) as { or(x: unknown): unknown }).or(false)));
  t.same(termOf(py.unary('~', r.expr(true))), termOf((r.expr(true) as { not(): unknown }).not()));
  t.same(termOf(py.index(r.expr({ a: 1 }), 'a')), termOf((r.expr({ a: 1 }) as (k: string) => unknown)('a')), 'x[k] is the bracket term');
  t.same(
    termOf(py.slice(r.expr([1, 2, 3]), 1, null)),
    termOf((r.expr([1, 2, 3]) as { slice(...a: unknown[]): unknown }).slice(1, -1, { rightBound: 'closed' })),
    'x[a:] as the Python driver sends it',
  );
  t.throws(() => py.truthy(r.expr(1)), ConvertError, 'a term has no truth value');
  t.throws(() => py.op('//', r.expr(1), 2), ConvertError);
});

t.test('converted code evaluates', async (t) => {
  t.same(run(convertExpr("[{'id':i, 'a':i % 4} for i in range(3)]", 'cd')), [
    { id: 0, a: 0 },
    { id: 1, a: 1 },
    { id: 2, a: 2 },
  ]);
  t.equal(run(convertExpr('tableCount + 1', 'cd'), { tableCount: 41 }), 42);
  t.same(run(convertExpr('[rows[0]]', 'cd'), { rows: [{ id: 0 }] }), [{ id: 0 }]);
  const lam = run(convertExpr("r.expr([1]).map(lambda x: x * 2)", 'cd'));
  t.ok(isQuery(lam), 'a lambda over a term builds a query');
  const e = run(convertExpr("err('ReqlQueryLogicError', 'Index out of bounds:' + ' 1', [])", 'cd'));
  t.ok(e instanceof ErrMatcher);
  t.equal((e as ErrMatcher).message, 'Index out of bounds: 1');
});

// ---------------------------------------------------------------------------------------------
t.test('expect: values and matchers', async (t) => {
  const h = expectationHelpers() as Record<string, (...a: unknown[]) => unknown>;
  t.ok(compare({ a: 1, b: [1, 2] }, { b: [1, 2], a: 1 }).ok, 'key order does not matter');
  t.notOk(compare({ a: 1 }, { a: 1, b: 2 }).ok, 'extra keys fail without partial');
  t.ok(compare(h.partial({ a: 1 }), { a: 1, b: 2 }).ok);
  t.ok(compare(h.partial({ errors: 0, inserted: 1 }), { errors: 0, inserted: 1, deleted: 0 }).ok);
  t.notOk(compare(h.partial({ a: 1 }), { a: 2 }).ok);
  t.ok(compare(h.partial([{ error: h.regex('Changefeed cache over array size limit, skipped \\d+ elements.') }]), [{ new_val: 1 }, { error: 'Changefeed cache over array size limit, skipped 3 elements.' }]).ok);
  t.ok(compare(h.bag([1, 2, 2]), [2, 1, 2]).ok);
  t.notOk(compare(h.bag([1, 2, 2]), [2, 1, 1]).ok);
  t.notOk(compare(h.bag([1, 2]), [1, 2, 3]).ok);
  t.ok(compare(h.arrlen(3, h.uuid()), ['9a8b4d3c-0f2e-4b9a-8c7d-6e5f4a3b2c1d', '9a8b4d3c-0f2e-4b9a-8c7d-6e5f4a3b2c1e', '9a8b4d3c-0f2e-4b9a-8c7d-6e5f4a3b2c1f']).ok);
  t.notOk(compare(h.uuid(), 'nope').ok);
  t.ok(compare(1, 1.0).ok, 'numbers compare as doubles');
  t.notOk(compare(1, 1.0000001).ok, 'exactly');
  t.ok(compare(1, 1.0000001, { precision: 1e-3 }).ok, 'unless testopts give a precision');
  t.ok(compare(h.float_cmp(1.2), 1.2000000000000002).ok);
  t.notOk(compare(1, '1').ok);
  t.notOk(compare(null, 0).ok);
  t.ok(compare(Buffer.from([0, 1]), { $reql_type$: 'BINARY', data: 'AAE=' }).ok, 'a Buffer equals raw BINARY');
  t.ok(compare({ $reql_type$: 'BINARY', data: 'AAE=' }, Buffer.from([0, 1])).ok);
  t.ok(compare(new Date(1000), { $reql_type$: 'TIME', epoch_time: 1, timezone: '-07:00' }).ok, 'a Date matches the same instant');
  t.notOk(compare({ $reql_type$: 'TIME', epoch_time: 1, timezone: '+00:00' }, { $reql_type$: 'TIME', epoch_time: 1, timezone: '-07:00' }).ok);
  t.ok(compare([{ group: 0, reduction: 1 }], [{ group: 0, reduction: 1 }]).ok);
});

t.test('expect: errors', async (t) => {
  const h = expectationHelpers() as Record<string, (...a: unknown[]) => unknown>;
  const logic: ActualError = { kind: 'error', type: 'ReqlQueryLogicError', message: 'Expected type NUMBER but found STRING.', clientSide: false };
  t.ok(isActualError(logic));
  t.ok(compare(h.err('ReqlQueryLogicError', 'Expected type NUMBER but found STRING.', [0]), logic).ok);
  t.notOk(compare(h.err('ReqlQueryLogicError', 'Expected type NUMBER but found NULL.'), logic).ok, 'messages are exact');
  t.notOk(compare(h.err('ReqlNonExistenceError', 'Expected type NUMBER but found STRING.'), logic).ok, 'classes are exact');
  t.ok(compare(h.err('ReqlRuntimeError', 'Expected type NUMBER but found STRING.'), logic).ok, 'ReqlRuntimeError is any runtime error');
  t.ok(compare(h.err_regex('ReqlQueryLogicError', 'Expected type [A-Z]+ but'), logic).ok);
  t.notOk(compare(h.err('ReqlQueryLogicError', 'x'), 5).ok, 'a value is not an error');
  t.notOk(compare(5, logic).ok, 'an error is not a value');
  const nonex: ActualError = { kind: 'error', type: 'ReqlNonExistenceError', message: 'No attribute `dummy` in object:\n{\n\t"id": 1\n}', clientSide: false };
  t.ok(compare(h.err('ReqlNonExistenceError', 'No attribute `dummy` in object:'), nonex).ok, 'a message ending at ":" is a prefix');
  t.ok(errorTypeMatches('ReqlServerCompileError', 'ReqlCompileError'));
  t.ok(errorTypeMatches('ReqlAvailabilityError', 'ReqlOpFailedError'));
  t.notOk(errorTypeMatches('ReqlQueryLogicError', 'ReqlNonExistenceError'));
});

t.test('expect: classifying driver errors', async (t) => {
  const mk = (name: string, msg: string, info?: { responseType: number; errorType?: number }) => {
    const e = Object.assign(new Error(`${msg} in:\nr.expr(1)\n^^^^^^^^^`), { name, msg });
    if (info) Object.defineProperty(e, RESPONSE_INFO, { value: info });
    return e;
  };
  t.same(classifyError(mk('ReqlUnknownError', 'Expected 2 arguments but found 1.', { responseType: 17 })), {
    kind: 'error',
    type: 'ReqlCompileError',
    message: 'Expected 2 arguments but found 1.',
    clientSide: false,
  });
  t.equal(classifyError(mk('ReqlLogicError', 'x', { responseType: 18, errorType: 3000000 })).type, 'ReqlQueryLogicError');
  t.equal(classifyError(mk('ReqlNonExistanceError', 'x', { responseType: 18, errorType: 3100000 })).type, 'ReqlNonExistenceError');
  t.equal(classifyError(mk('ReqlResourceError', 'x', { responseType: 18, errorType: 2000000 })).type, 'ReqlResourceLimitError');
  t.equal(classifyError(mk('ReqlOpFailedError', 'x', { responseType: 18, errorType: 4100000 })).type, 'ReqlOpFailedError');
  t.equal(classifyError(mk('ReqlUserError', 'x', { responseType: 18, errorType: 5000000 })).type, 'ReqlUserError');
  t.equal(classifyError(mk('ReqlLogicError', 'x')).type, 'ReqlQueryLogicError', 'without the hook: by the driver name');
  t.equal(classifyError(mk('ReqlNonExistanceError', 'x')).type, 'ReqlNonExistenceError', "rethinkdb-ts's spelling");
  t.equal(classifyError(mk('ReqlLogicError', 'the message')).message, 'the message', 'the query printout is not part of the message');
  const client = classifyError(mk('ReqlDriverError', '`get` takes 1 argument, 2 provided after:'));
  t.equal(client.clientSide, true);
  t.equal(classifyError(new TypeError('r.wait is not a function')).type, 'driver:TypeError');
  const lost = classifyError(Object.assign(new Error('`run` was called with a closed connection after:'), { name: 'ReqlDriverError', type: 2 }));
  t.same([lost.type, lost.clientSide], ['driver:ConnectionLost', false], 'a lost connection is the server side');
});

t.test('skips: one list, each with a reason', async (t) => {
  t.equal(findSkip('control.yaml', 140, "r.js('1 + 1')")?.outOfScope, true, 'out-of-scope tests still run and are judged');
  t.ok(findSkip('geo/indexing.yaml', 8, 'tbl.insert(rows)')?.wholeFile, 'a glob over a folder');
  t.equal(findSkip('sindex/api.yaml', 242, 'tbl.get_all(r.point(0, 0))')?.outOfScope, true);
  t.ok(outOfScopeRefusal('Term `POINT` is not supported by the embedded ReQL server.'));
  t.notOk(outOfScopeRefusal('Term `EPOCH_TIME` is not supported by the embedded ReQL server.'), 'times are in scope');
  t.notOk(outOfScopeRefusal('Expected type NUMBER but found POINT.'), 'naming the term is not enough: it must be a refusal');
  t.match(driverCheckReason("err('ReqlDriverCompileError', 'Anonymous function returned `undefined`. Did you forget a `return`?', [1])"), /driver/);
  t.match(driverCheckReason("err('TypeError')"), /driver/);
  t.match(driverCheckReason("err('ReqlCompileError', 'Expected 1 argument (not including options) but found 2.')"), /argument count/);
  t.equal(driverCheckReason("err('ReqlCompileError', 'Expected 2 arguments but found 3.')"), undefined, 'the server counts the target too');
  t.match(findSkip('control.yaml', 140, "r.js('1 + 1')")?.reason, /r\.js/);
  t.match(findSkip('transform/map.yaml', 78, 'r.range(3).map(r.range(5), r.js("(function(x, y){return [x, y];})"))')?.reason, /r\.js/);
  t.equal(findSkip('control.yaml', 1, 'r.expr(1)'), undefined);
});

// ---------------------------------------------------------------------------------------------
t.test('driver: terms as RethinkDB drivers build them', async (t) => {
  const { rSpec } = await import('./reql-spec/driver.js');
  const R = rSpec as unknown as Record<string, (...a: unknown[]) => { term: unknown }> & { row: unknown; july: unknown };
  const json = (q: unknown) => JSON.parse(JSON.stringify((q as { term: unknown }).term)) as unknown;
  const TABLE = [15, [[14, ['test']], 'tbl']];
  const tbl = (R.db('test') as unknown as Record<string, (n: string) => Record<string, (...a: unknown[]) => unknown>>).table('tbl');
  const ins = tbl.insert({ id: R.row, b: { c: (R.row as { mod(n: number): unknown }).mod(5) } });
  const fe = (R.range(3) as unknown as Record<string, (x: unknown) => unknown>).forEach(ins);
  t.match(
    json(fe),
    [68, [[173, [3]], [69, [[2, [Number]], [56, [TABLE, { id: [13], b: { c: [28, [[13], 5]] } }]]]]]],
    'r.row inside an insert inside forEach: only forEach gets a function',
  );
  t.same(json(tbl.get(10, 20)), [16, [TABLE, 10, 20]], 'wrong arity is sent to the server');
  t.same(json(R.do()), [64, []]);
  t.same(json(R.time(2013, R.july, 29)), [136, [2013, [120], 29]]);
  t.same(json(tbl.update({}, 'foo')), [53, [TABLE, {}, 'foo']]);
  t.same(json(tbl.insert({ id: 1 }, { returnChanges: true })), [56, [TABLE, { id: 1 }], { return_changes: true }], 'options stay options');
  t.same(json(tbl.getAll(1, 2, { index: 'a' })), [78, [TABLE, 1, 2], { index: 'a' }]);
  t.match(json(tbl.filter((R.row as (k: string) => { eq(v: unknown): unknown })('a').eq(1), { default: true })), [39, [TABLE, [69, [[2, [Number]], [17, [[170, [[13], 'a']], 1]]]]], { default: true }]);
  t.match(json(tbl.map((x: (k: string) => { add(n: number): unknown }) => x('a').add(1))), [38, [TABLE, [69, [[2, [Number]], [24, [[170, [[10, [Number]], 'a']], 1]]]]]]);
  const args = (R.args as (a: unknown) => unknown)([0]);
  t.same(json(tbl.getAll(args, 1, { index: 'x' })), [78, [TABLE, [154, [[2, [0]]]], 1], { index: 'x' }], 'r.args among other arguments');
  t.same(json(R.branch((R.args as (a: unknown) => unknown)([true, 1]), R.error('a'))), [65, [[154, [[2, [true, 1]]]], [12, ['a']]]]);
  t.same(json(R.random({ float: false })), [151, [], { float: false }], 'options only: an empty argument list');
  t.throws(() => R.expr(), 'r.expr() has no wire form');
  t.same(json(R.expr({ a: new Date(0), b: Buffer.from([1]) })), {
    a: { $reql_type$: 'TIME', epoch_time: 0, timezone: '+00:00' },
    b: { $reql_type$: 'BINARY', data: 'AQ==' },
  });
});
