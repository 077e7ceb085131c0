// The database the app uses, for an operator's command (`npm run admin`, backup, restore):
// RETHINKDB_URL's, or the embedded one in DATA_DIR. While the app runs, its embedded server
// holds the data directory and says its port in a file; otherwise the command opens the data
// directory itself, until close().
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config, DbAddress } from '../config.js';
import { startReqlServer } from '../reql/index.js';

export interface AppDatabase {
  address: DbAddress;
  db: string;
  close(): Promise<void>;
}

export async function appDatabase(config: Config): Promise<AppDatabase> {
  if (config.database) return { address: config.database, db: config.dbName, close: async () => undefined };
  // server.js loads the whole app: only on this path, so a command on RETHINKDB_URL starts quickly.
  const { embeddedPortFile } = await import('../server.js');
  const portFile = embeddedPortFile(config.dataDir);
  if (existsSync(portFile)) {
    const [host, port] = readFileSync(portFile, 'utf8').trim().split(':');
    return { address: { servers: [{ host, port: Number(port) }], user: 'admin', password: '' }, db: config.dbName, close: async () => undefined };
  }
  const reql = await startReqlServer({ port: 0, dataDir: join(config.dataDir, 'reql') });
  return { address: { servers: [{ host: reql.host, port: reql.port }], user: 'admin', password: '' }, db: config.dbName, close: () => reql.close() };
}
