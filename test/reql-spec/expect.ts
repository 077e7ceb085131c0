// Expectations of the polyglot tests and how results are compared with them.
//
// Expected values are plain JSON-like values that may contain matchers built by the helpers the
// spec files use: partial(x), bag(list), err(type, msg, backtrace), err_regex(type, pattern,
// backtrace), uuid(), regex(p), arrlen(n, x), int_cmp(n), float_cmp(n). Actual values come from
// rethinkdb-ts (run with raw time/binary formats by default) or are errors the query raised.

/** An error the query raised, by class name as the spec files spell them. */
export interface ActualError {
  kind: 'error';
  /** e.g. ReqlQueryLogicError, ReqlCompileError, or driver:<name> for client-side errors */
  type: string;
  message: string;
  /** true when the error was raised by the driver before the query reached the server */
  clientSide: boolean;
}

export function isActualError(x: unknown): x is ActualError {
  return typeof x === 'object' && x !== null && (x as { kind?: unknown }).kind === 'error' && 'type' in x && 'message' in x;
}

export interface CompareOptions {
  /** absolute tolerance for numbers (testopts precision); exact by default */
  precision?: number;
}

export type MatchResult = { ok: true } | { ok: false; why: string };
const OK: MatchResult = { ok: true };
const fail = (why: string): MatchResult => ({ ok: false, why });

export abstract class Matcher {
  abstract match(actual: unknown, opts: CompareOptions, path: string): MatchResult;
  abstract describe(): string;
  toJSON(): string {
    return this.describe();
  }
}

// ---------------------------------------------------------------------------------------------
// Errors

/** rethinkdb-ts error class names → the names the spec files use. */
const DRIVER_NAME_TO_SPEC: Record<string, string> = {
  ReqlLogicError: 'ReqlQueryLogicError',
  ReqlNonExistanceError: 'ReqlNonExistenceError',
  ReqlNonExistenceError: 'ReqlNonExistenceError',
  ReqlResourceError: 'ReqlResourceLimitError',
  ReqlOpFailedError: 'ReqlOpFailedError',
  ReqlOpIndeterminateError: 'ReqlOpIndeterminateError',
  ReqlUserError: 'ReqlUserError',
  ReqlInternalError: 'ReqlInternalError',
  ReqlPermissionError: 'ReqlPermissionError',
  ReqlAuthError: 'ReqlAuthError',
};

/** Response types and runtime error codes of the wire protocol (ql2.proto). */
const RESPONSE_CLIENT_ERROR = 16;
const RESPONSE_COMPILE_ERROR = 17;
const RESPONSE_RUNTIME_ERROR = 18;
const RUNTIME_ERROR_CODES: Record<number, string> = {
  1000000: 'ReqlInternalError',
  2000000: 'ReqlResourceLimitError',
  3000000: 'ReqlQueryLogicError',
  3100000: 'ReqlNonExistenceError',
  4100000: 'ReqlOpFailedError',
  4200000: 'ReqlOpIndeterminateError',
  5000000: 'ReqlUserError',
  6000000: 'ReqlPermissionError',
};

export const RUNTIME_CLASSES = new Set([
  'ReqlInternalError',
  'ReqlResourceLimitError',
  'ReqlQueryLogicError',
  'ReqlNonExistenceError',
  'ReqlOpFailedError',
  'ReqlOpIndeterminateError',
  'ReqlUserError',
  'ReqlPermissionError',
]);

/** Fields the runner's hook on the driver attaches to errors that came from a server response. */
export interface ResponseInfo {
  responseType?: number;
  errorType?: number;
}
export const RESPONSE_INFO = Symbol.for('reql-spec.response');
/** rethinkdb-ts's RethinkDBErrorType.CONNECTION */
const DRIVER_ERROR_CONNECTION = 2;

