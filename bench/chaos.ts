// `npm run chaos`: clients send uniquely numbered messages while an app process and then the
// database are killed with SIGKILL and started again; reports sent, received, lost and
// duplicated, and exits non-zero unless every client holds every message of its room once,
// in the database's order.
//   npm run chaos -- [--duration 30] [--rooms 4] [--clients-per-room 6] [--rate 10]
//                    [--rethinkdb | --cluster 3] [--commit-delay 300] [--clock-skew 250] [--rolling]
// --rolling: a platform's rolling restart instead of the kills: each app process is stopped
// with SIGTERM and started again on its port, one after the other.
// The database: the standalone embedded server, unkind (writes commit up to --commit-delay ms
// after their timestamp, clocks skewed ±--clock-skew ms per connection); --rethinkdb, one real
// RethinkDB node from RETHINKDB_BIN; --cluster N, N real nodes with N replicas, where the
// node holding the messages table's primary is the one killed; RETHINKDB_URL, a server this
// run did not start (so it is not killed).
import { parseArgs } from 'node:util';
import { chaosPassed, DEFAULT_UNKIND, runChaos } from './lib/chaos.js';
import { chooseDb, exitOnSignals } from './lib/procs.js';

exitOnSignals();

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '30' },
    rooms: { type: 'string', default: '4' },
    'clients-per-room': { type: 'string', default: '6' },
    rate: { type: 'string', default: '10' },
    rethinkdb: { type: 'boolean', default: false },
    cluster: { type: 'string' },
    /** a rolling restart instead of the kills: each app process stopped with SIGTERM and started again */
    rolling: { type: 'boolean', default: false },
    'commit-delay': { type: 'string', default: String(DEFAULT_UNKIND.commitDelayMs) },
    'clock-skew': { type: 'string', default: String(DEFAULT_UNKIND.clockSkewMs) },
  },
});
const positive = (name: string, v: string, min = Number.MIN_VALUE) => {
  const n = Number(v);
  if (!(n >= min)) throw new Error(`--${name} must be a number of at least ${min}, got ${v}`);
  return n;
};
const unkind = { commitDelayMs: positive('commit-delay', values['commit-delay'], 0), clockSkewMs: positive('clock-skew', values['clock-skew'], 0) };

const report = await runChaos({
  durationMs: Math.min(600, positive('duration', values.duration)) * 1000,
  rooms: positive('rooms', values.rooms),
  clientsPerRoom: Math.max(2, positive('clients-per-room', values['clients-per-room'])),
  ratePerRoom: Math.min(100, positive('rate', values.rate)),
  db: (dataDir) => chooseDb(values, dataDir, unkind),
  plan: values.rolling ? 'rolling' : 'kill',
  log: (m) => process.stderr.write(`chaos: ${m}\n`),
});
console.log(JSON.stringify(report, null, 2));
const ok = chaosPassed(report);
console.log(
  `chaos (${report.database}): sent ${report.sent}, acknowledged ${report.acknowledged}, received ${report.received} of ${report.expected} deliveries, ` +
    `lost ${report.lost}, duplicated ${report.duplicated}, out of order ${report.outOfOrder} clients, ` +
    `${report.lateArrivals} late arrivals put in place, longest send ${report.longestSendMs} ms: ${ok ? 'PASS' : 'FAIL'}`,
);
process.exit(ok ? 0 : 1);
