// Search: a parsed query, for a viewer, over the rooms the access module says they may read.
//
// Candidates are index ranges, never a scan, for the one term that narrows most: of the words
// and facets asked for (#from:<user>, ...), the one with the fewest entries (a capped count of
// each). For a viewer of more than one room, the look is across rooms first: the term's newest
// entries in term_sent ([term, sent, id]), those in readable rooms kept, the other words,
// prefixes and phrases checked by the database (patterns on the folded words), until the page
// is full. When that checks SCAN_PER_ROOM entries per readable room without filling the page,
// or for one room, it is room by room: each readable room's range of `search` ([room, term,
// sent, id]) from the newest down, merged newest first. Room by room alone made a common word
// cost a sorted read in every room, and on RethinkDB a sorted read of a multi index evaluates
// the index function again for each row it reads (about 200 rows a room for a page of 20; read
// as a stream, about 100). A query of dates or rooms alone ranges over room_sent. Deleted
// messages and system messages have no terms, so they are in no range; an edit replaces the
// terms, so the old text is found no more.
import { r, type RDatum, type RStream } from 'rethinkdb-ts';
import { z } from 'zod';
import type { Access, Viewer } from '../chat/access.js';
import { messageRow, type Message } from '../chat/message.js';
import type { Pool } from '../db/pool.js';
import { MESSAGES } from '../db/schema.js';
import { normalRoomName, type Room } from '../rooms/schema.js';
import { QueryError, type ParsedQuery } from './query.js';
import { facet, lookupOf, wordsWithPlaces, type Token } from './text.js';

export interface SearchHit {
  message: Message;
  room: Room;
  /** [start, end) of each highlighted word in the message's body (UTF-16 offsets) */
  highlights: Array<[number, number]>;
}

export interface SearchPage {
  hits: SearchHit[];
  /** the next page's cursor, when there may be more */
  cursor?: string;
}

export interface SearchOptions {
  pool: Pool;
  db: string;
  access: Pick<Access, 'readableRooms'>;
  users: { userByLogin(login: string): Promise<{ id: string } | undefined> };
}

export type Search = ReturnType<typeof createSearch>;

const escapeRe = (s: string) => s.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');

/** Where a page ends: the last hit's time (epoch seconds as the database has it) and id. */
const cursorSchema = z.tuple([z.number(), z.string().min(1).max(128)]);
const encodeCursor = (t: number, id: string) => Buffer.from(JSON.stringify([t, id])).toString('base64url');
function decodeCursor(s: string): [number, string] {
  try {
    return cursorSchema.parse(JSON.parse(Buffer.from(s, 'base64url').toString('utf8')));
  } catch {
    throw new QueryError('that cursor is not one a search gave');
  }
}

const hitRow = z.object({ row: messageRow, t: z.number() });

/** A phrase's words in order as a pattern on searchText (CJK runs match inside a run). */
function phrasePattern(tokens: Token[]): string {
  const first = tokens[0]!;
  const last = tokens[tokens.length - 1]!;
  return `${first.cjk ? '' : '(?:^| )'}${tokens.map((t) => escapeRe(t.word)).join(' ')}${last.cjk ? '' : '(?: |$)'}`;
}

/** The highlighted words of a body: each word that a query word starts (CJK: overlaps). */
export function highlightsOf(body: string, q: Pick<ParsedQuery, 'words' | 'phrases'>): Array<[number, number]> {
  const wanted = [...q.words, ...q.phrases.flat()];
  if (wanted.length === 0) return [];
  const out: Array<[number, number]> = [];
  for (const place of wordsWithPlaces(body)) {
    const hit = wanted.some((w) => (w.cjk && place.cjk ? w.word.includes(place.word) || place.word.includes(w.word) : place.word.startsWith(w.word)));
    if (hit) out.push([place.start, place.end]);
  }
  return out;
}

interface Lookup {
  term: string;
  cjk?: boolean;
  verify?: string;
  text?: string;
  /** how much it narrows (larger: fewer candidates) */
  weight: number;
}

/** The look across rooms checks this many of a term's newest entries per readable room, about
 *  what reading one room's range costs; past that it goes room by room. So a search costs at
 *  most about twice the cheaper of the two ways, whichever it is. */
export const SCAN_PER_ROOM = 200;
/** A term's entries are counted up to this many, to pick the term with the fewest. */
const COUNT_UP_TO = 500;