/** Turns whatever a query threw into an ActualError. */
export function classifyError(e: unknown): ActualError {
  if (typeof e === 'object' && e !== null) {
    const info = (e as { [RESPONSE_INFO]?: ResponseInfo })[RESPONSE_INFO];
    const rawMsg = (e as { msg?: unknown }).msg;
    const message = typeof rawMsg === 'string' ? rawMsg : e instanceof Error ? e.message : String(e);
    if (info?.responseType !== undefined) {
      let type = 'ReqlUnknownError';
      if (info.responseType === RESPONSE_COMPILE_ERROR) type = 'ReqlCompileError';
      else if (info.responseType === RESPONSE_CLIENT_ERROR) type = 'ReqlClientError';
      else if (info.responseType === RESPONSE_RUNTIME_ERROR) type = RUNTIME_ERROR_CODES[info.errorType ?? -1] ?? 'ReqlRuntimeError';
      return { kind: 'error', type, message, clientSide: false };
    }
    const name = (e as { name?: unknown }).name;
    // the connection went away under the query: the server's doing (it closed or crashed)
    if ((e as { type?: unknown }).type === DRIVER_ERROR_CONNECTION) {
      return { kind: 'error', type: 'driver:ConnectionLost', message, clientSide: false };
    }
    if (typeof name === 'string' && name in DRIVER_NAME_TO_SPEC) {
      return { kind: 'error', type: DRIVER_NAME_TO_SPEC[name], message, clientSide: false };
    }
    if (typeof name === 'string' && name.startsWith('Reql')) {
      return { kind: 'error', type: `driver:${name}`, message, clientSide: true };
    }
    if (e instanceof Error) return { kind: 'error', type: `driver:${e.name}`, message: e.message, clientSide: true };
  }
  return { kind: 'error', type: 'driver:unknown', message: String(e), clientSide: true };
}

/** Does an actual error class satisfy the class a spec expects? */
export function errorTypeMatches(expected: string, actual: string): boolean {
  if (expected === actual) return true;
  switch (expected) {
    case 'ReqlError':
      return true;
    case 'ReqlServerCompileError':
      return actual === 'ReqlCompileError';
    case 'ReqlRuntimeError':
      return RUNTIME_CLASSES.has(actual);
    case 'ReqlAvailabilityError':
      return actual === 'ReqlOpFailedError' || actual === 'ReqlOpIndeterminateError';
  }
  return false;
}

export class ErrMatcher extends Matcher {
  constructor(
    readonly type: string,
    readonly message: string | undefined,
    readonly isRegex: boolean,
  ) {
    super();
  }
  match(actual: unknown, _opts: CompareOptions, path: string): MatchResult {
    if (!isActualError(actual)) return fail(`${path}: expected an error ${this.describe()} but got a value`);
    if (!errorTypeMatches(this.type, actual.type)) {
      return fail(`${path}: expected ${this.type} but got ${actual.type}: ${actual.message}`);
    }
    if (this.message === undefined) return OK;
    if (this.isRegex) {
      let re: RegExp;
      try {
        re = new RegExp(`^(?:${this.message})`, 's');
      } catch {
        return fail(`${path}: bad expected pattern ${this.message}`);
      }
      return re.test(actual.message) ? OK : fail(`${path}: message ${JSON.stringify(actual.message)} does not match /${this.message}/`);
    }
    if (actual.message === this.message) return OK;
    // messages that end where the server prints a value ("No attribute `x` in object:")
    if (this.message.endsWith(':') && actual.message.startsWith(this.message)) return OK;
    return fail(`${path}: expected message ${JSON.stringify(this.message)} but got ${JSON.stringify(actual.message)}`);
  }
  describe(): string {
    return `${this.isRegex ? 'err_regex' : 'err'}(${this.type}${this.message !== undefined ? `, ${JSON.stringify(this.message)}` : ''})`;
  }
}

// ---------------------------------------------------------------------------------------------
// Other matchers

