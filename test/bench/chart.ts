// `npm run bench:chart` — SVG charts from the benchmarks' JSON output, for docs/benchmarks.md:
//   var/bench/scale.json → docs/img/bench-scale.svg: throughput vs replicas per stage, with the linear ideal;
//                          docs/img/bench-scale-cpu.svg: CPU ms per message per process at 1 replica of each stage.
// Plain SVG written by hand (no plotting dependency); the figures come only from the JSON, never from here.
import { readFileSync, writeFileSync } from 'node:fs';
import type { ScalePoint } from './scale.js';

const IN = process.argv[2] ?? 'var/bench/scale.json';
const OUT_DIR = process.argv[3] ?? 'docs/img';
const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

interface ScaleRun {
  machine: string;
  quota: number;
  messages: number;
  bytes: number;
  partitions: number;
  points: ScalePoint[];
}

function svg(w: number, h: number, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="sans-serif" font-size="12">`,
    `<rect width="${w}" height="${h}" fill="white"/>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

/** Speed-up (msg/s ÷ msg/s at 1 replica) against replicas, one line per stage, and the ideal y = x. */
function scaleChart(run: ScaleRun): string {
  const W = 780;
  const H = 400;
  // The legend (right) names each stage with its msg/s per replica count: ~330 px at 12 px sans-serif.
  const m = { l: 60, r: 330, t: 40, b: 50 };
  const stages = [...new Set(run.points.map((p) => p.stage))];
  const maxN = Math.max(...run.points.map((p) => p.replicas));
  const speed = (p: ScalePoint) =>
    p.msgPerSec / (run.points.find((q) => q.stage === p.stage && q.replicas === 1)?.msgPerSec ?? NaN);
  const maxY = Math.max(maxN, ...run.points.map(speed).filter(Number.isFinite));
  const x = (n: number) => m.l + ((n - 1) / Math.max(1, maxN - 1)) * (W - m.l - m.r);
  const y = (v: number) => H - m.b - (v / maxY) * (H - m.t - m.b);
  const body: string[] = [
    `<text x="${W / 2 - 60}" y="20" text-anchor="middle" font-size="14">Speed-up vs replicas (${run.quota} core each)</text>`,
    `<line x1="${m.l}" y1="${H - m.b}" x2="${W - m.r}" y2="${H - m.b}" stroke="black"/>`,
    `<line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${H - m.b}" stroke="black"/>`,
    `<text x="${(m.l + W - m.r) / 2}" y="${H - 12}" text-anchor="middle">replicas</text>`,
    `<text x="16" y="${(m.t + H - m.b) / 2}" transform="rotate(-90 16 ${(m.t + H - m.b) / 2})" text-anchor="middle">speed-up (× 1 replica)</text>`,
    `<line x1="${x(1)}" y1="${y(1)}" x2="${x(maxN)}" y2="${y(maxN)}" stroke="#999" stroke-dasharray="4 4"/>`,
  ];
  for (const n of [...new Set(run.points.map((p) => p.replicas))])
    body.push(`<text x="${x(n)}" y="${H - m.b + 16}" text-anchor="middle">${n}</text>`);
  for (let v = 0; v <= Math.ceil(maxY); v++)
    body.push(`<text x="${m.l - 8}" y="${y(v) + 4}" text-anchor="end">${v}</text>`);
  body.push(`<text x="${W - m.r + 12}" y="${m.t}" fill="#999">- - ideal (linear)</text>`);
  stages.forEach((stage, i) => {
    const pts = run.points.filter((p) => p.stage === stage).sort((a, b) => a.replicas - b.replicas);
    const c = COLOURS[i % COLOURS.length]!;
    body.push(
      `<polyline fill="none" stroke="${c}" stroke-width="2" points="${pts.map((p) => `${x(p.replicas)},${y(speed(p))}`).join(' ')}"/>`,
    );
    for (const p of pts) body.push(`<circle cx="${x(p.replicas)}" cy="${y(speed(p))}" r="3" fill="${c}"/>`);
    const last = pts[pts.length - 1]!;
    body.push(
      `<text x="${W - m.r + 12}" y="${m.t + 20 + i * 18}" fill="${c}">${esc(stage)}: ${pts.map((p) => p.msgPerSec.toFixed(0)).join(' → ')} msg/s (${speed(last).toFixed(2)}×)</text>`,
    );
  });
  return svg(W, H, body);
}

/** CPU ms per message per process in each stage's 1-replica run: where a message's CPU goes at each stage. */
function cpuChart(run: ScaleRun): string {
  const rows = run.points
    .filter((p) => p.replicas === 1)
    .flatMap((p) =>
      p.cpuMsPerMessage
        .filter((u) => u.ms >= 0.01)
        .map((u) => ({ l: `${p.stage} run: ${u.label.replace(/#\d+$/, '')}`, v: u.ms })),
    );
  const W = 720;
  const bar = 20;
  const m = { l: 310, r: 60, t: 40 };
  const H = m.t + rows.length * (bar + 6) + 20;
  const max = Math.max(...rows.map((r) => r.v), 0.001);
  const body = [
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">CPU ms per message by process, one replica of each stage (${run.quota} core)</text>`,
  ];
  rows.forEach((r, i) => {
    const yy = m.t + i * (bar + 6);
    const w = (r.v / max) * (W - m.l - m.r);
    body.push(`<text x="${m.l - 8}" y="${yy + bar - 6}" text-anchor="end">${esc(r.l)}</text>`);
    body.push(`<rect x="${m.l}" y="${yy}" width="${w}" height="${bar}" fill="${COLOURS[0]}"/>`);
    body.push(`<text x="${m.l + w + 6}" y="${yy + bar - 6}">${r.v.toFixed(2)}</text>`);
  });
  return svg(W, H, body);
}

const run = JSON.parse(readFileSync(IN, 'utf8')) as ScaleRun;
writeFileSync(`${OUT_DIR}/bench-scale.svg`, scaleChart(run));
writeFileSync(`${OUT_DIR}/bench-scale-cpu.svg`, cpuChart(run));
console.log(`wrote ${OUT_DIR}/bench-scale.svg and ${OUT_DIR}/bench-scale-cpu.svg from ${IN}`);
