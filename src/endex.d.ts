// endex ships no types; this is the part of its API we use.
declare module 'endex' {
  interface Endex {
    db(name: string): Endex;
    table(name: string, opts?: Record<string, unknown>): Endex;
    index(name: string, fn?: unknown, opts?: Record<string, unknown>): Endex;
    run(conn: unknown): Promise<unknown>;
  }
  function endex(opts?: { r?: unknown }): Endex;
  export default endex;
}