export function createSearch(opts: SearchOptions) {
  const { pool, db, access, users } = opts;
  const table = () => r.db(db).table(MESSAGES);

  /** The lookup whose term has the fewest entries in the range (counted up to COUNT_UP_TO, in
   *  every room: one cheap count each); between equals, the one that narrows most. */
  async function pickDriver(lookups: Lookup[], range: (index: string, key: unknown[]) => RStream): Promise<Lookup | undefined> {
    if (lookups.length <= 1) return lookups[0];
    const counts = z.array(z.number()).parse(await pool.run(r.expr(lookups.map((l) => range('term_sent', [l.term]).limit(COUNT_UP_TO).count()))));
    let best = 0;
    for (let i = 1; i < lookups.length; i++) {
      if (counts[i]! < counts[best]! || (counts[i] === counts[best] && lookups[i]!.weight > lookups[best]!.weight)) best = i;
    }
    return lookups[best];
  }

  return {
    async search(viewer: Viewer, q: ParsedQuery, page: { cursor?: string; limit: number }): Promise<SearchPage> {
      const after = page.cursor === undefined ? undefined : decodeCursor(page.cursor);
      // The rooms, from the one place that decides.
      let rooms = (await access.readableRooms(viewer)).map((x) => x.room);
      if (q.in.length > 0) {
        const names = q.in.map((n) => normalRoomName(n));
        rooms = rooms.filter((room) => q.in.includes(room.id) || names.includes(normalRoomName(room.name)));
      }
      if (rooms.length === 0) return { hits: [] };

      const lookups: Lookup[] = [];
      for (const w of [...q.words, ...q.phrases.flat()]) {
        const l = lookupOf(w.word, w.cjk);
        lookups.push({ ...l, cjk: w.cjk, weight: Array.from(l.term).length * (w.cjk ? 2 : 1) });
      }
      if (q.from !== undefined) {
        const user = await users.userByLogin(q.from);
        if (!user) return { hits: [] };
        lookups.push({ term: facet.from(user.id), weight: 4 });
      }
      if (q.hasFile) lookups.push({ term: facet.file, weight: 6 });
      if (q.hasLink) lookups.push({ term: facet.link, weight: 3 });
      if (q.isThread) lookups.push({ term: facet.thread, weight: 3 });
      const fetch = page.limit + 1;
      const low = q.after ?? r.minval;
      // The upper end (open): the cursor's hit, or before: when that is earlier, or the top.
      const fromCursor = after !== undefined && !(q.before !== undefined && q.before.getTime() / 1000 < after[0]);
      const range = (index: string, key: unknown[]): RStream =>
        table().between([...key, low], fromCursor && after ? [...key, r.epochTime(after[0]), after[1]] : [...key, q.before ?? r.maxval], { index, rightBound: 'open' });
      const driver = await pickDriver(lookups, range);

      /** everything asked for, checked on each candidate by the database */
      const matches = (m: RDatum) => {
        const tests: RDatum[] = [];
        const exact = [...new Set(lookups.filter((l) => l !== driver).map((l) => l.term))];
        if (exact.length > 0) tests.push(m('terms').contains(...(exact as [string])));
        for (const l of lookups) {
          const v = l.verify;
          // One pattern on the folded words, cheaper than a test of each term.
          if (v !== undefined) tests.push(m('searchText').match(`${l.cjk ? '' : '(?:^| )'}${escapeRe(v)}`).ne(null));
          if (l.text !== undefined) tests.push(m('searchText').match(escapeRe(l.text)).ne(null));
        }
        for (const p of q.phrases) tests.push(m('searchText').match(phrasePattern(p)).ne(null));
        if (!driver) tests.push(m.hasFields('terms'));
        return tests.reduce((a, b) => a.and(b), r.expr(true));
      };

      const filtered = driver === undefined || lookups.length > 1 || q.phrases.length > 0 || lookups.some((l) => l.verify !== undefined || l.text !== undefined);
      /** each room's range from the newest down, merged newest first */
      const roomByRoom = () => {
        const branches = rooms.map((room) => {
          const index = driver ? 'search' : 'room_sent';
          const newest = range(index, driver ? [room.id, driver.term] : [room.id]).orderBy({ index: r.desc(index) });
          return (filtered ? newest.filter((m: RDatum) => matches(m)) : newest).limit(fetch);
        });
        const merged = branches.length === 1 ? branches[0]! : branches[0]!.union(...(branches.slice(1) as [RStream]));
        return merged.orderBy(r.desc('sent'), r.desc('id')).limit(fetch).coerceTo('array');
      };
      const withTime = (m: RDatum) => ({ row: m, t: m('sent').toEpochTime() });
      let raw: unknown[] | undefined;
      if (driver && rooms.length > 1) {
        // Across rooms first: the term's newest entries in every room, the readable matches
        // kept. That is the answer when it fills the page or the range holds no more; else (the
        // term's newest messages are mostly in rooms the viewer may not read, or rarely match
        // the rest of the query) room by room. Read as a stream, not made an array in the
        // query: RethinkDB's first batch of a stream is smaller than an eager read.
        const scan = SCAN_PER_ROOM * rooms.length;
        const readable = r.expr(Object.fromEntries(rooms.map((room) => [room.id, true])));
        const hits: unknown[] = await pool.run(range('term_sent', [driver.term]).orderBy({ index: r.desc('term_sent') }).limit(scan)
          .filter((m: RDatum) => readable.hasFields(m('room')).and(matches(m))).limit(fetch).map(withTime));
        const complete = hits.length === fetch || (await pool.run(range('term_sent', [driver.term]).limit(scan).count())) < scan;
        if (complete) raw = hits;
      }
      raw ??= (await pool.run(roomByRoom().map(withTime))) as unknown[];
      const rows = raw.map((x) => hitRow.parse(x));
      const byId = new Map(rooms.map((room) => [room.id, room]));
      const hits: SearchHit[] = [];
      for (const { row } of rows.slice(0, page.limit)) {
        const room = byId.get(row.room);
        if (room) hits.push({ message: row, room, highlights: highlightsOf(row.body, q) });
      }
      const last = rows[page.limit - 1];
      return { hits, cursor: rows.length > page.limit && last ? encodeCursor(last.t, last.row.id) : undefined };
    },
  };
}
