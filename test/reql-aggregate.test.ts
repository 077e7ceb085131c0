// Aggregation, grouped data and array terms of the embedded ReQL server, through rethinkdb-ts.
import t from 'tap';
import { r, type Connection, type RDatum, type RStream } from 'rethinkdb-ts';
import { startReqlServer, type ReqlServer } from '../src/reql/index.js';

let server: ReqlServer;
let conn: Connection;

t.before(async () => {
  server = await startReqlServer({ port: 0, inMemory: true });
  conn = await r.connect({ host: server.host, port: server.port });
  await r.tableCreate('agg').run(conn);
  await r.table('agg').insert(Array.from({ length: 20 }, (_, i) => ({ id: i, a: i % 4, ...(i % 2 === 0 ? { b: i } : {}) }))).run(conn);
  await r.table('agg').indexCreate('a').run(conn);
  await r.table('agg').indexWait().run(conn);
});
t.teardown(async () => {
  await conn.close();
  await server.close();
});

const agg = () => r.table('agg');

/** The error a query fails with, as `name: message`. */
async function failure(q: { run(c: Connection): Promise<unknown> }): Promise<string> {
  return q.run(conn).then(
    (v) => `no error: ${JSON.stringify(v)}`,
    (err: unknown) => {
      const e = err as { name: string; msg?: string; message: string };
      return `${e.name}: ${e.msg ?? e.message}`;
    },
  );
}

t.test('grouped streams: transformations apply per group, and empty groups disappear', async (t) => {
  const grouped = (await agg().group('a').filter((row: RDatum) => row('id').lt(3)).count().run(conn)) as unknown;
  t.same(grouped, [
    { group: 0, reduction: 1 },
    { group: 1, reduction: 1 },
    { group: 2, reduction: 1 },
  ]);
  t.same(await agg().group('a').orderBy(r.desc('id')).limit(2).map((row: RDatum) => row('id')).ungroup().run(conn), [
    { group: 0, reduction: [16, 12] },
    { group: 1, reduction: [17, 13] },
    { group: 2, reduction: [18, 14] },
    { group: 3, reduction: [19, 15] },
  ]);
  // rows without the field are skipped by sum/avg/min/max; a group with none of them is left out
  t.same(await agg().group('a').sum('b').ungroup().run(conn), [
    { group: 0, reduction: 0 + 4 + 8 + 12 + 16 },
    { group: 2, reduction: 2 + 6 + 10 + 14 + 18 },
  ]);
  t.same(await agg().group('a').count((row: RDatum) => row('id').gt(17)).ungroup().run(conn), [
    { group: 2, reduction: 1 },
    { group: 3, reduction: 1 },
  ]);
  t.equal(await agg().group('a').typeOf().run(conn), 'GROUPED_STREAM');
  t.equal(await agg().group('a').count().typeOf().run(conn), 'GROUPED_DATA');
  t.same(await agg().group('a').count().add(1).ungroup().map((g: RDatum) => g('reduction')).run(conn), [6, 6, 6, 6]);
});

t.test('group: several keys, multi, missing fields, index', async (t) => {
  t.same(await r.expr([{ x: 1, t: ['p', 'q'] }, { x: 2, t: ['q'] }, { y: 3 }]).group('x').count().ungroup().run(conn), [
    { group: null, reduction: 1 },
    { group: 1, reduction: 1 },
    { group: 2, reduction: 1 },
  ]);
  t.same(await r.expr([{ x: 1, t: ['p', 'q', 'q'] }, { x: 2, t: ['q'] }]).group('t', { multi: true } as never).count().ungroup().run(conn), [
    { group: 'p', reduction: 1 },
    { group: 'q', reduction: 2 },
  ]);
  t.same(await agg().group({ index: 'a' } as never).count().ungroup().run(conn), [0, 1, 2, 3].map((g) => ({ group: g, reduction: 5 })));
  t.equal(await failure(agg().group()), 'ReqlLogicError: Cannot group by nothing.');
  t.equal(await failure(r.expr([1]).ungroup()), 'ReqlLogicError: Expected type GROUPED_DATA but found ARRAY.');
});

