// Rate limits every process shares: rate-limiter-flexible's store limiter, kept in the
// database (one row per key, its id a hash of the key: points taken and when they expire), so that ten tries at a
// password are ten tries whichever dyno answers them. Each take is one atomic replace of the
// key's row. If the database cannot answer, a per-process memory limiter of the same rule
// answers instead (the library's insurance limiter), so log-in is never unlimited.
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { r, type RDatum } from 'rethinkdb-ts';
import { RateLimiterMemory, RateLimiterRes, type RateLimiterStoreAbstract } from 'rate-limiter-flexible';
import { z } from 'zod';
import type { Logger } from 'pino';
import type { Pool } from '../db/pool.js';
import { RATE_LIMITS } from '../db/schema.js';

const stored = z.object({ points: z.number(), expire: z.number().nullable() });
type Stored = z.output<typeof stored>;
const changed = z.object({ changes: z.array(z.object({ new_val: stored.nullable() })) });

export interface Rule {
  keyPrefix: string;
  points: number;
  /** seconds */
  duration: number;
}

// The library's base for store limiters is declared in its types but not exported by its
// index: it is loaded from its file.
const StoreAbstract = createRequire(import.meta.url)('rate-limiter-flexible/lib/RateLimiterStoreAbstract.js') as typeof RateLimiterStoreAbstract;

class RethinkdbLimiter extends StoreAbstract {
  constructor(
    rule: Rule,
    private readonly pool: Pool,
    private readonly db: string,
  ) {
    super({ ...rule, storeClient: pool, insuranceLimiter: new RateLimiterMemory(rule) });
  }

  private get table() {
    return r.db(this.db).table(RATE_LIMITS);
  }

  /** A row's id: the key hashed, so that no address or account name is kept in the table. */
  private static id(key: string): string {
    return createHash('sha256').update(key).digest('base64url');
  }

  // The library calls these four (see RateLimiterStoreAbstract).
  async _upsert(key: string, points: number, msDuration: number, forceExpire = false): Promise<Stored> {
    const now = Date.now();
    const expire = msDuration > 0 ? now + msDuration : null;
    const id = RethinkdbLimiter.id(key);
    const fresh = { id, points, expire };
    const res = changed.parse(
      await this.pool.run(
        this.table.get(id).replace(
          (row: RDatum) =>
            r.branch(
              r.expr(forceExpire).or(row.eq(null)).or(row('expire').ne(null).and(row('expire').le(now))),
              fresh,
              row.merge({ points: row('points').add(points) }),
            ),
          { returnChanges: 'always' },
        ),
      ),
    );
    const row = res.changes[0]?.new_val;
    if (!row) throw new Error('the rate limit was not stored');
    return row;
  }

  async _get(key: string): Promise<Stored | null> {
    const raw: unknown = await this.pool.run(this.table.get(RethinkdbLimiter.id(key)));
    if (raw === null) return null;
    const row = stored.parse(raw);
    return row.expire !== null && row.expire <= Date.now() ? null : row;
  }

  async _delete(key: string): Promise<boolean> {
    const res = z.object({ deleted: z.number() }).parse(await this.pool.run(this.table.get(RethinkdbLimiter.id(key)).delete()));
    return res.deleted > 0;
  }

  _getRateLimiterRes(_key: string, changedPoints: number, row: Stored): RateLimiterRes {
    const consumed = row.points;
    return new RateLimiterRes(Math.max(this.points - consumed, 0), row.expire === null ? -1 : Math.max(row.expire - Date.now(), 0), consumed, consumed === changedPoints);
  }
}

export type Limiter = RateLimiterStoreAbstract;

export interface Limits {
  limiter(rule: Rule): Limiter;
  /** Deletes the rows of expired limits (they would otherwise stay, one per key ever seen). */
  sweep(): Promise<number>;
  stop(): void;
}

export function createLimits(opts: { pool: Pool; db: string; log: Logger; sweepEveryMs?: number }): Limits {
  const { pool, db, log } = opts;
  const sweep = async () => {
    const res = z.object({ deleted: z.number() }).parse(await pool.run(r.db(db).table(RATE_LIMITS).between(r.minval, Date.now(), { index: 'expire' }).delete()));
    return res.deleted;
  };
  const timer = setInterval(() => {
    sweep().catch((e: unknown) => log.debug({ err: String(e) }, 'could not sweep expired rate limits'));
  }, opts.sweepEveryMs ?? 10 * 60_000);
  timer.unref();
  return {
    limiter: (rule) => new RethinkdbLimiter(rule, pool, db),
    sweep,
    stop: () => clearInterval(timer),
  };
}
