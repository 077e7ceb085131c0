// Numeric constants of RethinkDB's wire protocol (ql2.proto), as documented for driver authors.
export const VERSION_V1_0 = 0x34c2bdc3;

export const QueryType = { START: 1, CONTINUE: 2, STOP: 3, NOREPLY_WAIT: 4, SERVER_INFO: 5 } as const;

export const ResponseType = {
  SUCCESS_ATOM: 1,
  SUCCESS_SEQUENCE: 2,
  SUCCESS_PARTIAL: 3,
  WAIT_COMPLETE: 4,
  SERVER_INFO: 5,
  CLIENT_ERROR: 16,
  COMPILE_ERROR: 17,
  RUNTIME_ERROR: 18,
} as const;
export type ResponseTypeCode = (typeof ResponseType)[keyof typeof ResponseType];

export const ErrorType = {
  INTERNAL: 1000000,
  RESOURCE_LIMIT: 2000000,
  QUERY_LOGIC: 3000000,
  NON_EXISTENCE: 3100000,
  OP_FAILED: 4100000,
  OP_INDETERMINATE: 4200000,
  USER: 5000000,
  PERMISSION_ERROR: 6000000,
} as const;
export type ErrorTypeCode = (typeof ErrorType)[keyof typeof ErrorType];

export const ResponseNote = {
  SEQUENCE_FEED: 1,
  ATOM_FEED: 2,
  ORDER_BY_LIMIT_FEED: 3,
  UNIONED_FEED: 4,
  INCLUDES_STATES: 5,
} as const;
