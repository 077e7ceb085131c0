// Conformance runner: RethinkDB's polyglot ReQL tests (../shared/reql-spec) against the embedded
// ReQL server (src/reql) or any RethinkDB-compatible server.
//
//   npm run spec:reql                          Tier 1 files against a fresh embedded server
//   npm run spec:reql -- --server HOST:PORT    against another server (e.g. a real RethinkDB)
//   npm run spec:reql -- --files a.yaml,b.yaml (or --all: every file, Tier 2 too)
//   npm run spec:reql -- --verbose             every failure with query, expected and result
//   npm run spec:reql -- --dry-run             parse and convert only: counts per file, no server
//   npm run spec:reql -- --min-pass-rate 0.9   exit 1 when passed/(passed+failed) is lower
//
// It is a conformance report, not a gate: the exit code is 0 unless the runner itself breaks
// (or --min-pass-rate is given and not met). The last line is always
// `reql-spec: P passed, F failed, S skipped`.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync, statSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { readSpecFile, type SpecFile, type SpecTest, type SpecText } from './parse.js';
import { ConvertError, PY_BUILTINS, convertExpr, convertStatement, createPyRuntime, mapVarName, snakeToCamel, type Converted } from './convert.js';
import {
  ArrLenMatcher,
  BagMatcher,
  ErrMatcher,
  PartialMatcher,
  classifyError,
  compare,
  expectationHelpers,
  isActualError,
  show,
  type ActualError,
} from './expect.js';
import {
  installErrorHook,
  isCursor,
  isTerm,
  rRaw,
  rSpec,
  wrapTerm,
  type AnyFn,
  type ConnectionLike,
  type CursorLike,
  type RethinkDBErrorLike,
  type TermLike,
} from './driver.js';
import { driverCheckReason, findSkip, isClearRefusal, outOfScopeRefusal } from './skips.js';

// ---------------------------------------------------------------------------------------------
// Files

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..', '..');
const DEFAULT_SPEC_DIR = path.resolve(REPO, '..', 'shared', 'reql-spec');

/** Tier 1 (README of the spec folder): what the project's queries depend on. */
export const TIER1 = [
  'changefeeds/table.yaml',
  'changefeeds/point.yaml',
  'changefeeds/squash.yaml',
  'changefeeds/include_states.yaml',
  'changefeeds/edge.yaml',
  'mutation/insert.yaml',
  'mutation/update.yaml',
  'mutation/delete.yaml',
  'mutation/replace.yaml',
  'mutation/atomic_get_set.yaml',
  'mutation/sync.yaml',
  'meta/dbs.yaml',
  'meta/table.yaml',
  'sindex/api.yaml',
  'sindex/status.yaml',
  'selection.yaml',
  'default.yaml',
  'match.yaml',
  'control.yaml',
  'datum/null.yaml',
  'datum/bool.yaml',
  'datum/number.yaml',
  'datum/string.yaml',
  'datum/array.yaml',
  'datum/object.yaml',
  'datum/uuid.yaml',
  'datum/binary.yaml',
  'datum/typeof.yaml',
  'math_logic/comparison.yaml',
  'math_logic/logic.yaml',
  'math_logic/add.yaml',
  'math_logic/sub.yaml',
  'times/api.yaml',
  'times/constructors.yaml',
  'times/time_arith.yaml',
  'transform/array.yaml',
  'transform/object.yaml',
  'transform/table.yaml',
  'transform/map.yaml',
  'aggregation.yaml',
  'range.yaml',
];

/** Every spec file for the JavaScript driver (files for one other driver — x.py.yaml, x.rb.yaml — excluded). */
function allSpecFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = path.join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.yaml')) {
        const lang = /\.([a-z]+)(_[a-z]+)?\.yaml$/.exec(name)?.[1];
        if (lang !== undefined && ['py', 'rb', 'js'].includes(lang) && lang !== 'js') continue;
        out.push(path.relative(dir, p).split(path.sep).join('/'));
      }
    }
  };
  walk(dir);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Command line

