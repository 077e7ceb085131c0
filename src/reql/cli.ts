// `npm run db`: the embedded ReQL server on its own, so several app processes on one machine
// can share it the way dynos share a cluster.
//   npm run db -- [--port 28015] [--host 127.0.0.1] [--data ./data/reql] [--password PW] [--in-memory]
//                 [--unkind-commit-delay MS] [--unkind-clock-skew MS]   (tests: behave like a cluster)
//                 [--slow-disk MS]   (tests: each log write reaches the disk MS late)
import { parseArgs } from 'node:util';
import { startReqlServer } from './index.js';

function usage(msg: string): never {
  process.stderr.write(`${msg}\nusage: npm run db -- [--port N] [--host ADDR] [--data DIR] [--password PW] [--in-memory] [--unkind-commit-delay MS] [--unkind-clock-skew MS] [--slow-disk MS]\n`);
  process.exit(2);
}

let values;
try {
  ({ values } = parseArgs({
    options: {
      port: { type: 'string', default: process.env.REQL_PORT ?? '28015' },
      host: { type: 'string', default: '127.0.0.1' },
      data: { type: 'string', default: process.env.REQL_DATA_DIR ?? './data/reql' },
      password: { type: 'string', default: process.env.REQL_PASSWORD ?? '' },
      'in-memory': { type: 'boolean', default: false },
      'unkind-commit-delay': { type: 'string', default: '0' },
      'unkind-clock-skew': { type: 'string', default: '0' },
      'slow-disk': { type: 'string', default: '0' },
    },
  }));
} catch (e) {
  usage((e as Error).message);
}

const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) usage(`--port must be a port number, got ${values.port}`);

const ms = (flag: string, v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || n > 60_000) usage(`--${flag} must be a number of milliseconds from 0 to 60000, got ${v}`);
  return n;
};
const unkind = { commitDelayMs: ms('unkind-commit-delay', values['unkind-commit-delay']), clockSkewMs: ms('unkind-clock-skew', values['unkind-clock-skew']) };

const server = await startReqlServer({
  port,
  host: values.host,
  dataDir: values['in-memory'] ? undefined : values.data,
  inMemory: values['in-memory'],
  password: values.password,
  onWarn: (m) => process.stderr.write(`reql: ${m}\n`),
  unkind,
  slowDiskMs: ms('slow-disk', values['slow-disk']),
});
if (unkind.commitDelayMs > 0 || unkind.clockSkewMs > 0) {
  process.stderr.write(`reql: unkind mode: writes commit up to ${unkind.commitDelayMs} ms after r.now(), clocks skewed up to ±${unkind.clockSkewMs} ms per connection\n`);
}
if (!values['in-memory']) {
  const { snapshotRows, tailWrites, logBytes, ms: took } = server.loaded;
  process.stdout.write(`reql: loaded ${snapshotRows} rows from the snapshot and replayed ${tailWrites} row writes after it (log ${(logBytes / 2 ** 20).toFixed(1)} MiB) in ${took} ms\n`);
}
process.stdout.write(`reql: serving RethinkDB protocol on ${server.host}:${server.port}${values['in-memory'] ? ' (in memory)' : ` with data in ${values.data}`}\n`);

let stopping = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    server.close().then(
      () => process.exit(0),
      (e: unknown) => {
        process.stderr.write(`reql: error while closing: ${String(e)}\n`);
        process.exit(1);
      },
    );
  });
}
