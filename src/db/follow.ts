// A changefeed followed for the life of a process: opened, read, and opened again with
// backoff when it fails (a dropped connection, a new primary). `ready` resolves once it is
// open the first time; `onReopen` says when it came back, so that a caller can catch up on
// what happened meanwhile. `stop` closes it, even one still being opened.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';

export interface Feed<T> extends AsyncIterable<T> {
  close(): Promise<void>;
}

export interface Followed {
  ready: Promise<void>;
  stop(): Promise<void>;
}

export function follow<T>(what: string, open: () => Promise<Feed<T>>, each: (item: T) => void, opts: { log: Logger; onReopen?: () => void }): Followed {
  let stopped = false;
  let feed: Feed<T> | undefined;
  let opened: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (opened = resolve));
  const loop = (async () => {
    let attempt = 0;
    let first = true;
    while (!stopped) {
      try {
        const f = await open();
        feed = f;
        // Stopped while it was opening: nobody else will close it.
        if (stopped) {
          await f.close().catch(() => undefined);
          break;
        }
        if (first) opened();
        else opts.onReopen?.();
        first = false;
        attempt = 0;
        for await (const item of f) each(item);
      } catch (e) {
        if (!stopped) opts.log.warn({ err: String(e) }, `the ${what} feed failed; reopening`);
      }
      if (stopped) break;
      await sleep(Math.min(5000, 100 * 2 ** ++attempt));
    }
  })();
  return {
    ready,
    async stop() {
      stopped = true;
      opened();
      await feed?.close().catch(() => undefined);
      // A feed caught in a reconnect may not end when asked: the process goes on stopping.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([loop, new Promise((resolve) => (timer = setTimeout(resolve, 2000)))]);
      clearTimeout(timer);
    },
  };
}