interface Options {
  server?: { host: string; port: number };
  files?: string[];
  all: boolean;
  verbose: boolean;
  dryRun: boolean;
  minPassRate?: number;
  timeoutMs: number;
  specDir: string;
  user: string;
  password: string;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { all: false, verbose: false, dryRun: false, timeoutMs: 5000, specDir: process.env.REQL_SPEC_DIR ?? DEFAULT_SPEC_DIR, user: 'admin', password: '' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--server': {
        const v = value();
        const m = /^(.*?)(?::(\d+))?$/.exec(v);
        o.server = { host: m?.[1] || '127.0.0.1', port: Number(m?.[2] ?? 28015) };
        break;
      }
      case '--files':
        o.files = value()
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);
        break;
      case '--all':
        o.all = true;
        break;
      case '--verbose':
      case '-v':
        o.verbose = true;
        break;
      case '--dry-run':
        o.dryRun = true;
        break;
      case '--min-pass-rate': {
        let x = Number(value());
        if (!Number.isFinite(x)) throw new Error('--min-pass-rate needs a number');
        if (x > 1) x /= 100;
        o.minPassRate = x;
        break;
      }
      case '--timeout':
        o.timeoutMs = Number(value()) * 1000;
        break;
      case '--spec-dir':
        o.specDir = path.resolve(value());
        break;
      case '--user':
        o.user = value();
        break;
      case '--password':
        o.password = value();
        break;
      case '--help':
      case '-h':
        console.log(
          'usage: npm run spec:reql -- [--server HOST:PORT] [--files a.yaml,b.yaml | --all] [--verbose] [--dry-run] [--min-pass-rate X] [--timeout SECONDS] [--spec-dir DIR] [--user U --password P]',
        );
        process.exit(0);
        break;
      default:
        throw new Error(`unknown option ${a}`);
    }
  }
  return o;
}

// ---------------------------------------------------------------------------------------------
// Small async helpers

class Timeout extends Error {
  override name = 'Timeout';
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_res, rej) => {
        timer = setTimeout(() => rej(new Timeout(`${what} timed out after ${ms / 1000}s`)), ms);
      }),
    ]);
  } finally {
    if (timer) clearTimeout(timer);
  }
}

const sleep = (ms: number) => new Promise<void>((res) => setTimeout(res, ms));

/** Reads a cursor a few items at a time, across tests, without losing an item to a timeout. */
class CursorReader {
  private pending: Promise<{ ok: true; value: unknown } | { ok: false; error: unknown }> | null = null;
  ended = false;
  constructor(readonly cursor: CursorLike) {}

  /** Reads up to n items (all when n is undefined), waiting at most ms in total. */
  async read(n: number | undefined, ms: number): Promise<{ items: unknown[]; timedOut: boolean; error?: unknown }> {
    const items: unknown[] = [];
    const deadline = Date.now() + ms;
    while (!this.ended && (n === undefined || items.length < n)) {
      if (this.pending === null) {
        this.pending = this.cursor.next().then(
          (value) => ({ ok: true as const, value }),
          (error: unknown) => ({ ok: false as const, error }),
        );
      }
      const left = deadline - Date.now();
      if (left <= 0) return { items, timedOut: true };
      let timer: NodeJS.Timeout | undefined;
      const res = await Promise.race([
        this.pending,
        new Promise<null>((r) => {
          timer = setTimeout(() => r(null), left);
        }),
      ]);
      if (timer) clearTimeout(timer);
      if (res === null) return { items, timedOut: true };
      this.pending = null;
      if (res.ok) {
        items.push(res.value);
        continue;
      }
      const err = res.error as RethinkDBErrorLike;
      this.ended = true;
      if (err?.msg === 'No more rows in the cursor.' || /No more rows in the cursor/.test(String((res.error as Error)?.message))) {
        return { items, timedOut: false };
      }
      return { items, timedOut: false, error: res.error };
    }
    return { items, timedOut: false };
  }
}

const readers = new WeakMap<object, CursorReader>();
function readerOf(c: CursorLike): CursorReader {
  let rd = readers.get(c);
  if (!rd) {
    rd = new CursorReader(c);
    readers.set(c, rd);
  }
  return rd;
}

// ---------------------------------------------------------------------------------------------
// Evaluation scope

type Scope = Record<string, unknown>;

/** Buffer as the spec's JS texts call it (`Buffer("\x00", 'binary')`, `Buffer(0)`), without the deprecated constructor. */
function bufferShim(): unknown {
  const f = (data: unknown, enc?: BufferEncoding) => {
    if (typeof data === 'number') return Buffer.alloc(data);
    if (typeof data === 'string') return Buffer.from(data, enc);
    return Buffer.from(data as Uint8Array);
  };
  return Object.assign(f, { from: Buffer.from.bind(Buffer), alloc: Buffer.alloc.bind(Buffer), isBuffer: Buffer.isBuffer.bind(Buffer), concat: Buffer.concat.bind(Buffer) });
}

function evaluate(js: string, scope: Scope): unknown {
  // sloppy-mode function so that `with` can put the scope's names in reach of the code
  const fn = new Function('__scope', `with (__scope) { return (\n${js}\n); }`) as (s: Scope) => unknown;
  return fn(scope);
}

// ---------------------------------------------------------------------------------------------
// Results

type Outcome = { status: 'pass' } | { status: 'fail'; why: string; got?: string } | { status: 'skip'; why: string };

