// The short form of `npm run chaos`: two app processes and a database in their own processes;
// while clients send uniquely numbered messages, one app process is killed with SIGKILL (its
// clients move to the other and resume), started again, and the database is killed with
// SIGKILL and restarted on its data directory. Nothing may be lost, duplicated or held out of
// order. On the embedded server it runs unkind: writes commit up to 300 ms after their
// timestamp and clocks differ by up to ±250 ms per connection, so messages reach the feeds
// out of timestamp order, as on a RethinkDB cluster. With RETHINKDB_URL set (the suite on a
// real RethinkDB) it starts a real node of its own from RETHINKDB_BIN, so the kill is real.
import t from 'tap';
import { runChaos } from '../bench/lib/chaos.js';
import { checkNothingLost } from './fixtures/chaos.js';
import { chooseDb } from '../bench/lib/procs.js';

const real = Boolean(process.env.RETHINKDB_URL);
const bin = process.env.RETHINKDB_BIN;

t.test('kill -9 of an app process and of the database lose and duplicate nothing', async (t) => {
  const report = await runChaos({
    durationMs: 7000,
    rooms: 2,
    clientsPerRoom: 4,
    ratePerRoom: 10,
    fromSource: true,
    db: real ? (dataDir) => chooseDb({ rethinkdb: Boolean(bin) }, dataDir) : undefined,
    log: (m) => t.comment(m),
  });
  t.comment(JSON.stringify({ ...report, faults: undefined }));
  t.ok(report.faults.length >= 2, 'the faults happened while messages were being sent');
  if (real && !bin) t.comment('RETHINKDB_BIN is not set: the database was not killed');
  else t.ok(report.faults.some((f) => /kill -9 the database/.test(f.fault)), `the database (${report.database}) was killed`);
  checkNothingLost(t, report);
  if (!real) t.ok(report.lateArrivals > 0, `writes did commit out of timestamp order (${report.lateArrivals} late arrivals, put in place)`);
  t.ok(report.reconnects >= 4, `the killed process's clients reconnected (${report.reconnects} reconnects)`);
});
