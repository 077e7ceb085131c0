// The chaos run on a real three-node RethinkDB cluster (nodes started here from
// RETHINKDB_BIN, every table with three replicas): while clients send through two app
// processes, one app process is killed and restarted, and the node holding the messages
// table's primary is killed with SIGKILL and started again later. The other two nodes elect
// a new primary; sends wait and are resent with their ids; feeds reopen and backfill.
import t from 'tap';
import { chaosPassed, runChaos } from '../bench/lib/chaos.js';
import { chooseDb } from '../bench/lib/procs.js';

const bin = process.env.RETHINKDB_BIN;

t.test('a three-node cluster loses its primary mid-traffic: nothing lost or doubled', { skip: bin ? false : 'RETHINKDB_BIN is not set: no real RethinkDB to start a cluster from' }, async (t) => {
  const report = await runChaos({
    durationMs: 10_000,
    rooms: 2,
    clientsPerRoom: 4,
    ratePerRoom: 10,
    fromSource: true,
    db: (dataDir) => chooseDb({ cluster: '3' }, dataDir),
    log: (m) => t.comment(m),
  });
  t.comment(JSON.stringify({ ...report, faults: undefined }));
  t.match(report.database, /cluster of 3/);
  t.ok(report.faults.some((f) => /primary/.test(f.fault)), "the primary's node was killed");
  t.equal(report.acknowledged, report.sent, `every message was acknowledged in the end (${report.sent})`);
  t.equal(report.lost, 0, 'nothing lost');
  t.equal(report.duplicated, 0, 'nothing delivered twice');
  t.equal(report.outOfOrder, 0, "every client holds its room in the database's order");
  t.equal(report.unknown, 0);
  t.equal(report.received, report.expected);
  t.comment(`longest time from a send to its acknowledgement: ${report.longestSendMs} ms`);
  t.ok(chaosPassed(report));
});
