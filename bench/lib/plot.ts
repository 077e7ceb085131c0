// An SVG of a benchmark run: the latency distribution (share of deliveries per logarithmic
// latency bin) and latency over time (p50, p99 and max per second), one colour per series.
import type { SecondPoint } from './stats.js';

export interface PlotSeries {
  label: string;
  latencies: ArrayLike<number>;
  timeline: SecondPoint[];
}

const W = 900;
const PANEL_H = 300;
const M = { left: 70, right: 180, top: 40, bottom: 50 };
const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf'];
const esc = (s: string) => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);

/** log10 axis from 10^lo to 10^hi over [a, b] pixels */
const logScale = (lo: number, hi: number, a: number, b: number) => (v: number) =>
  a + ((Math.log10(Math.max(v, 10 ** lo)) - lo) / (hi - lo)) * (b - a);

function bounds(all: number[]): { lo: number; hi: number } {
  const finite = all.filter((v) => Number.isFinite(v) && v > 0);
  if (finite.length === 0) return { lo: -1, hi: 2 };
  let min = Infinity;
  let max = -Infinity;
  for (const v of finite) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return { lo: Math.floor(Math.log10(min)), hi: Math.max(Math.floor(Math.log10(min)) + 1, Math.ceil(Math.log10(max))) };
}

function decadeLabel(e: number): string {
  const v = 10 ** e;
  return v >= 1000 ? `${v / 1000} s` : `${Number(v.toPrecision(1))} ms`;
}

export function plotSvg(title: string, series: PlotSeries[]): string {
  const out: string[] = [];
  const H = 2 * (PANEL_H + M.top + M.bottom);
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="18" text-anchor="middle" font-size="15">${esc(title)}</text>`);

  // Panel 1: distribution.
  const allLat: number[] = [];
  for (const s of series) for (let i = 0; i < s.latencies.length; i += Math.max(1, Math.floor(s.latencies.length / 20000))) allLat.push(s.latencies[i]);
  const { lo, hi } = bounds(allLat);
  const x0 = M.left;
  const x1 = W - M.right;
  const top1 = M.top;
  const bot1 = M.top + PANEL_H;
  const bins = (hi - lo) * 10;
  const hists = series.map((s) => {
    const h = new Array<number>(bins).fill(0);
    for (let i = 0; i < s.latencies.length; i++) {
      const b = Math.floor((Math.log10(Math.max(s.latencies[i], 10 ** lo)) - lo) * 10);
      h[Math.min(bins - 1, Math.max(0, b))]++;
    }
    return h.map((c) => (s.latencies.length ? c / s.latencies.length : 0));
  });
  const maxShare = Math.max(0.01, ...hists.flat());
  const xLat = logScale(lo, hi, x0, x1);
  const yShare = (v: number) => bot1 - (v / maxShare) * (bot1 - top1);
  out.push(axes(x0, x1, top1, bot1, 'send-to-deliver latency (log scale)', 'share of deliveries'));
  for (let e = lo; e <= hi; e++) {
    const x = xLat(10 ** e);
    out.push(`<line x1="${x}" y1="${top1}" x2="${x}" y2="${bot1}" stroke="#ddd"/><text x="${x}" y="${bot1 + 16}" text-anchor="middle">${decadeLabel(e)}</text>`);
  }
  for (const f of [0, 0.5, 1]) out.push(`<text x="${x0 - 6}" y="${yShare(f * maxShare) + 4}" text-anchor="end">${(f * maxShare * 100).toFixed(0)}%</text>`);
  hists.forEach((h, k) => {
    const pts = h.map((share, b) => `${xLat(10 ** (lo + (b + 0.5) / 10)).toFixed(1)},${yShare(share).toFixed(1)}`).join(' ');
    out.push(`<polyline fill="none" stroke="${COLOURS[k % COLOURS.length]}" stroke-width="2" points="${pts}"/>`);
  });
  legend(out, series.map((s) => s.label), x1 + 10, top1);

  // Panel 2: over time.
  const top2 = bot1 + M.bottom + M.top;
  const bot2 = top2 + PANEL_H;
  const seconds = Math.max(1, ...series.map((s) => s.timeline.length));
  const all2 = series.flatMap((s) => s.timeline.flatMap((p) => [p.p50, p.max]));
  const b2 = bounds(all2);
  const xT = (s: number) => x0 + (s / seconds) * (x1 - x0);
  const yL = logScale(b2.lo, b2.hi, bot2, top2);
  out.push(`<text x="${W / 2}" y="${top2 - 12}" text-anchor="middle" font-size="13">latency over time: p50 (solid), p99 (dashed), max (dotted)</text>`);
  out.push(axes(x0, x1, top2, bot2, 'seconds into the measurement', 'latency (log scale)'));
  for (let e = b2.lo; e <= b2.hi; e++) {
    const y = yL(10 ** e);
    out.push(`<line x1="${x0}" y1="${y}" x2="${x1}" y2="${y}" stroke="#ddd"/><text x="${x0 - 6}" y="${y + 4}" text-anchor="end">${decadeLabel(e)}</text>`);
  }
  const step = Math.max(1, Math.ceil(seconds / 10));
  for (let s = 0; s <= seconds; s += step) out.push(`<text x="${xT(s)}" y="${bot2 + 16}" text-anchor="middle">${s}</text>`);
  series.forEach((s, k) => {
    const colour = COLOURS[k % COLOURS.length];
    const line = (key: 'p50' | 'p99' | 'max', dash: string) => {
      const pts = s.timeline.filter((p) => p.deliveries > 0).map((p) => `${xT(p.second + 0.5).toFixed(1)},${yL(p[key]).toFixed(1)}`).join(' ');
      out.push(`<polyline fill="none" stroke="${colour}" stroke-width="1.5" stroke-dasharray="${dash}" points="${pts}"/>`);
    };
    line('p50', '');
    line('p99', '6 3');
    line('max', '1 3');
  });
  legend(out, series.map((s) => s.label), x1 + 10, top2);
  out.push('</svg>');
  return out.join('\n');
}

function axes(x0: number, x1: number, top: number, bot: number, xLabel: string, yLabel: string): string {
  return (
    `<line x1="${x0}" y1="${bot}" x2="${x1}" y2="${bot}" stroke="black"/><line x1="${x0}" y1="${top}" x2="${x0}" y2="${bot}" stroke="black"/>` +
    `<text x="${(x0 + x1) / 2}" y="${bot + 34}" text-anchor="middle">${esc(xLabel)}</text>` +
    `<text transform="translate(${x0 - 50},${(top + bot) / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`
  );
}

function legend(out: string[], labels: string[], x: number, y: number): void {
  labels.forEach((label, k) => {
    const yy = y + 10 + k * 18;
    out.push(`<line x1="${x}" y1="${yy}" x2="${x + 20}" y2="${yy}" stroke="${COLOURS[k % COLOURS.length]}" stroke-width="3"/><text x="${x + 26}" y="${yy + 4}">${esc(label)}</text>`);
  });
}