interface FileResult {
  file: string;
  tests: number;
  passed: number;
  failed: number;
  skipped: number;
  /** the runner could not run the file at all */
  broken?: string;
}

// ---------------------------------------------------------------------------------------------
// Per-file runner

interface ServerTarget {
  host: string;
  port: number;
  user: string;
  password: string;
  /** checks the server answers; restarts it when it does not and can be restarted. True if restarted. */
  revive(): Promise<boolean>;
}

class FileRunner {
  private main!: ConnectionLike;
  private extraConns: ConnectionLike[] = [];
  private scope: Scope = Object.create(null) as Scope;
  /** names whose binding failed, and whether the server or the runner is to blame */
  private failedBindings = new Map<string, 'server' | 'runner'>();
  private openCursors: CursorLike[] = [];
  readonly out: string[] = [];

  constructor(
    readonly file: string,
    readonly spec: SpecFile,
    readonly target: ServerTarget,
    readonly opts: Options,
  ) {}

  private async connect(): Promise<ConnectionLike> {
    const conn = (await (rRaw.connect as AnyFn)({
      host: this.target.host,
      port: this.target.port,
      user: this.target.user,
      password: this.target.password,
      db: 'test',
      silent: true,
    })) as ConnectionLike;
    return conn;
  }

  private async recycleMain(): Promise<void> {
    const old = this.main;
    void old.close({ noreplyWait: false }).catch(() => undefined);
    this.main = await this.connect();
  }

  private runOn(conn: ConnectionLike, term: unknown, opts: Record<string, unknown>): Promise<unknown> {
    return (term as TermLike).run(conn, opts);
  }

  /** Resets the server to the harness's starting state for this file. */
  private async reset(): Promise<void> {
    const t = this.opts.timeoutMs * 4;
    const run = (q: unknown) => withTimeout(this.runOn(this.main, q, {}), t, 'reset');
    const dbs = (await run(rRaw.dbList())) as string[];
    for (const db of dbs) {
      if (db !== 'rethinkdb' && db !== 'test') await run(rRaw.dbDrop(db));
    }
    if (!dbs.includes('test')) await run(rRaw.dbCreate('test'));
    const tables = (await run((rRaw.db('test') as unknown as { tableList(): unknown }).tableList())) as string[];
    for (const tb of tables) await run((rRaw.db('test') as unknown as { tableDrop(n: string): unknown }).tableDrop(tb));
    try {
      await run((rRaw.db('rethinkdb') as unknown as { table(n: string): { delete(): unknown } }).table('_debug_scratch').delete());
    } catch {
      // a server without the scratch table: nothing to clear
    }
    for (const name of this.spec.tables) {
      await run((rRaw.db('test') as unknown as { tableCreate(n: string): unknown }).tableCreate(name));
    }
  }

  private buildScope(): void {
    const s = Object.create(null) as Scope;
    Object.assign(s, expectationHelpers());
    s.r = rSpec;
    const py = createPyRuntime(rSpec as unknown as { expr(v: unknown): unknown }, isTerm);
    s.$py = py;
    for (const name of PY_BUILTINS) s[name] = py[name];
    s.Buffer = bufferShim();
    s.fetch = (c: unknown, n?: number, timeoutSec?: number) => this.fetch(c, n, timeoutSec);
    s.wait = (sec: number) => sleep(sec * 1000).then(() => null);
    for (const name of this.spec.tables) {
      const tbl = wrapTerm((rRaw.db('test') as unknown as { table(n: string): unknown }).table(name));
      s[name] = tbl;
      s[mapVarName(name)] = tbl;
    }
    this.scope = s;
  }

  private async fetch(c: unknown, n: number | undefined, timeoutSec: number | undefined): Promise<unknown> {
    let cursor: unknown = c;
    if (isTerm(cursor)) cursor = await this.runOn(this.main, cursor, this.runOptions({}));
    if (!isCursor(cursor)) throw new TypeError('fetch() of something that is not a cursor');
    const ms = (timeoutSec ?? this.opts.timeoutMs / 1000) * 1000;
    const res = await readerOf(cursor).read(n, ms);
    if (res.error !== undefined) throw res.error;
    return res.items;
  }

  private runOptions(runopts: Record<string, string>): Record<string, unknown> {
    const o: Record<string, unknown> = { timeFormat: 'raw', binaryFormat: 'raw' };
    for (const [k, text] of Object.entries(runopts)) {
      o[snakeToCamel(k)] = evaluate(convertExpr(text, 'cd'), this.scope);
    }
    return o;
  }