t.test('sum, avg, min, max, reduce, fold, distinct', async (t) => {
  t.equal(await agg().sum('b').run(conn), 90);
  t.equal(await agg().avg('b').run(conn), 9);
  t.same(await agg().min('b').run(conn), { id: 0, a: 0, b: 0 });
  t.same(await agg().max((row: RDatum) => row('a')).run(conn), { id: 3, a: 3 });
  t.same(await agg().max({ index: 'a' } as never).run(conn), { id: 19, a: 3 });
  t.equal(await r.expr([]).sum().run(conn), 0);
  const empty = '(If you passed `%s` a field name, it may be that no elements of the stream had that field.)';
  t.equal(await failure(r.expr([]).avg()), `ReqlNonExistanceError: Cannot take the average of an empty stream.  ${empty.replace('%s', 'avg')}`);
  t.equal(await failure(agg().min('zzz')), `ReqlNonExistanceError: Cannot take the min of an empty stream.  ${empty.replace('%s', 'min')}`);
  t.equal(await failure(r.expr([]).reduce((a: RDatum, b: RDatum) => a.add(b))), 'ReqlNonExistanceError: Cannot reduce over an empty stream.');
  t.equal(await failure(r.expr(['a']).sum()), 'ReqlLogicError: Expected type NUMBER but found STRING.');
  t.same(await r.expr([3, 1, 2, 1, 3]).distinct().run(conn), [1, 2, 3]);
  t.same(await agg().distinct({ index: 'a' } as never).run(conn), [0, 1, 2, 3]);
  t.same(
    await r.expr([1, 2, 3, 4]).fold(0, (acc: RDatum, x: RDatum) => acc.add(x), { emit: (_o: RDatum, _x: RDatum, acc: RDatum) => [acc] } as never).run(conn),
    [1, 3, 6, 10],
  );
  t.equal(await r.expr([1, 2, 3]).fold(10, (acc: RDatum, x: RDatum) => acc.add(x)).run(conn), 16);
});

t.test('array terms', async (t) => {
  t.same(await r.expr([1, 2, 2, 3]).setInsert(4).run(conn), [1, 2, 3, 4]);
  t.same(await r.expr([1, 2, 2, 3]).setUnion([3, 5]).run(conn), [1, 2, 3, 5]);
  t.same(await r.expr([1, 2, 2, 3]).setIntersection([2, 3, 9]).run(conn), [2, 3]);
  t.same(await r.expr([1, 2, 2, 3]).setDifference([2]).run(conn), [1, 3]);
  t.same(await r.expr([1, 2, 2, 3]).difference([2]).run(conn), [1, 3]);
  t.same(await r.expr([1, 2, 3]).insertAt(-1, 4).run(conn), [1, 2, 3, 4]);
  t.same(await r.expr([1, 2, 3, 4, 5]).deleteAt(-3, -1).run(conn), [1, 2, 5]);
  t.same(await r.expr([1, 2, 3]).changeAt(-1, 9).run(conn), [1, 2, 9]);
  t.equal(await failure(r.expr([1, 2, 3]).changeAt(3, 9)), 'ReqlNonExistanceError: Index `3` out of bounds for array of size: `3`.');
  t.same(await r.expr(['a', 'b', 'a']).offsetsOf('a').run(conn), [0, 2]);
  t.equal(((await r.expr([1, 2, 3, 4]).sample(2).run(conn)) as number[]).length, 2);
  t.equal(await failure(r.expr([1]).sample(-1)), 'ReqlLogicError: Number of items to sample must be non-negative, got `-1`.');
  t.match(await failure({ run: (c: Connection) => r.expr([1, 2]).append(3).append(4).run(c, { arrayLimit: 3 }) }), /^ReqlResourceError: Array over size limit `3`\./);
});

t.test('joins', async (t) => {
  const joined = await r.expr([{ k: 1 }, { k: 3 }, { k: 99 }]).eqJoin('k', agg(), { index: 'a' } as never).zip().count().run(conn);
  t.equal(joined, 10);
  // (rethinkdb-ts types zip() on streams only)
  const outer = r.expr([{ k: 1 }, { k: 2 }]).outerJoin([{ v: 2 }], (l: RDatum, rr: RDatum) => l('k').eq(rr('v'))) as unknown as RStream;
  t.same(await outer.zip().run(conn), [{ k: 1 }, { k: 2, v: 2 }]);
  t.equal(await failure((r.expr([1]) as unknown as RStream).zip()), 'ReqlLogicError: ZIP can only be called on the result of a join.');
});
