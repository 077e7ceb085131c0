// `npm run chaos`: clients send uniquely numbered messages while an app process and then the
// database are killed with SIGKILL and started again; reports sent, received, lost and
// duplicated, and exits non-zero unless every client holds every message of its room once,
// in the database's order.
//   npm run chaos -- [--duration 30] [--rooms 4] [--clients-per-room 6] [--rate 10]
import { parseArgs } from 'node:util';
import { runChaos } from './lib/chaos.js';
import { exitOnSignals } from './lib/procs.js';

exitOnSignals();

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '30' },
    rooms: { type: 'string', default: '4' },
    'clients-per-room': { type: 'string', default: '6' },
    rate: { type: 'string', default: '10' },
  },
});
const positive = (name: string, v: string) => {
  const n = Number(v);
  if (!(n > 0)) throw new Error(`--${name} must be a positive number, got ${v}`);
  return n;
};

const report = await runChaos({
  durationMs: Math.min(600, positive('duration', values.duration)) * 1000,
  rooms: positive('rooms', values.rooms),
  clientsPerRoom: Math.max(2, positive('clients-per-room', values['clients-per-room'])),
  ratePerRoom: Math.min(100, positive('rate', values.rate)),
  log: (m) => process.stderr.write(`chaos: ${m}\n`),
});
console.log(JSON.stringify(report, null, 2));
const ok = report.lost === 0 && report.duplicated === 0 && report.outOfOrder === 0 && report.unknown === 0 && report.arrivedOutOfOrderNotTied === 0 && report.acknowledged === report.sent;
console.log(`chaos: sent ${report.sent}, received ${report.received} of ${report.expected} deliveries, lost ${report.lost}, duplicated ${report.duplicated}, out of order ${report.outOfOrder} clients: ${ok ? 'PASS' : 'FAIL'}`);
process.exit(ok ? 0 : 1);