  async run(): Promise<FileResult> {
    const res: FileResult = { file: this.file, tests: 0, passed: 0, failed: 0, skipped: 0 };
    for (const t of this.spec.tests) if (t.kind === 'query' && t.expected) res.tests++;
    try {
      try {
        this.main = await withTimeout(this.connect(), this.opts.timeoutMs, 'connect');
        await this.reset();
      } catch (e) {
        if (!(await this.target.revive())) throw e;
        this.main = await withTimeout(this.connect(), this.opts.timeoutMs, 'connect');
        await this.reset();
      }
    } catch (e) {
      res.broken = `setup failed: ${(e as Error).message}`;
      res.failed = res.tests;
      await this.closeAll();
      return res;
    }
    this.buildScope();
    try {
      for (const t of this.spec.tests) {
        const outcome = await this.runTest(t);
        if (outcome === null) continue;
        if (outcome.status === 'pass') res.passed++;
        else if (outcome.status === 'fail') res.failed++;
        else res.skipped++;
      }
    } finally {
      await this.cleanup();
    }
    return res;
  }

  private async cleanup(): Promise<void> {
    for (const c of this.openCursors) void c.close().catch(() => undefined);
    try {
      for (const name of this.spec.tables) {
        await withTimeout(this.runOn(this.main, (rRaw.db('test') as unknown as { tableDrop(n: string): unknown }).tableDrop(name), {}), this.opts.timeoutMs, 'cleanup').catch(
          () => undefined,
        );
      }
    } finally {
      await this.closeAll();
    }
  }

  private async closeAll(): Promise<void> {
    const all = [this.main, ...this.extraConns].filter(Boolean);
    await Promise.all(all.map((c) => withTimeout(c.close({ noreplyWait: false }), 2000, 'close').catch(() => undefined)));
    this.extraConns = [];
  }

  private note(kind: string, t: SpecTest, q: SpecText, lines: Array<[string, string]>): void {
    if (!this.opts.verbose) return;
    const head = `  ${kind} ${this.file}:${t.line} (#${t.index})`;
    const body = lines.map(([k, v]) => `      ${(k + ':').padEnd(10)}${v.replace(/\n/g, '\n' + ' '.repeat(16))}`);
    this.out.push([head, `      ${'query:'.padEnd(10)}${q.text.replace(/\n/g, ' ')}`, ...body].join('\n'));
  }

  /** Runs one test entry; null for entries that are not counted (defs, steps without expectation). */
  private async runTest(t: SpecTest): Promise<Outcome | null> {
    const counted = t.kind === 'query' && t.expected !== undefined;
    const outcomes: Outcome[] = [];
    for (const q of t.queries) {
      if (process.env.REQL_SPEC_TRACE) console.error(`trace ${this.file}:${t.line} ${q.text.replace(/\n/g, ' ')}`);
      const o = t.kind === 'def' ? await this.runDef(t, q) : await this.runQuery(t, q);
      if (counted) outcomes.push(o);
    }
    if (!counted) return null;
    if (outcomes.some((o) => o.status === 'fail')) return outcomes.find((o) => o.status === 'fail') ?? null;
    if (outcomes.some((o) => o.status === 'pass')) return { status: 'pass' };
    return outcomes[0] ?? { status: 'skip', why: 'no query' };
  }

  private convert(q: SpecText): Converted | ConvertError {
    try {
      return convertStatement(q.text, q.lang);
    } catch (e) {
      if (e instanceof ConvertError) return e;
      return new ConvertError(String(e));
    }
  }

  private async runDef(t: SpecTest, q: SpecText): Promise<Outcome> {
    const c = this.convert(q);
    if (c instanceof ConvertError) {
      this.note('SKIP-DEF', t, q, [['reason', `cannot convert: ${c.message}`]]);
      const name = /^\s*([A-Za-z_]\w*)\s*=/.exec(q.text)?.[1];
      if (name) this.failedBindings.set(mapVarName(name), 'runner');
      return { status: 'skip', why: c.message };
    }
    try {
      const v = evaluate(c.js, this.scope);
      if (c.assign) {
        this.scope[c.assign] = v;
        this.failedBindings.delete(c.assign);
      }
    } catch (e) {
      if (c.assign) this.failedBindings.set(c.assign, this.blame(e));
      this.note('DEF-ERROR', t, q, [['js', c.js], ['error', String((e as Error)?.message ?? e)]]);
    }
    return { status: 'pass' };
  }

  /** Who is to blame for an error raised while building a query: a failed earlier binding or the runner. */
  private blame(e: unknown): 'server' | 'runner' {
    const msg = String((e as Error)?.message ?? e);
    for (const [name, who] of this.failedBindings) {
      if (msg.includes(name)) return who;
    }
    return 'runner';
  }

