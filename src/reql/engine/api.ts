// The contract between the wire layer (src/reql/wire) and the query engine.
// The wire layer parses frames and owns connections; the engine evaluates terms.
import type { ErrorTypeCode, ResponseTypeCode } from '../proto.js';

/** A value as it travels on the wire: JSON, with TIME/BINARY as `$reql_type$` objects. */
export type Datum = null | boolean | number | string | Datum[] | { [key: string]: Datum };

/** A query or runtime failure, reported to the client as a COMPILE/RUNTIME/CLIENT error response. */
export class ReqlError extends Error {
  constructor(
    message: string,
    readonly responseType: ResponseTypeCode,
    readonly errorType: ErrorTypeCode | undefined,
    readonly backtrace: Array<number | string> = [],
  ) {
    super(message);
  }
}

export interface Batch {
  items: Datum[];
  /** true when the stream is exhausted (SUCCESS_SEQUENCE); false means more may follow (SUCCESS_PARTIAL). */
  done: boolean;
}

/** A stream of results: a finite sequence or an endless changefeed. */
export interface Cursor {
  /** Response notes (ResponseNote codes), e.g. SEQUENCE_FEED for table.changes(). */
  readonly notes: number[];
  /**
   * Resolves with the next batch. For a feed it waits until at least one item is available
   * (or the feed is closed / errors). Rejects with ReqlError on failure.
   */
  next(): Promise<Batch>;
  /** Stops the stream and frees its resources (STOP, or the connection went away). Idempotent. */
  close(): void;
}

export type QueryResult = { kind: 'atom'; value: Datum } | { kind: 'cursor'; cursor: Cursor };

/** How one connection's queries are run (the wire layer sets these per connection). */
export interface QueryContext {
  /** added to the server's clock for the query's r.now() (tests: skew between nodes) */
  clockOffsetMs?: number;
  /** awaited after r.now() is taken and before a query that writes is evaluated (tests:
   *  writes that commit later than their timestamp, in another order than they were sent) */
  beforeWrite?: () => Promise<void>;
}

export interface Engine {
  /**
   * Runs a START query. `term` is the raw JSON term ([type, args, optargs] or a datum) and
   * `globalOptargs` the query's optargs (db, durability, read_mode, changefeed_queue_size, ...),
   * each optarg value itself a raw term.
   */
  run(term: unknown, globalOptargs: Record<string, unknown>, context?: QueryContext): Promise<QueryResult>;
  /** Server identity for SERVER_INFO: { id, name, proxy: false }. */
  serverInfo(): Datum;
  /** Flushes and closes storage. */
  close(): Promise<void>;
}
