// The app's logger: JSON lines (pino). What must never be in them is kept out here, once,
// rather than at every call: an error is logged as its first line only (a rethinkdb-ts error
// carries the whole query after it, and a failed insert's query holds the message's text, a
// password change's the new hash), and fields named like secrets or message text are redacted.
import { pino, type DestinationStream, type LevelWithSilent, type Logger } from 'pino';

/** An error (or its text) as one line: its name and message, without what follows. */
export function errorLine(err: unknown): unknown {
  const text = err instanceof Error ? `${err.name}: ${err.message}` : err;
  if (typeof text !== 'string') return text;
  const cut = text.indexOf('\n');
  return cut < 0 ? text : text.slice(0, cut);
}

const SECRET_KEYS = ['password', 'token', 'cookie', 'authorization', 'body'];

export function createLogger(level: LevelWithSilent, destination?: DestinationStream): Logger {
  const options = {
    level,
    serializers: { err: errorLine },
    redact: { paths: SECRET_KEYS.flatMap((k) => [k, `*.${k}`]), censor: '[redacted]' },
  };
  return destination ? pino(options, destination) : pino(options);
}