  private async runQuery(t: SpecTest, q: SpecText): Promise<Outcome> {
    const counted = t.expected !== undefined;
    const rule = findSkip(this.file, t.line, q.text);
    /** a plain skip: the test runs for its effects but is not judged */
    const skip = rule && !rule.outOfScope ? rule : undefined;
    /** out of scope: judged, but a clear refusal by the server counts as skipped */
    const oos = rule?.outOfScope ? rule : undefined;
    const c = this.convert(q);

    // tests of the JavaScript driver's own checks say nothing about the server
    const driverSkip = t.expected ? driverCheckReason(t.expected.text) : undefined;

    if (c instanceof ConvertError) {
      const name = /^\s*([A-Za-z_]\w*)\s*=[^=]/.exec(q.text)?.[1];
      if (name) this.failedBindings.set(mapVarName(name), 'runner');
      const why = rule?.reason ?? `cannot convert: ${c.message}`;
      this.note('SKIP', t, q, [['reason', why]]);
      return { status: 'skip', why };
    }
    if (driverSkip !== undefined) {
      this.note('SKIP', t, q, [['reason', driverSkip]]);
      return { status: 'skip', why: driverSkip };
    }
    if (skip && skip.exec === false) {
      this.note('SKIP', t, q, [['reason', skip.reason]]);
      return { status: 'skip', why: skip.reason };
    }

    // build
    let built: unknown;
    try {
      built = evaluate(c.js, this.scope);
    } catch (e) {
      const who = this.blame(e);
      if (c.assign) this.failedBindings.set(c.assign, who);
      const msg = `${(e as Error)?.name ?? 'Error'}: ${String((e as Error)?.message ?? e)}`;
      if (rule) {
        this.note('SKIP', t, q, [['reason', rule.reason]]);
        return { status: 'skip', why: rule.reason };
      }
      if (who === 'server') {
        this.note('FAIL', t, q, [['js', c.js], ['why', `depends on an earlier result that failed: ${msg}`]]);
        return { status: 'fail', why: `depends on an earlier failed result: ${msg}` };
      }
      const why = e instanceof ConvertError ? `cannot convert: ${e.message}` : `runner/driver cannot build the query: ${msg}`;
      this.note('SKIP', t, q, [['js', c.js], ['reason', why]]);
      return { status: 'skip', why };
    }

    // run
    let runopts: Record<string, unknown>;
    try {
      runopts = this.runOptions(t.runopts);
    } catch (e) {
      const why = `cannot convert run options: ${String((e as Error)?.message ?? e)}`;
      this.note('SKIP', t, q, [['reason', why]]);
      return { status: 'skip', why };
    }
    const actual = await this.execute(built, runopts, c.assign !== undefined);
    if (c.assign) {
      if (isActualError(actual)) this.failedBindings.set(c.assign, actual.clientSide ? 'runner' : 'server');
      else {
        this.scope[c.assign] = actual;
        this.failedBindings.delete(c.assign);
      }
    }
    if (skip) {
      this.note('SKIP', t, q, [['reason', skip.reason]]);
      return { status: 'skip', why: skip.reason };
    }
    if (!counted || t.expected === undefined) {
      if (isActualError(actual)) this.note('STEP-ERROR', t, q, [['js', c.js], ['error', `${actual.type}: ${actual.message}`]]);
      return { status: 'pass' };
    }
    if (isActualError(actual) && actual.clientSide && actual.type !== 'driver:Timeout') {
      if (oos) {
        this.note('SKIP', t, q, [['reason', oos.reason]]);
        return { status: 'skip', why: oos.reason };
      }
      const why = `the driver refused the query: ${actual.type.replace('driver:', '')}: ${actual.message}`;
      this.note('SKIP', t, q, [['js', c.js], ['reason', why]]);
      return { status: 'skip', why };
    }

    // expectation
    let expected: unknown;
    try {
      const ej = convertExpr(t.expected.text, t.expected.lang);
      expected = evaluate(ej, this.scope);
      expected = await this.resolveTerms(expected, runopts);
    } catch (e) {
      const why = oos?.reason ?? `cannot evaluate the expectation: ${String((e as Error)?.message ?? e)}`;
      this.note('SKIP', t, q, [['expected', t.expected.text], ['reason', why]]);
      return { status: 'skip', why };
    }
    const precision = t.testopts.precision !== undefined ? Number(t.testopts.precision) : undefined;
    const cmp = compare(expected, actual, { precision });
    if (cmp.ok) return { status: 'pass' };
    const got = isActualError(actual) ? `${actual.type}: ${actual.message}` : show(actual, 2000);
    if (oos?.wholeFile) {
      const why = `${oos.reason}: ${cmp.why}`;
      this.note('SKIP', t, q, [['reason', why]]);
      return { status: 'skip', why };
    }
    if (isActualError(actual) && outOfScopeRefusal(actual.message)) {
      const why = `out of scope for the embedded server, refused clearly: ${actual.message}`;
      this.note('SKIP', t, q, [['reason', why]]);
      return { status: 'skip', why };
    }
    if (oos) {
      if (isActualError(actual) && isClearRefusal(actual.message)) {
        const why = `${oos.reason} (the server refuses it: ${actual.message})`;
        this.note('SKIP', t, q, [['reason', why]]);
        return { status: 'skip', why };
      }
      const why = `${oos.reason}, so it must be refused with a clear error, not answered wrongly: ${cmp.why}`;
      this.note('FAIL', t, q, [['js', c.js], ['expected', t.expected.text], ['got', got], ['why', why]]);
      return { status: 'fail', why, got };
    }
    this.note('FAIL', t, q, [
      ['js', c.js],
      ['expected', t.expected.text],
      ['got', got],
      ['why', cmp.why],
    ]);
    return { status: 'fail', why: cmp.why, got };
  }

