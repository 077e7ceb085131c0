// A platform's rolling restart (issue 14, point 6): while clients send, each of two app
// processes is stopped with SIGTERM (its sockets are told to reconnect, and go to the other
// process) and started again on its port, one after the other. Every client must end with
// every message of its room exactly once, in the database's order, and every send
// acknowledged. On the embedded server it runs unkind (writes commit late and out of
// timestamp order); with RETHINKDB_URL, on a real node of its own from RETHINKDB_BIN.
import t from 'tap';
import { runChaos } from '../bench/lib/chaos.js';
import { checkNothingLost } from './fixtures/chaos.js';
import { chooseDb } from '../bench/lib/procs.js';

const real = Boolean(process.env.RETHINKDB_URL);

t.test('a rolling restart of both processes loses, doubles and reorders nothing', async (t) => {
  const report = await runChaos({
    durationMs: 8000,
    rooms: 2,
    clientsPerRoom: 4,
    ratePerRoom: 10,
    fromSource: true,
    plan: 'rolling',
    db: real ? (dataDir) => chooseDb({ rethinkdb: Boolean(process.env.RETHINKDB_BIN) }, dataDir) : undefined,
    log: (m) => t.comment(m),
  });
  t.comment(JSON.stringify({ ...report, faults: undefined }));
  t.same(report.faults.map((f) => f.fault.replace(/ web\.\d/, ' web.N')), ['SIGTERM app process web.N', 'start web.N again on its port', 'SIGTERM app process web.N', 'start web.N again on its port'], 'both processes were restarted in turn');
  checkNothingLost(t, report);
  t.ok(report.reconnects >= 8, `every client reconnected at least once (${report.reconnects} reconnects)`);
});
