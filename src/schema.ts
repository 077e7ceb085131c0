// `npm run schema`: ensures the database schema once and exits. It is the release phase of a
// deploy (the Procfile's release: line), so dynos start with the schema already in place. It
// also makes the rooms of messages stored before accounts public channels, unless
// ANONYMOUS_ROOMS=1 keeps them open rooms (src/rooms/legacy.ts).
import { pino } from 'pino';
import { connectAny, openPool } from './db/pool.js';
import { ensureSchema } from './db/schema.js';
import { migrateLegacyRooms } from './rooms/legacy.js';
import { createRoomStore } from './rooms/store.js';
import { openDatabase, readConfigOrExit } from './server.js';

const config = readConfigOrExit(process.env);
const log = pino({ level: config.logLevel });
const db = await openDatabase(config, log);
try {
  const conn = await connectAny(db.database, log);
  try {
    const result = await ensureSchema(conn, config.dbName, { log, staleMs: config.schemaLockStaleMs, layout: config.dbLayout });
    log.info({ db: config.dbName, result }, result === 'present' ? 'schema already in place' : 'schema ensured');
  } finally {
    await conn.close();
  }
  const pool = openPool(db.database, { log });
  try {
    await pool.waitHealthy(30_000);
    const legacy = await migrateLegacyRooms({ pool, db: config.dbName, rooms: createRoomStore(pool, config.dbName), anonymousRooms: config.anonymousRooms, log });
    log.info({ db: config.dbName, ...legacy }, config.anonymousRooms ? 'old rooms stay open rooms (ANONYMOUS_ROOMS=1)' : 'old open rooms checked');
  } finally {
    await pool.close();
  }
} catch (e) {
  log.fatal({ err: String(e) }, 'could not ensure the schema');
  process.exitCode = 1;
} finally {
  await db.close();
}
