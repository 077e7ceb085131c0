// Progress of a long operator command, on standard error: a bar redrawn in place on a
// terminal, otherwise a line every few seconds (a cron job's log). Counts only, never data.

export interface Progress {
  /** `rows` of about `total` done, `bytes` of JSON */
  update(rows: number, bytes: number): void;
  /** the phase is over: the bar's last state stays on its line */
  done(): void;
}

export const mb = (bytes: number) => (bytes / 1e6).toFixed(1);
const count = (n: number) => n.toLocaleString('en-US');

export function progress(label: string, total: number, out: NodeJS.WriteStream = process.stderr): Progress {
  const tty = out.isTTY === true;
  const every = tty ? 200 : 5000;
  const start = performance.now();
  let last = tty ? 0 : start;
  let rows = 0;
  let bytes = 0;
  const line = () => {
    const s = (performance.now() - start) / 1000;
    const rate = s > 0 ? `, ${count(Math.round(rows / s))} rows/s` : '';
    // A total of 0 is not known (an archive is checked before its manifest is read).
    const pct = Math.min(100, Math.floor((rows / Math.max(total, 1)) * 100));
    const done = total > 0 ? `${count(rows)} of ${count(total)} rows (${pct}%)` : `${count(rows)} rows`;
    if (!tty) return `${label}: ${done}, ${mb(bytes)} MB${rate}\n`;
    const width = 30;
    const filled = Math.round((pct / 100) * width);
    const bar = total > 0 ? `[${'#'.repeat(filled)}${' '.repeat(width - filled)}] ` : '';
    return `\r${label} ${bar}${done}, ${mb(bytes)} MB${rate}\x1b[K`;
  };
  return {
    update(r, b) {
      rows = r;
      bytes = b;
      const now = performance.now();
      if (now - last < every) return;
      last = now;
      out.write(line());
    },
    done() {
      if (tty) out.write(`${line()}\n`);
    },
  };
}
