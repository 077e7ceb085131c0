// `npm run schema`: ensures the database schema once and exits. It is the release phase of a
// deploy (the Procfile's release: line), so dynos start with the schema already in place.
import { pino } from 'pino';
import { connectAny } from './db/pool.js';
import { ensureSchema } from './db/schema.js';
import { openDatabase, readConfigOrExit } from './server.js';

const config = readConfigOrExit(process.env);
const log = pino({ level: config.logLevel });
const db = await openDatabase(config, log);
try {
  const conn = await connectAny(db.database, log);
  try {
    const result = await ensureSchema(conn, config.dbName, { log, staleMs: config.schemaLockStaleMs });
    log.info({ db: config.dbName, result }, result === 'present' ? 'schema already in place' : 'schema ensured');
  } finally {
    await conn.close();
  }
} catch (e) {
  log.fatal({ err: String(e) }, 'could not ensure the schema');
  process.exitCode = 1;
} finally {
  await db.close();
}
