// The one table of every term the embedded server implements: each family of terms is an
// OpFamily exported by its module, and this list is the only place they are put together (no
// module registers anything by being imported). A term defined by two families is a mistake
// and stops the server at start-up rather than letting import order pick a winner.
import type { OpDef, OpFamily, OpTable } from './eval.js';
import { TERM_NAMES } from './termtypes.js';
import { feedOps } from './feeds.js';
import { aggregateOps, GROUPED_TERMS, runGrouped } from './ops/aggregate.js';
import { arrayOps } from './ops/array.js';
import { convertOps } from './ops/convert.js';
import { coreOps } from './ops/core.js';
import { mathOps } from './ops/math.js';
import { objectOps } from './ops/object.js';
import { sequenceOps } from './ops/sequence.js';
import { stringOps } from './ops/string.js';
import { tableOps } from './ops/table.js';
import { timeOps } from './ops/time.js';
import { writeOps } from './ops/write.js';

export const FAMILIES: readonly OpFamily[] = [
  coreOps, // datums, variables, functions, branching, comparison, errors
  objectOps, // fields, merge, pluck, literal
  sequenceOps, // map, filter, orderBy, limit, between, getAll
  tableOps, // databases, tables, indexes, config
  writeOps, // insert, update, replace, delete
  feedOps, // changes
  mathOps, // arithmetic, logic, random
  stringOps, // match, split, case
  arrayOps, // array surgery, sets, joins
  aggregateOps, // group, reduce, count, sum, avg, min, max, distinct
  timeOps, // r.now, times, dates
  convertOps, // coerceTo, typeOf, info, json
];

export function joinFamilies(families: readonly OpFamily[]): Map<number, OpDef> {
  const ops = new Map<number, OpDef>();
  const owner = new Map<number, string>();
  for (const family of families) {
    for (const [type, op] of family.ops) {
      const prev = owner.get(type);
      if (prev !== undefined) throw new Error(`term ${TERM_NAMES[type] ?? type} is defined by both the ${prev} and ${family.name} families`);
      owner.set(type, family.name);
      ops.set(type, op);
    }
  }
  return ops;
}

export function buildOpTable(): OpTable {
  return { ops: joinFamilies(FAMILIES), grouped: { terms: GROUPED_TERMS, run: runGrouped } };
}