  /** Replaces ReQL terms inside an expectation by their value on the server. */
  private async resolveTerms(x: unknown, runopts: Record<string, unknown>): Promise<unknown> {
    if (isTerm(x)) {
      const v = await withTimeout(this.runOn(this.main, x, runopts), this.opts.timeoutMs, 'expectation');
      return isCursor(v) ? (await readerOf(v).read(undefined, this.opts.timeoutMs)).items : v;
    }
    if (Array.isArray(x)) return Promise.all(x.map((v) => this.resolveTerms(v, runopts)));
    if (x instanceof PartialMatcher) return new PartialMatcher(await this.resolveTerms(x.value, runopts));
    if (x instanceof BagMatcher) return new BagMatcher((await this.resolveTerms(x.items, runopts)) as unknown[], x.partial);
    if (x instanceof ArrLenMatcher) return new ArrLenMatcher(x.length, await this.resolveTerms(x.of, runopts));
    if (x instanceof ErrMatcher) return x;
    if (typeof x === 'object' && x !== null && Object.getPrototypeOf(x) === Object.prototype) {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(x)) out[k] = await this.resolveTerms(v, runopts);
      return out;
    }
    return x;
  }

  /** Runs what a test built: a term, a cursor, a promise (fetch/wait) or a plain value. */
  private async execute(built: unknown, runopts: Record<string, unknown>, keepCursor: boolean): Promise<unknown> {
    const ms = this.opts.timeoutMs;
    try {
      if (built instanceof Promise) {
        try {
          return await withTimeout(built, ms * 4, 'fetch');
        } catch (e) {
          if (e instanceof Timeout) await this.afterTimeout(this.main);
          throw e;
        }
      }
      if (isTerm(built)) {
        let conn = this.main;
        if (keepCursor) {
          conn = await this.connect();
          this.extraConns.push(conn);
        }
        let v: unknown;
        try {
          v = await withTimeout(this.runOn(conn, built, runopts), ms, 'query');
        } catch (e) {
          if (e instanceof Timeout) await this.afterTimeout(conn);
          throw e;
        }
        if (isCursor(v)) {
          if (keepCursor) {
            this.openCursors.push(v);
            return v;
          }
          return await this.drain(v, ms);
        }
        return v;
      }
      if (isCursor(built)) return await this.drain(built, ms);
      return built;
    } catch (e) {
      if (e instanceof Timeout) return { kind: 'error', type: 'driver:Timeout', message: e.message, clientSide: true } satisfies ActualError;
      const err = classifyError(e);
      if (err.type === 'driver:ConnectionLost') await this.afterTimeout(this.main);
      return err;
    }
  }

  /** After a query timed out: drop its connection, and restart the server if it stopped answering. */
  private async afterTimeout(conn: ConnectionLike): Promise<void> {
    if (conn !== this.main) void conn.close({ noreplyWait: false }).catch(() => undefined);
    const restarted = await this.target.revive();
    if (restarted) {
      this.out.push(`  NOTE ${this.file}: the server stopped answering and was restarted; the rest of this file runs on an empty server`);
      this.openCursors = [];
    }
    if (restarted || conn === this.main) await this.recycleMain();
  }

  private async drain(c: CursorLike, ms: number): Promise<unknown> {
    const res = await readerOf(c).read(undefined, ms);
    if (res.error !== undefined) throw res.error;
    if (res.timedOut) {
      void c.close().catch(() => undefined);
      if (await this.target.revive()) {
        this.out.push(`  NOTE ${this.file}: the server stopped answering and was restarted; the rest of this file runs on an empty server`);
        this.openCursors = [];
        await this.recycleMain();
      }
      throw new Timeout(`reading the stream timed out after ${ms / 1000}s (${res.items.length} items read)`);
    }
    return res.items;
  }
}