export class PartialMatcher extends Matcher {
  constructor(readonly value: unknown) {
    super();
  }
  match(actual: unknown, opts: CompareOptions, path: string): MatchResult {
    const exp = this.value;
    if (Array.isArray(exp)) {
      if (!Array.isArray(actual)) return fail(`${path}: expected an array containing ${show(exp)} but got ${show(actual)}`);
      const m = bipartite(exp, actual, opts, path);
      if (m.unmatched.length > 0) {
        return fail(`${path}: no element matches ${show(exp[m.unmatched[0]])} (partial list) in ${show(actual)}`);
      }
      return OK;
    }
    if (isPlainObject(exp)) {
      if (!isPlainObject(actual)) return fail(`${path}: expected an object containing ${show(exp)} but got ${show(actual)}`);
      for (const [k, v] of Object.entries(exp)) {
        if (!(k in actual)) return fail(`${path}: missing key ${JSON.stringify(k)} in ${show(actual)}`);
        const r = compare(v, actual[k], opts, `${path}.${k}`);
        if (!r.ok) return r;
      }
      return OK;
    }
    return compare(exp, actual, opts, path);
  }
  describe(): string {
    return `partial(${show(this.value)})`;
  }
}

export class BagMatcher extends Matcher {
  constructor(
    readonly items: unknown[],
    readonly partial = false,
  ) {
    super();
  }
  match(actual: unknown, opts: CompareOptions, path: string): MatchResult {
    if (!Array.isArray(actual)) return fail(`${path}: expected a bag ${show(this.items)} but got ${show(actual)}`);
    if (!this.partial && actual.length !== this.items.length) {
      return fail(`${path}: expected ${this.items.length} items in any order but got ${actual.length}: ${show(actual)}`);
    }
    const m = bipartite(this.items, actual, opts, path);
    if (m.unmatched.length > 0) return fail(`${path}: no element matches ${show(this.items[m.unmatched[0]])} in ${show(actual)}`);
    return OK;
  }
  describe(): string {
    return `bag(${show(this.items)})`;
  }
}

export class UuidMatcher extends Matcher {
  match(actual: unknown, _o: CompareOptions, path: string): MatchResult {
    return typeof actual === 'string' && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(actual)
      ? OK
      : fail(`${path}: expected a UUID but got ${show(actual)}`);
  }
  describe(): string {
    return 'uuid()';
  }
}

export class RegexMatcher extends Matcher {
  constructor(readonly pattern: string) {
    super();
  }
  match(actual: unknown, _o: CompareOptions, path: string): MatchResult {
    if (typeof actual !== 'string') return fail(`${path}: expected a string matching /${this.pattern}/ but got ${show(actual)}`);
    return new RegExp(`^(?:${this.pattern})`, 's').test(actual) ? OK : fail(`${path}: ${JSON.stringify(actual)} does not match /${this.pattern}/`);
  }
  describe(): string {
    return `regex(${JSON.stringify(this.pattern)})`;
  }
}

export class ArrLenMatcher extends Matcher {
  constructor(
    readonly length: number,
    readonly of: unknown,
  ) {
    super();
  }
  match(actual: unknown, opts: CompareOptions, path: string): MatchResult {
    if (!Array.isArray(actual)) return fail(`${path}: expected an array of ${this.length} but got ${show(actual)}`);
    if (actual.length !== this.length) return fail(`${path}: expected ${this.length} items but got ${actual.length}`);
    if (this.of !== undefined) {
      for (let i = 0; i < actual.length; i++) {
        const r = compare(this.of, actual[i], opts, `${path}[${i}]`);
        if (!r.ok) return r;
      }
    }
    return OK;
  }
  describe(): string {
    return `arrlen(${this.length}${this.of !== undefined ? `, ${show(this.of)}` : ''})`;
  }
}

export class NumberMatcher extends Matcher {
  constructor(
    readonly value: number,
    readonly mode: 'int' | 'float',
    readonly tolerance: number,
  ) {
    super();
  }
  match(actual: unknown, _o: CompareOptions, path: string): MatchResult {
    if (typeof actual !== 'number') return fail(`${path}: expected number ${this.value} but got ${show(actual)}`);
    if (this.mode === 'int') return actual === this.value ? OK : fail(`${path}: expected ${this.value} but got ${actual}`);
    const tol = Math.max(this.tolerance, Math.abs(this.value) * 1e-12);
    return Math.abs(actual - this.value) <= tol ? OK : fail(`${path}: expected ~${this.value} but got ${actual}`);
  }
  describe(): string {
    return `${this.mode}_cmp(${this.value})`;
  }
}

