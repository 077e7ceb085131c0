// Times: {$reql_type$:'TIME', epoch_time (seconds, millisecond precision), timezone '+HH:MM'}.
// Timezones are fixed offsets, so calendar fields are UTC fields of the shifted instant.
import { isTime, typeName, type Datum, type DatumObject } from '../datum.js';
import { logicError } from '../errors.js';
import { OpFamily, num, str, type Ctx } from '../eval.js';
import type { Term } from '../term.js';
import { T } from '../termtypes.js';

/** The time terms, joined into the engine's table by registry.ts. */
export const timeOps = new OpFamily('time');
const def = timeOps.def;

type Time = { $reql_type$: 'TIME'; epoch_time: number; timezone: string };

const roundMs = (s: number) => Math.round(s * 1000) / 1000;

export function makeTime(epoch: number, timezone = '+00:00'): Time {
  if (!Number.isFinite(epoch)) throw logicError('Non-finite number in time.');
  return { $reql_type$: 'TIME', epoch_time: roundMs(epoch), timezone };
}

function timeArg(v: Datum): Time {
  if (!isTime(v)) throw logicError(`Expected type PTYPE<TIME> but found ${typeName(v)}.`);
  return v as Time;
}

/** '+HH:MM', '-HH', '+HHMM' or 'Z' → normalised '+HH:MM' and its offset in seconds. */
export function parseTimezone(tz: string): { name: string; offset: number } {
  const m = /^(?:(Z)|([+-])(\d{2})(?::?(\d{2}))?)$/.exec(tz);
  if (!m) throw logicError(`Timezone \`${tz}\` does not start with \`-\` or \`+\`.`);
  if (m[1]) return { name: '+00:00', offset: 0 };
  const h = Number(m[3]);
  const mi = Number(m[4] ?? 0);
  if (h > 23 || mi > 59) throw logicError(`Minutes out of range in \`${tz}\`.`);
  const sign = m[2] === '-' ? -1 : 1;
  const name = `${m[2]}${m[3]}:${String(mi).padStart(2, '0')}`;
  return { name: name === '-00:00' ? '+00:00' : name, offset: sign * (h * 3600 + mi * 60) };
}

/** The calendar view of a time in its own timezone. */
function fields(t: Time) {
  const { offset } = parseTimezone(t.timezone);
  const local = t.epoch_time + offset;
  const d = new Date(Math.round(local * 1000));
  const year = d.getUTCFullYear();
  return { d, local, year };
}

function checkYear(year: number): void {
  if (year < 1400 || year > 10000) throw logicError('Error in time logic: Year is out of valid range: 1400..10000.');
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

export function toIso8601(t: Time): string {
  const { d, year } = fields(t);
  if (year < 0 || year > 9999) throw logicError(`Year \`${year}\` out of valid ISO 8601 range [0, 9999].`);
  const ms = d.getUTCMilliseconds();
  const frac = ms ? `.${pad(ms, 3)}` : '';
  return `${pad(year, 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}${frac}${t.timezone}`;
}

function parseIso8601(s: string, defaultTz: string | undefined): Time {
  const m =
    /^([+-]?\d{4})-?(\d{2})-?(\d{2})(?:[T ](\d{2})(?::?(\d{2})(?::?(\d{2})(?:[.,](\d+))?)?)?)?(Z|[+-]\d{2}(?::?\d{2})?)?$/.exec(s);
  if (!m) throw logicError(`Invalid date string \`${s}\`.`);
  const [, y, mo, d, h = '0', mi = '0', sec = '0', frac = '', tzText] = m;
  const tz = tzText ?? defaultTz;
  if (tz === undefined) throw logicError('ISO 8601 string has no time zone, and no default time zone was provided.');
  const { name, offset } = parseTimezone(tz);
  const utc = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(sec));
  if (Number.isNaN(utc) || Number(mo) > 12 || Number(d) > 31 || Number(h) > 24 || Number(mi) > 59 || Number(sec) > 60) {
    throw logicError(`Invalid date string \`${s}\`.`);
  }
  return makeTime(utc / 1000 + (frac ? Number(`0.${frac}`) : 0) - offset, name);
}

def(T.EPOCH_TIME, 1, 1, (c, t) => makeTime(num(c.datum(t.args[0]))));

