// The search fields as the message store writes them (src/db/messages.ts): on insert from the
// new message, on an edit from the new text and the stored row (its author, thread and file do
// not change, and a row stored before search existed has no facets to keep).
import { r, type RDatum } from 'rethinkdb-ts';
import { facet, searchFields, type Searchable } from './text.js';

/** The fields for a new message; none for a system message (it is not searched). */
export function fieldsOnInsert(m: Searchable & { event?: unknown }): { terms?: string[]; searchText?: string } {
  return m.event === undefined ? searchFields(m) : {};
}

/** The fields after an edit of row `m` to `body`. */
export function fieldsOnEdit(body: string, m: RDatum): { terms: RDatum; searchText: string } {
  const { terms, searchText } = searchFields({ body, author: {} });
  const author = m('author')('id').default(null);
  return {
    terms: (r.expr(terms) as RDatum).union(
      r.branch(author.eq(null), r.expr([]), r.expr([r.expr(facet.from('')).add(author)])) as RDatum,
      r.branch(m.hasFields('thread'), r.expr([facet.thread]), r.expr([])) as RDatum,
      r.branch(m('file').default(null).eq(null), r.expr([]), r.expr([facet.file])) as RDatum,
    ),
    searchText,
  };
}

/** The fields a deleted message loses. */
export const SEARCH_FIELDS = ['terms', 'searchText'] as const;