// ---------------------------------------------------------------------------------------------
// Dry run: parse and convert, count

function dryRunFile(file: string, spec: SpecFile): { line: string; tests: number; skipped: number; problems: string[] } {
  let tests = 0;
  let variants = 0;
  let steps = 0;
  let defs = 0;
  let skipped = 0;
  const problems: string[] = [];
  for (const t of spec.tests) {
    if (t.kind === 'def') defs++;
    else if (t.expected) tests++;
    else steps++;
    if (t.kind === 'query' && t.expected) variants += t.queries.length;
    let entrySkipped = t.kind === 'query' && t.expected !== undefined;
    for (const q of t.queries) {
      const skip = findSkip(file, t.line, q.text);
      try {
        convertStatement(q.text, q.lang);
        if (!skip || skip.outOfScope) entrySkipped = false;
      } catch (e) {
        problems.push(`${file}:${t.line}: ${(e as Error).message} :: ${q.text.replace(/\n/g, ' ')}`);
      }
    }
    if (t.expected && driverCheckReason(t.expected.text) !== undefined) entrySkipped = true;
    if (t.expected) {
      try {
        convertExpr(t.expected.text, t.expected.lang);
      } catch (e) {
        problems.push(`${file}:${t.line}: expectation: ${(e as Error).message} :: ${t.expected.text.replace(/\n/g, ' ')}`);
        if (t.kind === 'query') entrySkipped = true;
      }
    }
    if (entrySkipped) skipped++;
  }
  return {
    line: `${file}: ${tests} tests (${variants} queries), ${defs} defs, ${steps} steps, tables [${spec.tables.join(' ')}]${skipped ? `, ${skipped} would be skipped` : ''}`,
    tests,
    skipped,
    problems,
  };
}

// ---------------------------------------------------------------------------------------------
// Main

interface EmbeddedServer {
  host: string;
  port: number;
  close(): Promise<void>;
}

async function startEmbeddedInProcess(): Promise<EmbeddedServer> {
  const modPath = path.join(REPO, 'src', 'reql', 'index.ts');
  if (!existsSync(modPath)) throw new Error(`${modPath} does not exist yet: use --server HOST:PORT or --dry-run`);
  const mod = (await import(pathToFileURL(modPath).href)) as {
    startReqlServer?: (o: { port?: number; host?: string; inMemory?: boolean }) => Promise<EmbeddedServer>;
  };
  if (typeof mod.startReqlServer !== 'function') throw new Error('src/reql/index.ts does not export startReqlServer');
  return mod.startReqlServer({ port: 0, host: '127.0.0.1', inMemory: true });
}

const READY = 'REQL-SPEC-SERVER-READY';

/**
 * The embedded server runs in a child process: a query that spins forever inside the server
 * must not stop the runner's own timers. A server that stops answering is killed and restarted.
 */
class EmbeddedChild {
  private child: ChildProcess | null = null;
  private log: string[] = [];
  host = '127.0.0.1';
  port = 0;
  restarts = 0;

  async start(): Promise<void> {
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--serve-embedded'], {
      cwd: REPO,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child = child;
    const keep = (buf: Buffer) => {
      this.log.push(...buf.toString().split('\n').filter(Boolean));
      if (this.log.length > 40) this.log.splice(0, this.log.length - 40);
    };
    child.stderr?.on('data', keep);
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        let acc = '';
        child.stdout?.on('data', (buf: Buffer) => {
          acc += buf.toString();
          const m = new RegExp(`${READY} (\\S+) (\\d+)`).exec(acc);
          if (m) {
            this.host = m[1];
            this.port = Number(m[2]);
            resolve();
          }
        });
        child.on('exit', (code) => reject(new Error(`embedded server exited (${code}) before it was ready:\n${this.log.join('\n')}`)));
      }),
      30000,
      'starting the embedded server',
    );
  }

  async alive(): Promise<boolean> {
    try {
      const conn = (await withTimeout(
        (rRaw.connect as AnyFn)({ host: this.host, port: this.port, user: 'admin', password: '', silent: true }) as Promise<ConnectionLike>,
        3000,
        'health check',
      )) as ConnectionLike;
      try {
        await withTimeout((rRaw.expr(1) as unknown as TermLike).run(conn), 3000, 'health check');
        return true;
      } finally {
        void conn.close({ noreplyWait: false }).catch(() => undefined);
      }
    } catch {
      return false;
    }
  }

  async revive(): Promise<boolean> {
    if (await this.alive()) return false;
    this.kill();
    this.restarts++;
    await this.start();
    return true;
  }

  kill(): void {
    if (this.child && this.child.exitCode === null) this.child.kill('SIGKILL');
    this.child = null;
  }
}