/** A JavaScript Date in an expectation: the same instant (the timezone is not known). */
export class TimeMatcher extends Matcher {
  constructor(readonly epochMs: number) {
    super();
  }
  match(actual: unknown, _o: CompareOptions, path: string): MatchResult {
    const t = asTime(actual);
    if (t === undefined) return fail(`${path}: expected a time but got ${show(actual)}`);
    return Math.abs(t.epoch * 1000 - this.epochMs) < 1 ? OK : fail(`${path}: expected time ${this.epochMs / 1000} but got ${t.epoch}`);
  }
  describe(): string {
    return `time(${this.epochMs / 1000})`;
  }
}

/** The helper functions expectation texts may call. */
export function expectationHelpers(): Record<string, unknown> {
  const err = (type: string, message?: string) => new ErrMatcher(type, message, false);
  const errRegex = (type: string, pattern?: string) => new ErrMatcher(type, pattern, true);
  const partial = (x: unknown) => new PartialMatcher(x);
  const bag = (items: unknown, opt?: unknown) => {
    if (!Array.isArray(items)) throw new TypeError('bag() of a non-list');
    const part = opt === true || (isPlainObject(opt) && opt.partial === true);
    return new BagMatcher(items, part);
  };
  const uuid = () => new UuidMatcher();
  const regex = (p: string) => new RegexMatcher(p);
  const arrlen = (n: number, of?: unknown) => new ArrLenMatcher(n, of);
  const intCmp = (n: number) => new NumberMatcher(n, 'int', 0);
  const floatCmp = (n: number, tol?: number) => new NumberMatcher(n, 'float', tol ?? 0);
  return {
    err,
    errRegex,
    err_regex: errRegex,
    partial,
    bag,
    uuid,
    regex,
    arrlen,
    intCmp,
    int_cmp: intCmp,
    floatCmp,
    float_cmp: floatCmp,
  };
}

// ---------------------------------------------------------------------------------------------
// Comparison

export function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x) && !Buffer.isBuffer(x) && !(x instanceof Date) && !(x instanceof Matcher);
}

function asTime(x: unknown): { epoch: number; timezone?: string } | undefined {
  if (x instanceof Date) return { epoch: x.getTime() / 1000 };
  if (isPlainObject(x) && x.$reql_type$ === 'TIME' && typeof x.epoch_time === 'number') {
    return { epoch: x.epoch_time, timezone: typeof x.timezone === 'string' ? x.timezone : undefined };
  }
  return undefined;
}

function asBinary(x: unknown): Buffer | undefined {
  if (Buffer.isBuffer(x)) return x;
  if (isPlainObject(x) && x.$reql_type$ === 'BINARY' && typeof x.data === 'string') return Buffer.from(x.data, 'base64');
  return undefined;
}

function numbersEqual(a: number, b: number, opts: CompareOptions): boolean {
  if (a === b) return true;
  if (Number.isNaN(a) && Number.isNaN(b)) return true;
  if (opts.precision !== undefined) return Math.abs(a - b) <= opts.precision;
  return false;
}

