// String, conversion and arithmetic terms of the embedded ReQL server (match's RE2 syntax on
// JS RegExp, split, coerceTo, info, bitwise operations, random), run through rethinkdb-ts.
import t from 'tap';
import { r, type Connection, type RValue } from 'rethinkdb-ts';
import { startReqlServer, type ReqlServer } from '../src/reql/index.js';

let server: ReqlServer;
let conn: Connection;

t.before(async () => {
  server = await startReqlServer({ port: 0, inMemory: true });
  conn = await r.connect({ host: server.host, port: server.port });
});
t.teardown(async () => {
  await conn.close();
  await server.close();
});

const run = (q: RValue): Promise<unknown> => q.run(conn, { timeFormat: 'raw', binaryFormat: 'raw' });
/** The error message of a failing query, without its final period (rethinkdb-ts drops it). */
async function failure(q: RValue): Promise<string> {
  try {
    await run(q);
  } catch (e) {
    // rethinkdb-ts appends the query after " in:"
    return (e as Error).message.replace(/ in:\n[\s\S]*$/, '').replace(/\.$/, '');
  }
  throw new Error('expected the query to fail');
}
// Loosely typed handles for calls whose rethinkdb-ts typings are narrower than ReQL.
const rr = r as unknown as { and(...a: unknown[]): RValue; or(...a: unknown[]): RValue };
const expr = (v: unknown) => r.expr(v) as unknown as { coerceTo(t: string): RValue; split(...a: unknown[]): RValue; mul(...a: unknown[]): RValue };

t.test('match: RE2 syntax translated to JS', async (t) => {
  const m = (s: string, re: string) => run(r.expr(s).match(re));
  t.same(await m('abcdefg', 'a(b.e)|b(c.e)'), { str: 'bcde', start: 1, end: 5, groups: [null, { str: 'cde', start: 2, end: 5 }] });
  t.same(await m('hello world', '(?P<w>w\\w+)'), { str: 'world', start: 6, end: 11, groups: [{ str: 'world', start: 6, end: 11 }] });
  t.equal(await m('ABC', 'a(?i)bc'), null, '(?i) applies only after it');
  t.same(await m('aBC', 'a(?i:bc)'), { str: 'aBC', start: 0, end: 3, groups: [] });
  t.same(await m('XYZ', '(?i)[x-z]+'), { str: 'XYZ', start: 0, end: 3, groups: [] });
  t.equal(await m('a\nb', 'a.b'), null, '. excludes newline');
  t.same(await m('a\nb', '(?s)a.b'), { str: 'a\nb', start: 0, end: 3, groups: [] });
  t.equal(await m('x\nab', '^ab$'), null, '^ and $ anchor at the text by default');
  t.same(await m('x\nab', '(?m)^ab$'), { str: 'ab', start: 2, end: 4, groups: [] });
  t.same(await m('héllo', 'l+'), { str: 'll', start: 3, end: 5, groups: [] }, 'offsets are UTF-8 bytes');
  t.same(await m('abc123', '[[:digit:]]+'), { str: '123', start: 3, end: 6, groups: [] });
  t.same(await m('a.b*c', '\\Q.b*\\E'), { str: '.b*', start: 1, end: 4, groups: [] });
  t.same(await m('a{', 'a{'), { str: 'a{', start: 0, end: 2, groups: [] });
  t.same(await m('a-b', 'a\\-b'), { str: 'a-b', start: 0, end: 3, groups: [] });
  t.same(await m('aaa', '(?U)a+'), { str: 'a', start: 0, end: 1, groups: [] });
  t.same(await m('abcα', '\\p{Greek}'), { str: 'α', start: 3, end: 5, groups: [] });
  t.same(await m('foo bar', '\\bbar'), { str: 'bar', start: 4, end: 7, groups: [] });
});

t.test('match: RE2 errors', async (t) => {
  const e = (re: string) => failure(r.expr('').match(re));
  t.equal(await e('ab\\9'), 'Error in regexp `ab\\9` (portion `\\9`): invalid escape sequence: \\9');
  t.equal(await e('[a'), 'Error in regexp `[a` (portion `[a`): missing ]: [a');
  t.equal(await e('(a'), 'Error in regexp `(a` (portion `(a`): missing ): (a');
  t.equal(await e('a**'), 'Error in regexp `a**` (portion `**`): bad repetition operator: **');
  t.equal(await e('*a'), 'Error in regexp `*a` (portion `*`): no argument for repetition operator: *');
  t.equal(await e('a(?=b)'), 'Error in regexp `a(?=b)` (portion `(?=`): invalid perl operator: (?=');
  t.equal(await e('[z-a]'), 'Error in regexp `[z-a]` (portion `z-a`): invalid character class range: z-a');
  t.equal(await e('a{1001}'), 'Error in regexp `a{1001}` (portion `{1001}`): invalid repetition size: {1001}');
});

