// The tunnel as a process, for tunnel-and-serve.sh: reads the settings from the environment,
// opens the tunnel, and exits non-zero when it cannot be kept up, so the dyno restarts.
//
// On SIGTERM or SIGINT it keeps forwarding until the server (which gets the same signal) has
// closed its database connections, at most SHUTDOWN_GRACE_MS, so a graceful shutdown can
// still reach the database. A second signal stops it at once.
import pino from 'pino';
import { loadTunnelConfig, TunnelConfigError } from './config.js';
import { startTunnel, type SshTunnel } from './tunnel.js';

const SHUTDOWN_GRACE_MS = 25_000; // Heroku and Dokku send SIGKILL 30 s after SIGTERM

const logger = pino({ name: 'tunnel' });

let tunnel: SshTunnel | undefined;
let stopping = false;

function stop(signal: NodeJS.Signals): void {
  if (stopping || tunnel === undefined) {
    logger.info({ signal }, 'stopping the tunnel now');
    void (tunnel?.close() ?? Promise.resolve()).then(() => process.exit(0));
    return;
  }
  stopping = true;
  const open = tunnel;
  const finish = () => void open.close().then(() => process.exit(0));
  if (open.activeConnections === 0) return finish();
  logger.info({ signal, connections: open.activeConnections }, 'stopping once the server has closed its database connections');
  open.once('idle', finish);
  setTimeout(finish, SHUTDOWN_GRACE_MS).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

try {
  const config = loadTunnelConfig(process.env);
  tunnel = await startTunnel(config, logger);
  tunnel.on('failed', () => process.exit(1));
} catch (err) {
  if (err instanceof TunnelConfigError) {
    logger.fatal({ problems: err.problems }, err.message);
    process.exit(2);
  }
  logger.fatal({ err: err instanceof Error ? err.message : String(err) }, 'could not open the SSH tunnel');
  process.exit(1);
}
