// The embedded ReQL server: a RethinkDB-compatible server in-process, reached over the wire.
// It knows nothing of the chat application.
import { createEngine } from './engine/index.js';
import type { LoadStats } from './storage/catalog.js';
import { startWireServer, type UnkindOptions } from './wire/server.js';

export type { LoadStats, UnkindOptions };

export interface ReqlServerOptions {
  /** 0 (default) picks a free port */
  port?: number;
  /** default 127.0.0.1: loopback unless told otherwise */
  host?: string;
  /** data directory; when absent (or inMemory) nothing is written to disk */
  dataDir?: string;
  inMemory?: boolean;
  /** the admin user's password (default empty, as RethinkDB's) */
  password?: string;
  onWarn?: (msg: string) => void;
  /** tests only: clock skew and late commits, as on a real cluster (see UnkindOptions) */
  unkind?: UnkindOptions;
  /** tests only: every log write reaches the disk this many ms late */
  slowDiskMs?: number;
  /** tests only: writes after the last snapshot before the log is compacted (default 50,000) */
  compactMinRows?: number;
}

export interface ReqlServer {
  host: string;
  port: number;
  stats(): { connections: number; openFeeds: number };
  /** what the server read from its data directory when it started */
  loaded: LoadStats;
  /** tests only: every write fails for `ms` (as while a RethinkDB table has no primary) */
  refuseWrites(ms: number): void;
  close(): Promise<void>;
}

export async function startReqlServer(opts: ReqlServerOptions = {}): Promise<ReqlServer> {
  const engine = await createEngine({ dataDir: opts.inMemory ? undefined : opts.dataDir, onWarn: opts.onWarn, slowDiskMs: opts.slowDiskMs, compactMinRows: opts.compactMinRows });
  const wire = await startWireServer({ engine, host: opts.host ?? '127.0.0.1', port: opts.port ?? 0, password: opts.password ?? '', unkind: opts.unkind });
  engine.listening(wire.host, wire.port);
  return {
    host: wire.host,
    port: wire.port,
    stats: () => ({ connections: wire.connectionCount(), openFeeds: engine.stats().openFeeds }),
    loaded: engine.stats().loaded,
    refuseWrites: (ms) => wire.refuseWrites(ms),
    async close() {
      await wire.close();
      await engine.close();
    },
  };
}