/** `--serve-embedded`: the child side. */
async function serveEmbedded(): Promise<void> {
  const server = await startEmbeddedInProcess();
  process.stdout.write(`${READY} ${server.host} ${server.port}\n`);
  // the parent holds our stdin: when it goes away, so do we
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
}

async function main(): Promise<number> {
  if (process.argv.includes('--serve-embedded')) {
    await serveEmbedded();
    return -1;
  }
  const opts = parseArgs(process.argv.slice(2));
  if (!existsSync(opts.specDir)) throw new Error(`spec folder ${opts.specDir} not found (use --spec-dir)`);
  const files = opts.files ?? (opts.all ? allSpecFiles(opts.specDir) : TIER1);

  // parse everything first: a file the reader cannot read is a runner failure
  const specs = new Map<string, SpecFile>();
  for (const f of files) {
    const p = path.join(opts.specDir, f);
    if (!existsSync(p)) throw new Error(`no such spec file: ${f}`);
    specs.set(f, readSpecFile(readFileSync(p, 'utf8')));
  }
  const countTests = (fs: string[]) =>
    fs.reduce((n, f) => {
      const s = specs.get(f) ?? readSpecFile(readFileSync(path.join(opts.specDir, f), 'utf8'));
      return n + s.tests.filter((t) => t.kind === 'query' && t.expected).length;
    }, 0);
  const tier1Count = countTests(TIER1);
  const selectedCount = countTests(files);
  console.log(`reql-spec: ${tier1Count} Tier 1 tests (js/cd query with an expectation) in ${TIER1.length} files; running ${selectedCount} tests from ${files.length} files`);

  if (opts.dryRun) {
    let total = 0;
    let skipped = 0;
    const problems: string[] = [];
    for (const f of files) {
      const d = dryRunFile(f, specs.get(f) as SpecFile);
      console.log(d.line);
      total += d.tests;
      skipped += d.skipped;
      problems.push(...d.problems);
    }
    if (opts.verbose) for (const p of problems) console.log(`  unconvertible: ${p}`);
    else if (problems.length) console.log(`(${problems.length} texts cannot be converted; --verbose lists them)`);
    console.log(`reql-spec dry run: ${total} tests parsed in ${files.length} files, ${skipped} would be skipped`);
    return 0;
  }

  installErrorHook();
  let child: EmbeddedChild | undefined;
  let target: ServerTarget;
  if (opts.server) {
    const remote = { ...opts.server, user: opts.user, password: opts.password, revive: async () => false };
    target = remote;
    console.log(`reql-spec: against ${target.host}:${target.port} (its databases other than rethinkdb and test are dropped)`);
  } else {
    const existsIndex = existsSync(path.join(REPO, 'src', 'reql', 'index.ts'));
    if (!existsIndex) throw new Error('src/reql/index.ts does not exist yet: use --server HOST:PORT or --dry-run');
    const c = new EmbeddedChild();
    child = c;
    await c.start();
    target = {
      get host() {
        return c.host;
      },
      get port() {
        return c.port;
      },
      user: 'admin',
      password: '',
      revive: () => c.revive(),
    };
    console.log(`reql-spec: against the embedded server (child process) on ${target.host}:${target.port}`);
  }

  let passed = 0;
  let failed = 0;
  let skipped = 0;
  try {
    for (const f of files) {
      const spec = specs.get(f) as SpecFile;
      const runner = new FileRunner(f, spec, target, opts);
      const t0 = Date.now();
      const res = await runner.run();
      passed += res.passed;
      failed += res.failed;
      skipped += res.skipped;
      const secs = ((Date.now() - t0) / 1000).toFixed(1);
      console.log(`${f}: ${res.tests} tests, ${res.passed} passed, ${res.failed} failed, ${res.skipped} skipped (${secs}s)${res.broken ? ` — ${res.broken}` : ''}`);
      for (const line of runner.out) console.log(line);
    }
  } finally {
    if (child) {
      if (child.restarts > 0) console.log(`reql-spec: the embedded server was restarted ${child.restarts} times after it stopped answering`);
      child.kill();
    }
  }
  console.log(`reql-spec: ${passed} passed, ${failed} failed, ${skipped} skipped`);
  if (opts.minPassRate !== undefined) {
    const rate = passed + failed === 0 ? 1 : passed / (passed + failed);
    if (rate < opts.minPassRate) return 1;
  }
  return 0;
}

main().then(
  (code) => {
    if (code < 0) return; // serving
    // open sockets of a misbehaving server must not keep the process alive
    setTimeout(() => process.exit(code), 50).unref();
    process.exitCode = code;
  },
  (e: unknown) => {
    console.error(`reql-spec: runner error: ${(e as Error)?.stack ?? String(e)}`);
    process.exit(2);
  },
);
