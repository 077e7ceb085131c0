// A lease in the database: one holder at a time for a job, whatever the number of processes.
// Taking it is one atomic replace of one row (free, expired, or already ours: ours now, until
// now + ttl); the holder renews it as it works and stops the moment a renewal fails. A holder
// that dies keeps it until it expires. Times are the database's clock, so processes' clocks
// need not agree.
import { r, type RDatum } from 'rethinkdb-ts';
import { z } from 'zod';
import type { Pool } from '../db/pool.js';
import { LEASES } from '../db/schema.js';

export interface Lease {
  readonly holder: string;
  /** Takes (or renews) the lease; true when this holder has it now, for `ttlMs`. */
  take(): Promise<boolean>;
  /** Gives it up, if held. */
  release(): Promise<void>;
}

const changes = z.object({ changes: z.array(z.object({ new_val: z.object({ holder: z.string() }).nullable() })).optional() });

export function createLease(opts: { pool: Pick<Pool, 'run'>; db: string; name: string; holder: string; ttlMs: number }): Lease {
  const { pool, name, holder } = opts;
  const table = () => r.db(opts.db).table(LEASES);
  return {
    holder,
    async take() {
      const res = await pool.run(
        table()
          .get(name)
          .replace(
            (row: RDatum) =>
              r.branch(
                row.eq(null).or(row('expires').lt(r.now())).or(row('holder').eq(holder)),
                { id: name, holder, expires: r.now().add(opts.ttlMs / 1000) },
                row,
              ),
            { returnChanges: 'always' },
          ),
      );
      return changes.parse(res).changes?.[0]?.new_val?.holder === holder;
    },
    async release() {
      await pool.run(table().get(name).replace((row: RDatum) => r.branch(row.eq(null).or(row('holder').ne(holder)), row, null)));
    },
  };
}