def(T.ISO8601, 1, 1, (c, t) => {
  const dflt = c.opt(t, 'default_timezone');
  return parseIso8601(str(c.datum(t.args[0])), dflt === undefined ? undefined : str(dflt));
}, ['default_timezone']);

def(T.TIME, 4, 7, (c, t) => {
  const a = c.dargs(t);
  if (a.length !== 4 && a.length !== 7) throw logicError(`Got ${a.length} arguments to TIME (expected 4 or 7).`);
  const tz = parseTimezone(str(a[a.length - 1]));
  const [y, mo, d, h = 0, mi = 0, s = 0] = a.slice(0, -1).map(num);
  const whole = Math.floor(s);
  const utc = Date.UTC(y, mo - 1, d, h, mi, whole) / 1000 + (s - whole);
  checkYear(y);
  return makeTime(utc - tz.offset, tz.name);
});

def(T.TO_ISO8601, 1, 1, (c, t) => toIso8601(timeArg(c.datum(t.args[0]))));
def(T.TO_EPOCH_TIME, 1, 1, (c, t) => timeArg(c.datum(t.args[0])).epoch_time);
def(T.TIMEZONE, 1, 1, (c, t) => timeArg(c.datum(t.args[0])).timezone);
def(T.IN_TIMEZONE, 2, 2, (c, t) => {
  const tm = timeArg(c.datum(t.args[0]));
  return makeTime(tm.epoch_time, parseTimezone(str(c.datum(t.args[1]))).name);
});

def(T.DURING, 3, 3, (c, t) => {
  const [tm, lo, hi] = c.dargs(t).map(timeArg);
  const leftOpen = c.opt(t, 'left_bound') === 'open';
  const rightClosed = c.opt(t, 'right_bound') === 'closed';
  const x = tm.epoch_time;
  const okLo = leftOpen ? x > lo.epoch_time : x >= lo.epoch_time;
  const okHi = rightClosed ? x <= hi.epoch_time : x < hi.epoch_time;
  return okLo && okHi;
}, ['left_bound', 'right_bound']);

function field(term: number, get: (f: ReturnType<typeof fields>, t: Time) => Datum): void {
  def(term, 1, 1, (c: Ctx, t: Term) => {
    const tm = timeArg(c.datum(t.args[0]));
    const f = fields(tm);
    checkYear(f.year);
    return get(f, tm);
  });
}
field(T.YEAR, (f) => f.year);
field(T.MONTH, (f) => f.d.getUTCMonth() + 1);
field(T.DAY, (f) => f.d.getUTCDate());
field(T.DAY_OF_WEEK, (f) => f.d.getUTCDay() || 7);
field(T.DAY_OF_YEAR, (f) => Math.floor((Date.UTC(f.year, f.d.getUTCMonth(), f.d.getUTCDate()) - Date.UTC(f.year, 0, 1)) / 86_400_000) + 1);
field(T.HOURS, (f) => f.d.getUTCHours());
field(T.MINUTES, (f) => f.d.getUTCMinutes());
field(T.SECONDS, (f) => roundMs(f.d.getUTCSeconds() + f.d.getUTCMilliseconds() / 1000));
field(T.TIME_OF_DAY, (f) => roundMs(f.d.getUTCHours() * 3600 + f.d.getUTCMinutes() * 60 + f.d.getUTCSeconds() + f.d.getUTCMilliseconds() / 1000));
field(T.DATE, (f, tm) => {
  const midnight = Date.UTC(f.year, f.d.getUTCMonth(), f.d.getUTCDate()) / 1000;
  return makeTime(midnight - parseTimezone(tm.timezone).offset, tm.timezone) as unknown as DatumObject;
});

const constants: Array<[number, number]> = [
  [T.MONDAY, 1], [T.TUESDAY, 2], [T.WEDNESDAY, 3], [T.THURSDAY, 4], [T.FRIDAY, 5], [T.SATURDAY, 6], [T.SUNDAY, 7],
  [T.JANUARY, 1], [T.FEBRUARY, 2], [T.MARCH, 3], [T.APRIL, 4], [T.MAY, 5], [T.JUNE, 6],
  [T.JULY, 7], [T.AUGUST, 8], [T.SEPTEMBER, 9], [T.OCTOBER, 10], [T.NOVEMBER, 11], [T.DECEMBER, 12],
];
for (const [term, value] of constants) def(term, 0, 0, () => value);
