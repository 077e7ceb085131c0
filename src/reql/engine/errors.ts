import { ErrorType, ResponseType } from '../proto.js';
import { ReqlError } from './api.js';

export { ReqlError };

const runtime = (type: (typeof ErrorType)[keyof typeof ErrorType]) => (msg: string) =>
  new ReqlError(msg, ResponseType.RUNTIME_ERROR, type);

export const compileError = (msg: string) => new ReqlError(msg, ResponseType.COMPILE_ERROR, undefined);
export const clientError = (msg: string) => new ReqlError(msg, ResponseType.CLIENT_ERROR, undefined);
export const logicError = runtime(ErrorType.QUERY_LOGIC);
export const nonExistence = runtime(ErrorType.NON_EXISTENCE);
export const opFailed = runtime(ErrorType.OP_FAILED);
export const resourceLimit = runtime(ErrorType.RESOURCE_LIMIT);
export const internalError = runtime(ErrorType.INTERNAL);
export const userError = runtime(ErrorType.USER);

export function isNonExistence(e: unknown): e is ReqlError {
  return e instanceof ReqlError && e.errorType === ErrorType.NON_EXISTENCE;
}

/** The error for an index a table does not have (the table as its database and name). */
export function opIndexMissing(table: { db: string; name: string }, name: string): Error {
  return opFailed(`Index \`${name}\` was not found on table \`${table.db}.${table.name}\`.`);
}
