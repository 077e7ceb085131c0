// Treating values as sequences.
import type { Datum } from './datum.js';
import { logicError } from './errors.js';
import { valTypeName, type Ctx } from './eval.js';
import { Stream, type Val } from './values.js';

export function isSequence(v: Val): v is Stream | Datum[] {
  return v instanceof Stream || Array.isArray(v);
}

export function iterOf(v: Val, _c?: Ctx): Iterable<Datum> {
  if (v instanceof Stream) return v.iter();
  if (Array.isArray(v)) return v;
  throw logicError(`Cannot convert ${valTypeName(v)} to SEQUENCE`);
}

/** Wraps a derived sequence: arrays stay arrays, streams stay lazy streams of the right kind. */
export function derive(src: Stream | Datum[], gen: (items: Iterable<Datum>) => Iterable<Datum>, keepSelection: boolean): Stream | Datum[] {
  if (Array.isArray(src)) return [...gen(src)];
  const table = keepSelection ? src.opts.table : undefined;
  const typeName = table ? (src.typeName === 'SELECTION<ARRAY>' ? 'SELECTION<ARRAY>' : 'SELECTION<STREAM>') : 'STREAM';
  return new Stream(typeName, () => gen(src.iter()), { table, infinite: src.opts.infinite });
}
