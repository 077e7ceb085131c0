// What a term evaluates to. Plain Datums are the common case; the classes below are the
// non-datum ReQL types (streams, selections, tables, databases, functions, grouped data, feeds).
import type { Datum, Key } from './datum.js';
import type { Term } from './term.js';
import type { Table } from '../storage/table.js';

/** What a changefeed watches: defined here, with the values that carry it, so feeds.ts depends on values.ts only. */
export type BetweenSource = { kind: 'between'; index: string; lo: Key; hi: Key; loOpen: boolean; hiOpen: boolean };
export type FeedSource =
  | { kind: 'table' }
  | { kind: 'point'; key: Datum }
  | { kind: 'getAll'; index: string; keys: Datum[] }
  | BetweenSource
  | { kind: 'limit'; index: string; desc: boolean; n: number; range?: BetweenSource };

export interface FeedSpec {
  table: Table;
  source: FeedSource;
  /** per-row transforms applied before changes() (filter → undefined drops, map rewrites) */
  transforms: Array<(row: Datum) => Datum | undefined>;
  /** a map/filter before changes() used r.random, r.js or the like */
  nondeterministic?: boolean;
}

export type StreamType = 'TABLE' | 'TABLE_SLICE' | 'SELECTION<STREAM>' | 'STREAM' | 'SELECTION<ARRAY>';

export interface StreamOpts {
  /** Set when every element is a whole row of this table, so writes may follow (a selection). */
  table?: Table;
  /** What changes() on this stream watches, when it can be watched. */
  feed?: FeedSpec;
  /** The index the stream is ordered by (orderBy({index}) or between's index), for limit feeds. */
  ordered?: { index: string; desc: boolean };
  /** between() was applied (a second one is an error). */
  between?: boolean;
  infinite?: boolean;
}

export class Stream {
  constructor(
    readonly typeName: StreamType,
    readonly iter: () => Iterable<Datum>,
    readonly opts: StreamOpts = {},
  ) {}
}

/** A single row of a table (get), possibly missing: SELECTION<OBJECT>. */
export class Single {
  readonly typeName = 'SELECTION<OBJECT>';
  constructor(
    readonly table: Table,
    readonly key: Datum,
    readonly feed?: FeedSpec,
  ) {}
  get doc(): Datum {
    return this.table.get(this.key) ?? null;
  }
}

export class DbVal {
  readonly typeName = 'DB';
  constructor(readonly name: string) {}
}

export class Func {
  readonly typeName = 'FUNCTION';
  constructor(
    readonly params: number[],
    readonly body: Term,
    readonly scope: Map<number, Val>,
    /** a native function (for implicit row functions built by the engine) */
    readonly native?: (args: Val[]) => Val,
  ) {}
}

/** group() output: a list of [group key, reduction or rows] in key order. */
export class Grouped {
  constructor(
    readonly groups: Array<[Datum, Val]>,
    /** GROUPED_STREAM while the groups still hold rows from a stream; GROUPED_DATA once reduced */
    readonly typeName: 'GROUPED_DATA' | 'GROUPED_STREAM' = 'GROUPED_DATA',
  ) {}
}

/** changes() output; filter/map/pluck on it apply to each change. */
export class Feed {
  readonly typeName = 'STREAM';
  constructor(
    readonly spec: FeedSpec,
    readonly options: { squash: boolean | number; includeInitial: boolean; includeStates: boolean; includeTypes: boolean; includeOffsets: boolean; changefeedQueueSize: number },
    readonly transforms: Array<(change: Datum) => Datum | undefined> = [],
    /** feed.limit(n): the feed ends after n changes */
    readonly limit?: number,
  ) {}
}

export type Val = Datum | Stream | Single | DbVal | Func | Grouped | Feed | import('./datum.js').Key;
