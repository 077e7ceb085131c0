// Index functions of the common shapes are compiled to plain JS (src/reql/engine/index.ts):
// each index here must hold exactly the rows and values the interpreter computes for the
// same function, over rows with missing, null, mistyped and nested fields.
import t from 'tap';
import { r, type Connection, type RDatum } from 'rethinkdb-ts';
import { startReqlServer, type ReqlServer } from '../src/reql/index.js';

const server: ReqlServer = await startReqlServer({ port: 0, inMemory: true });
const conn: Connection = await r.connect({ host: server.host, port: server.port });
t.teardown(async () => {
  await conn.close();
  await server.close();
});

const rows = [
  { id: 'a', room: 'r1', sent: 1, mentions: ['u1', 'u2'] },
  { id: 'b', room: 'r1', sent: 2, thread: 'a' },
  { id: 'c', room: 'r2', sent: 3, thread: 'a', alsoRoom: true, mentions: [] },
  { id: 'd', room: 'r2', sent: 4, thread: null, alsoRoom: null, mentions: 'u1' },
  { id: 'e', room: 7, sent: 5, updated: 9, n: 2 },
  { id: 'f', sent: 6, mentions: [{ x: 1 }, { x: 2 }], mentionsRoom: true },
  { id: 'g', room: 'r3', sent: r.epochTime(100), n: 'x', nested: { a: { b: 3 } } },
  { id: 'h', room: ['r', 1], sent: 8, mentions: [null, 'u3'], n: null },
];

type Fn = (m: RDatum) => unknown;
const threadOnly = (m: RDatum) => m.hasFields('thread').and(m('alsoRoom').default(false).not());
const indexes: Array<[string, Fn, boolean]> = [
  ['field', (m) => m('room'), false],
  ['compound', (m) => [m('room'), m('sent'), m('id')], false],
  ['missing', (m) => [m('room'), m('updated'), m('id')], false],
  ['branch', (m) => [r.branch(threadOnly(m), m('room').add('#thread'), m('room')), m('sent'), m('id')], false],
  ['multi', (m) => m('mentions').map((u: RDatum) => [u, m('room'), m('id')]), true],
  ['orNot', (m) => r.or(m('mentionsRoom'), m('n').not(), m('n')), false],
  ['addNum', (m) => m('n').add(1), false],
  ['addTime', (m) => m('sent').add(10), false],
  ['nested', (m) => m('nested')('a')('b'), false],
  ['pluckArr', (m) => m('mentions')('x'), false],
  ['defaultNull', (m) => m('thread').default('none'), false],
];

await r.tableCreate('m').run(conn);
await r.table('m').insert(rows).run(conn);
for (const [name, fn, multi] of indexes) await r.table('m').indexCreate(name, fn, { multi }).run(conn);
await r.table('m').indexWait().run(conn);

for (const [name, fn, multi] of indexes) {
  t.test(`index ${name} agrees with the interpreter`, async (t) => {
    // What the interpreter makes of each row: the function's value, or nothing on an error.
    const expected: Array<[unknown, string]> = [];
    for (const row of rows) {
      const v: unknown = await r.expr(row).do((m: RDatum) => fn(m)).run(conn).catch(() => undefined);
      if (v === undefined || v === null) continue;
      const vals = multi && Array.isArray(v) ? [...new Map(v.filter((x) => x !== null).map((x) => [JSON.stringify(x), x])).values()] : [v];
      for (const x of vals) expected.push([x, row.id]);
    }
    const entries = (await r.table('m').between(r.minval, r.maxval, { index: name }).map((m: RDatum) => m('id')).run(conn)) as string[];
    t.same([...new Set(entries)].sort(), [...new Set(expected.map(([, id]) => id))].sort(), 'the same rows');
    for (const [v, id] of expected) {
      const hit = (await r.table('m').getAll(r.expr(v), { index: name }).map((m: RDatum) => m('id')).run(conn)) as string[];
      t.ok(hit.includes(id), `${id} is found under ${JSON.stringify(v)}`);
    }
  });
}