/** Compares an expected value (with matchers) to an actual value. */
export function compare(expected: unknown, actual: unknown, opts: CompareOptions = {}, path = '$'): MatchResult {
  if (expected instanceof Matcher) return expected.match(actual, opts, path);
  if (isActualError(actual)) return fail(`${path}: expected ${show(expected)} but the query failed: ${actual.type}: ${actual.message}`);
  if (expected instanceof Date) return new TimeMatcher(expected.getTime()).match(actual, opts, path);
  const eb = asBinary(expected);
  if (eb !== undefined) {
    const ab = asBinary(actual);
    if (ab === undefined) return fail(`${path}: expected binary ${show(expected)} but got ${show(actual)}`);
    return eb.equals(ab) ? OK : fail(`${path}: expected binary ${eb.toString('base64')} but got ${ab.toString('base64')}`);
  }
  if (isPlainObject(expected) && expected.$reql_type$ === 'TIME') {
    const et = asTime(expected);
    const at = asTime(actual);
    if (et === undefined || at === undefined) return fail(`${path}: expected time ${show(expected)} but got ${show(actual)}`);
    if (!numbersEqual(et.epoch, at.epoch, opts)) return fail(`${path}: expected time ${et.epoch} but got ${at.epoch}`);
    if (et.timezone !== undefined && at.timezone !== undefined && et.timezone !== at.timezone) {
      return fail(`${path}: expected timezone ${et.timezone} but got ${at.timezone}`);
    }
    return OK;
  }
  if (typeof expected === 'number') {
    if (typeof actual !== 'number') return fail(`${path}: expected ${expected} but got ${show(actual)}`);
    return numbersEqual(expected, actual, opts) ? OK : fail(`${path}: expected ${expected} but got ${actual}`);
  }
  if (expected === null || typeof expected !== 'object') {
    if (expected === undefined && actual === null) return OK;
    return expected === actual ? OK : fail(`${path}: expected ${show(expected)} but got ${show(actual)}`);
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) return fail(`${path}: expected array ${show(expected)} but got ${show(actual)}`);
    if (expected.length !== actual.length) {
      return fail(`${path}: expected ${expected.length} items but got ${actual.length}: ${show(actual)}`);
    }
    for (let i = 0; i < expected.length; i++) {
      const r = compare(expected[i], actual[i], opts, `${path}[${i}]`);
      if (!r.ok) return r;
    }
    return OK;
  }
  if (isPlainObject(expected)) {
    if (!isPlainObject(actual)) return fail(`${path}: expected object ${show(expected)} but got ${show(actual)}`);
    const ek = Object.keys(expected).filter((k) => expected[k] !== undefined);
    const ak = Object.keys(actual);
    for (const k of ek) {
      if (!(k in actual)) return fail(`${path}: missing key ${JSON.stringify(k)} in ${show(actual)}`);
      const r = compare(expected[k], actual[k], opts, `${path}.${k}`);
      if (!r.ok) return r;
    }
    for (const k of ak) {
      if (!ek.includes(k)) return fail(`${path}: unexpected key ${JSON.stringify(k)} in ${show(actual)}`);
    }
    return OK;
  }
  return fail(`${path}: cannot compare ${show(expected)}`);
}

/** Matches expected items to distinct actual items (augmenting paths). */
function bipartite(expected: unknown[], actual: unknown[], opts: CompareOptions, path: string): { unmatched: number[] } {
  const ok: boolean[][] = expected.map((e, i) => actual.map((a) => compare(e, a, opts, `${path}[${i}]`).ok));
  const owner = new Array<number>(actual.length).fill(-1);
  const tryAssign = (i: number, seen: boolean[]): boolean => {
    for (let j = 0; j < actual.length; j++) {
      if (!ok[i][j] || seen[j]) continue;
      seen[j] = true;
      if (owner[j] === -1 || tryAssign(owner[j], seen)) {
        owner[j] = i;
        return true;
      }
    }
    return false;
  };
  const unmatched: number[] = [];
  for (let i = 0; i < expected.length; i++) {
    if (!tryAssign(i, new Array<boolean>(actual.length).fill(false))) unmatched.push(i);
  }
  return { unmatched };
}

/** Short printable form of a value for failure reports. */
export function show(x: unknown, max = 300): string {
  let s: string;
  try {
    s = JSON.stringify(x, (_k, v: unknown) => {
      if (v instanceof Matcher) return v.describe();
      if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
      if (v === undefined) return 'undefined';
      if (typeof v === 'object' && v !== null && (v as { type?: unknown }).type === 'Buffer' && Array.isArray((v as { data?: unknown }).data)) {
        return `<binary ${Buffer.from((v as { data: number[] }).data).toString('base64')}>`;
      }
      return v;
    });
  } catch {
    s = String(x);
  }
  if (s === undefined) s = String(x);
  return s.length > max ? `${s.slice(0, max)}…` : s;
}