t.test('split, upcase, downcase', async (t) => {
  t.same(await run(expr('  a  b  ').split(null, 1)), ['a', 'b  ']);
  t.same(await run(r.expr('a,b,,c').split(',', 2)), ['a', 'b', ',c']);
  t.same(await run(r.expr('fe\u0301o').split('')), ['f', 'e\u0301', 'o']);
  t.same(await run(r.expr('a\u0085b\u200bc').split()), ['a', 'b\u200bc']);
  t.equal(await run(r.expr('héllo').upcase()), 'HéLLO', 'ASCII letters only');
  t.equal(await run(r.expr('ÀBC').downcase()), 'Àbc');
});

t.test('coerceTo', async (t) => {
  t.equal(await run(r.expr(1).coerceTo('string')), '1');
  t.equal(await run(r.expr(0.1).coerceTo('string')), '0.1');
  t.equal(await run(r.expr({ b: 1, a: [1, 'x'] }).coerceTo('string')), '{"a":[1,"x"],"b":1}');
  t.equal(await run(r.expr('0xa').coerceTo('number')), 10);
  t.equal(await failure(r.expr('--1.2').coerceTo('number')), 'Could not coerce `--1.2` to NUMBER');
  t.equal(await failure(r.expr('inf').coerceTo('number')), 'Non-finite number: inf');
  t.same(await run(r.expr({ a: 1 }).coerceTo('array')), [['a', 1]]);
  t.same(await run(r.expr([['a', 1], ['b', 2]]).coerceTo('object')), { a: 1, b: 2 });
  t.equal(await failure(r.expr([[]]).coerceTo('object')), 'Expected array of size 2, but got size 0');
  t.same(await run(r.expr('foo').coerceTo('binary')), { $reql_type$: 'BINARY', data: 'Zm9v' });
  t.equal(await run(r.binary(Buffer.from('foo')).coerceTo('string')), 'foo');
  t.equal(await failure(r.binary(Buffer.from('foo')).coerceTo('number')), 'Cannot coerce BINARY to NUMBER');
  t.equal(await run(expr(null).coerceTo('bool')), false);
  t.equal(await run(expr(0).coerceTo('bool')), true);
  t.equal(await failure(r.minval.coerceTo('string')), 'Cannot convert `r.minval` to JSON');
  t.same(await run(r.range(3).coerceTo('array')), [0, 1, 2]);
});

t.test('info', async (t) => {
  t.same(await run(r.expr([1]).info()), { type: 'ARRAY', value: '[\n\t1\n]' });
  t.same(await run(r.expr({ b: 1, a: 2 }).info()), { type: 'OBJECT', value: '{\n\t"a":\t2,\n\t"b":\t1\n}' });
  t.same(await run(r.expr(null).info()), { type: 'NULL' });
  t.same(await run(r.maxval.info()), { type: 'MAXVAL' });
});

t.test('arithmetic, bitwise operations and random', async (t) => {
  t.same(await run(r.expr([1, 2]).mul(2)), [1, 2, 1, 2]);
  t.same(await run(expr(2).mul([1], 2)), [1, 1, 1, 1]);
  t.equal(await failure(r.expr([]).mul(1.5)), 'Number not an integer: 1.5');
  t.equal(await failure(r.expr(1).div(0)), 'Cannot divide by zero');
  t.equal(await failure(r.expr(5.5).mod(2)), 'Number not an integer: 5.5');
  t.equal(await run(r.expr(-10).mod(-3)), -1);
  t.equal(await run(r.expr(9007199254740991).bitNot()), -9007199254740992);
  t.equal(await run(r.expr(-1).bitSal(54)), -18014398509481984);
  t.equal(await run(r.expr(-9007199254740992).bitSar(53)), -1);
  t.equal(await failure(r.expr(9007199254740992).bitAnd(0)), 'Integer too large: 9007199254740992');
  t.equal(await failure(r.expr(5).bitSal(-1)), 'Cannot bit-shift by a negative value');
  for (let i = 0; i < 20; i++) {
    const n = (await run(r.random(-3, 3))) as number;
    t.ok(Number.isInteger(n) && n >= -3 && n < 3, `random(-3, 3) = ${n}`);
    const f = (await run(r.random(1, 0, { float: true }))) as number;
    t.ok(f > 0 && f <= 1, `random(1, 0, float) = ${f}`);
  }
  t.equal(await failure(r.random(0.5)), 'Upper bound (0.5) could not be safely converted to an integer');
  t.equal(await failure(r.random(2, 1)), 'Lower bound (2) is not less than upper bound (1)');
});

t.test('logic and default', async (t) => {
  t.equal(await run(r.expr(1).not()), false);
  t.equal(await run(r.expr(null).not()), true);
  t.equal(await run(rr.and(r.args([]))), true);
  t.equal(await run(rr.or(r.args([]))), false);
  t.equal(await run(rr.and(r.args([true, 1]))), 1);
  t.equal(await run(r.expr(null).default(r.error())), null);
  t.equal(await failure(r.expr({}).getField('b').default(r.error())), 'No attribute `b` in object:\n{}');
});
