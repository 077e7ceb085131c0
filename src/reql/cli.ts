// `npm run db`: the embedded ReQL server on its own, so several app processes on one machine
// can share it the way dynos share a cluster.
//   npm run db -- [--port 28015] [--host 127.0.0.1] [--data ./data/reql] [--password PW] [--in-memory]
import { parseArgs } from 'node:util';
import { startReqlServer } from './index.js';

function usage(msg: string): never {
  process.stderr.write(`${msg}\nusage: npm run db -- [--port N] [--host ADDR] [--data DIR] [--password PW] [--in-memory]\n`);
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
    },
  }));
} catch (e) {
  usage((e as Error).message);
}

const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) usage(`--port must be a port number, got ${values.port}`);

const server = await startReqlServer({
  port,
  host: values.host,
  dataDir: values['in-memory'] ? undefined : values.data,
  inMemory: values['in-memory'],
  password: values.password,
  onWarn: (m) => process.stderr.write(`reql: ${m}\n`),
});
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
