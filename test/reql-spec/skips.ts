// The one list of spec tests the runner does not count as passed or failed, each with its reason.
//
// A skip is for a test the runner cannot judge fairly: a feature out of scope for the embedded
// server, a behaviour of the JavaScript driver rather than the server, or a query rethinkdb-ts
// cannot express. A server bug is never a reason to skip: it must show up as a failure.
//
// Matching: `file` is the spec path relative to the spec folder ('*' for every file); then
// either `line` (the line where the test entry starts), `query` (a substring of, or a pattern
// over, the query text as written in the file), or both.
//
// `outOfScope` rules still run the test: it passes if the server gives the expected answer (a
// real RethinkDB does); it is skipped if the server refuses the query with an error saying the
// term is not supported; any other answer is a failure, because the README requires an
// unsupported feature to fail clearly, never with a wrong answer.
// Other rules skip the test but still send its query (later tests may depend on its effects),
// unless `exec: false`.
//
// Tests are also skipped, without a rule here, when:
// - the expectation is a JavaScript driver error (ReqlDriverCompileError, ReqlDriverError,
//   TypeError): such a test checks the driver, not the server;
// - the text cannot be converted (the reason names the construct);
// - rethinkdb-ts refuses to build or send the query.

export interface SkipRule {
  /** spec path, '*' for all, or a prefix ending in '*' ('geo/*') */
  file: string;
  line?: number;
  query?: string | RegExp;
  reason: string;
  /** run it; pass on the expected answer, skip on a clear "not supported" error, fail otherwise */
  outOfScope?: boolean;
  /** a whole file about an out-of-scope feature: run it; pass on the expected answer, skip otherwise
   * (its later tests fail in cascade once the feature is refused) */
  wholeFile?: boolean;
  /** false: do not even send the query */
  exec?: boolean;
}

const GEO = /\br\.(point|line|polygon|circle|geojson)\(|get_?[iI]ntersecting|get_?[nN]earest|\.(distance|intersects|includes|fill|to_?[gG]eo_?[jJ]son|polygon_?[sS]ub)\(|\bgeo\s*[:=]\s*[Tt]rue/;

export const SKIPS: SkipRule[] = [
  // --- out of scope for the embedded server (README of the spec folder)
  { file: '*', query: /\br\.js\(/, reason: 'r.js is out of scope for the embedded server', outOfScope: true },
  { file: '*', query: /\br\.http\(/, reason: 'r.http is out of scope for the embedded server', outOfScope: true },
  { file: '*', query: GEO, reason: 'geospatial terms are out of scope for the embedded server', outOfScope: true },
  { file: '*', query: /\.grant\(|\br\.grant\(/, reason: 'users and permissions are out of scope for the embedded server', outOfScope: true },
  { file: 'geo/*', reason: 'a file about geospatial terms, out of scope for the embedded server', outOfScope: true, wholeFile: true },
  { file: 'meta/grant.yaml', reason: 'a file about users and permissions, out of scope for the embedded server', outOfScope: true, wholeFile: true },

  // --- behaviours of the JavaScript driver, not of the server
  {
    file: 'datum/object.yaml',
    query: /^r\.expr\(\{\}, ("foo"|NaN)\)$/,
    reason: "the JS driver's own check of r.expr's second argument (rethinkdb-ts reads it as a nesting depth)",
  },
  { file: 'datum/object.yaml', query: 'undefined', reason: "the JS driver's own check for undefined object fields (rethinkdb-ts drops them)" },
  { file: 'regression/763.js.yaml', line: 4, reason: "the JS driver's own argument count check for indexCreate (the file's subject)" },
  { file: 'regression/763.js.yaml', line: 7, reason: "the JS driver's own argument count check for indexCreate (the file's subject)" },
];

function queryMatches(rule: SkipRule, query: string): boolean {
  if (rule.query === undefined) return true;
  if (typeof rule.query === 'string') return query.includes(rule.query);
  return rule.query.test(query);
}

function fileMatches(rule: SkipRule, file: string): boolean {
  if (rule.file === '*' || rule.file === file) return true;
  return rule.file.endsWith('*') && file.startsWith(rule.file.slice(0, -1));
}

/** The rule that applies to this test, if any. */
export function findSkip(file: string, line: number, query: string): SkipRule | undefined {
  return SKIPS.find(
    (rule) =>
      fileMatches(rule, file) &&
      (rule.line === undefined || rule.line === line) &&
      queryMatches(rule, query.trim()),
  );
}

/** Does an error message say the server does not support the term (the README's clear refusal)? */
export function isClearRefusal(message: string): boolean {
  return /not supported|unsupported|not implemented|out of scope/i.test(message);
}

/** Terms and features the README puts out of scope, as error messages name them. */
const OUT_OF_SCOPE_NAMES =
  /\b(JAVASCRIPT|HTTP|GRANT|POINT|LINE|POLYGON|CIRCLE|GEOJSON|TO_GEOJSON|GET_INTERSECTING|GET_NEAREST|INCLUDES|INTERSECTS|DISTANCE|FILL|POLYGON_SUB|r\.js|r\.http|geospatial|geometry|users?|permissions?)\b/i;

/**
 * A clear refusal of an out-of-scope feature, even when the query text does not show it (the term
 * came from a definition): such a failure is not a conformance failure.
 */
export function outOfScopeRefusal(message: string): boolean {
  return isClearRefusal(message) && OUT_OF_SCOPE_NAMES.test(message);
}

/**
 * Expectations that are checks the JavaScript driver makes itself, not the server: its error
 * classes, and its argument count messages, which count arguments "not including options" (the
 * server counts every argument, the target included).
 */
export function driverCheckReason(expectedText: string): string | undefined {
  if (/^\s*err(_regex)?\(\s*['"](ReqlDriverCompileError|ReqlDriverError|TypeError)['"]/.test(expectedText)) {
    return 'tests the JavaScript driver, not the server';
  }
  if (/^\s*err\(.*\(not including options\)/s.test(expectedText)) {
    return "the JS driver's own argument count check (the server words and counts it differently)";
  }
  return undefined;
}
