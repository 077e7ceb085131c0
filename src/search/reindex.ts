// The search fields for messages stored before search existed (`npm run admin --
// reindex-search`): the table in primary-key order, a page at a time, each row without terms
// given them from its text. A one-off walk of the table, run by the operator; safe while the
// chat runs (a row edited or deleted meanwhile is left as its edit or deletion wrote it) and
// to run again (rows with terms are skipped).
import { r, type RDatum } from 'rethinkdb-ts';
import { z } from 'zod';
import { messageRow } from '../chat/message.js';
import type { Pool } from '../db/pool.js';
import { MESSAGES } from '../db/schema.js';
import { fieldsOnInsert } from './stored.js';

const PAGE = 500;
const pageRow = messageRow.extend({ terms: z.array(z.string()).optional(), file: z.unknown().optional() });

export async function reindexSearch(pool: Pool, db: string, progress: (done: number) => void = () => undefined): Promise<{ seen: number; indexed: number }> {
  const table = r.db(db).table(MESSAGES);
  let after: string | undefined;
  let seen = 0;
  let indexed = 0;
  for (;;) {
    const raw: unknown[] = await pool.run(table.between(after ?? r.minval, r.maxval, { leftBound: 'open', index: 'id' }).orderBy({ index: 'id' }).limit(PAGE));
    if (raw.length === 0) return { seen, indexed };
    for (const x of raw) {
      const m = pageRow.parse(x);
      seen++;
      after = m.id;
      if (m.terms !== undefined || m.deleted || m.event) continue;
      const fields = fieldsOnInsert(m);
      // Only if the row still has the text read here and no terms.
      const res = z.object({ replaced: z.number() }).parse(
        await pool.run(table.get(m.id).update((row: RDatum) => r.branch(row.hasFields('terms').or(row('deleted').default(false)).or(row('body').ne(m.body)), {}, fields))),
      );
      indexed += res.replaced;
    }
    progress(seen);
  }
}
