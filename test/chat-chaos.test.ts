// The short form of `npm run chaos`: two app processes and the standalone embedded database
// in their own processes; while clients send uniquely numbered messages, one app process is
// killed with SIGKILL (its clients move to the other and resume), started again, and the
// database is killed with SIGKILL and restarted on its data directory. Nothing may be lost,
// duplicated or held out of order.
import t from 'tap';
import { runChaos } from '../bench/lib/chaos.js';

t.test('kill -9 of an app process and of the database lose and duplicate nothing', async (t) => {
  const report = await runChaos({ durationMs: 7000, rooms: 2, clientsPerRoom: 4, ratePerRoom: 10, fromSource: true, log: (m) => t.comment(m) });
  t.comment(JSON.stringify({ ...report, faults: undefined }));
  t.ok(report.faults.length >= 2, 'the faults happened while messages were being sent');
  t.ok(report.sent >= 100, `${report.sent} messages were sent`);
  t.equal(report.acknowledged, report.sent, 'every message was acknowledged in the end');
  t.equal(report.lost, 0, 'no client misses a message of its room');
  t.equal(report.duplicated, 0, 'no client got a message twice');
  t.equal(report.received, report.expected, 'every delivery arrived');
  t.equal(report.outOfOrder, 0, "every client holds its room in the database's order");
  t.equal(report.arrivedOutOfOrderNotTied, 0, 'nothing arrived before a message with an earlier timestamp');
  t.equal(report.unknown, 0, 'the database holds nothing that was not sent');
  t.ok(report.reconnects >= 4, `the killed process's clients reconnected (${report.reconnects} reconnects)`);
});
