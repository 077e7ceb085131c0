// RethinkDB's JSON reader and lone UTF-16 surrogates. A driver serialises a lone surrogate as
// a `\uD800`-style escape (JSON.stringify does). RethinkDB 2.4 refuses a query holding a high
// surrogate escape that no low one follows ("Client is buggy (failed to deserialize query)."),
// and stores a lone low surrogate as the three bytes of its CESU-8 form, which read back as
// three U+FFFD. The embedded server does the same, so that an app tested on it meets the same
// refusals as in production.

const HIGH = /^[dD][89abAB][0-9a-fA-F]{2}$/;
const LOW = /^[dD][c-fC-F][0-9a-fA-F]{2}$/;

export type SurrogateCheck = { ok: true; text: string } | { ok: false };

/** Checks (and for lone low surrogates, rewrites) the escapes of a query's JSON text. */
export function checkSurrogates(json: string): SurrogateCheck {
  // The common case: no \uD8xx..\uDFxx escape at all.
  if (!/\\u[dD][89a-fA-F]/.test(json)) return { ok: true, text: json };
  let out = '';
  let copied = 0;
  let i = json.indexOf('\\', 0);
  while (i >= 0) {
    // An escape starts at a backslash; `\\` is an escaped backslash, not the start of `\u`.
    const next = json[i + 1];
    if (next !== 'u') {
      i = json.indexOf('\\', i + 2);
      continue;
    }
    const hex = json.slice(i + 2, i + 6);
    if (HIGH.test(hex)) {
      const low = json.slice(i + 6, i + 8) === '\\u' ? json.slice(i + 8, i + 12) : '';
      if (!LOW.test(low)) return { ok: false };
      i = json.indexOf('\\', i + 12);
      continue;
    }
    if (LOW.test(hex)) {
      out += json.slice(copied, i) + '\ufffd\ufffd\ufffd';
      copied = i + 6;
    }
    i = json.indexOf('\\', i + 6);
  }
  return { ok: true, text: copied === 0 ? json : out + json.slice(copied) };
}
