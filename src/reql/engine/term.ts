// Raw JSON terms → a checked tree. Shape and arity errors are compile errors, raised before
// anything runs, as RethinkDB does.
import type { Datum } from './datum.js';
import { compileError } from './errors.js';
import { T, TERM_NAMES } from './termtypes.js';

export interface Term {
  type: number;
  args: Term[];
  optargs: Record<string, Term>;
  /** for DATUM */
  datum?: Datum;
}

export interface Signature {
  min: number;
  max: number; // Infinity for variadic
  optargs?: readonly string[];
}

const MAX_DEPTH = 1000;

export function parseTerm(raw: unknown, sigs: ReadonlyMap<number, Signature>, depth = 0): Term {
  if (depth > MAX_DEPTH) throw compileError('Query nested too deeply.');
  if (raw === null || typeof raw !== 'object') {
    if (typeof raw === 'number' && !Number.isFinite(raw)) throw compileError('Non-finite number in query.');
    return { type: T.DATUM, args: [], optargs: {}, datum: raw as Datum };
  }
  if (!Array.isArray(raw)) {
    const optargs: Record<string, Term> = {};
    for (const [k, v] of Object.entries(raw)) optargs[k] = parseTerm(v, sigs, depth + 1);
    return { type: T.MAKE_OBJ, args: [], optargs };
  }
  const [type, args = [], opts = {}] = raw as [unknown, unknown, unknown];
  if (typeof type !== 'number' || !Number.isInteger(type)) throw compileError(`Expected a term type, got ${JSON.stringify(type)}.`);
  if (!Array.isArray(args)) throw compileError('Expected an array of arguments.');
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw compileError('Expected an object of optional arguments.');
  if (type === T.DATUM) {
    if (args.length !== 1) throw compileError('DATUM takes exactly one argument.');
    return { type, args: [], optargs: {}, datum: args[0] as Datum };
  }
  const name = TERM_NAMES[type];
  if (name === undefined) throw compileError(`Unrecognized TermType: ${type}.`);
  const sig = sigs.get(type);
  if (!sig) throw compileError(`Term \`${name}\` is not supported by the embedded ReQL server.`);
  const parsedArgs = args.map((a) => parseTerm(a, sigs, depth + 1));
  const optargs: Record<string, Term> = {};
  for (const [k, v] of Object.entries(opts)) {
    if (sig.optargs && !sig.optargs.includes(k)) throw compileError(`Unrecognized optional argument \`${k}\`.`);
    optargs[k] = parseTerm(v, sigs, depth + 1);
  }
  // ARGS can splice any number of arguments in at run time, so arity is checked then.
  if (!parsedArgs.some((a) => a.type === T.ARGS)) checkArity(sig, parsedArgs.length);
  return { type, args: parsedArgs, optargs };
}

export function checkArity(sig: Signature, n: number): void {
  const { min, max } = sig;
  if (n >= min && n <= max) return;
  const plural = (k: number) => (k === 1 ? 'argument' : 'arguments');
  let expected: string;
  if (min === max) expected = `${min} ${plural(min)}`;
  else if (max === Infinity) expected = `${min} or more arguments`;
  else if (max === min + 1) expected = `${min} or ${max} arguments`;
  else expected = `between ${min} and ${max} arguments`;
  throw compileError(`Expected ${expected} but found ${n}.`);
}
