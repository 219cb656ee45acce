import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { Logger } from '@mailgate/runtime';
import { esc, html, page } from './console.js';
import { SECURITY_HEADERS, STYLE_HASH } from './security.js';
import type { PipelineStats } from './stats.js';
import type { TrackingStore } from './tracking-store.js';

/**
 * The console dashboard: throughput, SMTP-time rejects and consumer lag over the last hours, drawn by uPlot (a
 * small maintained chart library from npm, served by the admin itself — no CDN, nothing loaded from elsewhere).
 * Throughput and rejects are counts the tracking store already has (its time and refusal indexes); lag is only
 * ever known "now", so the admin samples it into Redis every `lagSampleSeconds` (LagHistory).
 */

export const dashboardSchema = z
  .object({
    /** Hours shown by default (the page and the API take `hours` up to 48). */
    hours: z.number().int().positive().max(48).default(6),
    /** Width of one point of the charts. */
    bucketMinutes: z.number().int().positive().max(240).default(10),
    /** How often the consumer lag is sampled into Redis (every replica samples; the chart shows the max). */
    lagSampleSeconds: z.number().int().min(5).default(60),
  })
  .strict()
  .default({});
export type DashboardConfig = z.infer<typeof dashboardSchema>;

/** Samples older than this are trimmed at each write. */
const LAG_KEEP_MS = 48 * 3600_000;

/**
 * Consumer lag over time: `dash:lag` sorted set, score = sample time (ms), member = `<ms>:<total lag>:<replica>`
 * (distinct members per replica, so two replicas sampling in the same millisecond both count).
 */
export class LagHistory {
  constructor(
    private readonly redis: Redis,
    private readonly replica: string,
  ) {}

  async record(lag: number, at = Date.now()): Promise<void> {
    await this.redis
      .multi()
      .zadd('dash:lag', at, `${at}:${lag}:${this.replica}`)
      .zremrangebyscore('dash:lag', '-inf', at - LAG_KEEP_MS)
      .exec();
  }

  /** The largest sample in each bucket, null where there is none (a gap in the chart, not a zero). */
  async buckets(from: number, step: number, buckets: number): Promise<(number | null)[]> {
    const out: (number | null)[] = Array.from({ length: buckets }, () => null);
    const members = await this.redis.zrangebyscore('dash:lag', from, `(${from + step * buckets}`);
    for (const m of members) {
      const [at, lag] = m.split(':').map(Number) as [number, number];
      const i = Math.floor((at - from) / step);
      if (i >= 0 && i < buckets && Number.isFinite(lag)) out[i] = Math.max(out[i] ?? 0, lag);
    }
    return out;
  }
}

export interface DashboardSeries {
  readonly hours: number;
  readonly bucketMinutes: number;
  /** Bucket start times, seconds since the epoch (uPlot's time scale). */
  readonly t: number[];
  /** Messages accepted (first seen, not refused) per bucket. */
  readonly accepted: number[];
  /** SMTP-time refusals per bucket (relay denied, DNSBL, unknown recipient…). */
  readonly refused: number[];
  /** Total consumer lag over the pipeline stages (records), the largest sample per bucket. */
  readonly lag: (number | null)[];
}

export interface DashboardDeps {
  readonly tracking: TrackingStore;
  readonly stats: PipelineStats;
  readonly lagHistory: LagHistory;
  readonly config: DashboardConfig;
  readonly log?: Logger;
}

/** Samples the lag once now (so the last point is always current) and reads every series. */
async function series(d: DashboardDeps, hours: number, now = Date.now()): Promise<DashboardSeries> {
  await sampleLag(d).catch((err: Error) => d.log?.warn({ err: err.message }, 'dashboard: lag sample failed'));
  const step = d.config.bucketMinutes * 60_000;
  const buckets = Math.ceil((hours * 3600_000) / step);
  // Buckets end at the next bucket boundary after now: the last one is the current, still filling, window.
  const from = (Math.floor(now / step) + 1 - buckets) * step;
  const [counts, lag] = await Promise.all([
    d.tracking.bucketCounts(from, step, buckets),
    d.lagHistory.buckets(from, step, buckets),
  ]);
  return {
    hours,
    bucketMinutes: d.config.bucketMinutes,
    t: Array.from({ length: buckets }, (_, i) => (from + i * step) / 1000),
    accepted: counts.all.map((n, i) => n - counts.refused[i]!),
    refused: counts.refused,
    lag,
  };
}

async function sampleLag(d: Pick<DashboardDeps, 'stats' | 'lagHistory'>): Promise<void> {
  const stages = await d.stats.sample();
  await d.lagHistory.record(stages.reduce((s, x) => s + x.lag, 0));
}

/** Starts the periodic lag sampler; returns its stop function. */
export function startLagSampler(d: DashboardDeps): () => void {
  const timer = setInterval(
    () => void sampleLag(d).catch((err: Error) => d.log?.debug({ err: err.message }, 'lag sample failed')),
    d.config.lagSampleSeconds * 1000,
  );
  timer.unref();
  return () => clearInterval(timer);
}

/** The files the dashboard page loads, served from this process (read once, at start-up). */
function loadAssets(): Map<string, { type: string; body: Buffer }> {
  const require = createRequire(import.meta.url);
  const uplot = path.dirname(require.resolve('uplot/dist/uPlot.iife.min.js'));
  const own = path.resolve(import.meta.dirname, '../assets');
  return new Map([
    [
      'uPlot.iife.min.js',
      { type: 'text/javascript; charset=utf-8', body: readFileSync(path.join(uplot, 'uPlot.iife.min.js')) },
    ],
    ['uPlot.min.css', { type: 'text/css; charset=utf-8', body: readFileSync(path.join(uplot, 'uPlot.min.css')) }],
    ['dashboard.js', { type: 'text/javascript; charset=utf-8', body: readFileSync(path.join(own, 'dashboard.js')) }],
  ]);
}

/**
 * The dashboard page's CSP: the console's policy plus scripts and a stylesheet from this origin (uPlot and
 * dashboard.js under /console/assets). Still no inline script: the data travels in a JSON data block, which the
 * browser never executes.
 */
export const DASHBOARD_CSP = SECURITY_HEADERS['content-security-policy']!.replace(
  `style-src '${STYLE_HASH}'`,
  `style-src 'self' '${STYLE_HASH}'; script-src 'self'`,
);

function hoursParam(v: unknown, dflt: number): number {
  const n = typeof v === 'string' && /^\d{1,2}$/.test(v) ? Number(v) : dflt;
  return Math.min(Math.max(n, 1), 48);
}

/** JSON inside <script type="application/json">: `<` escaped so the text cannot close the element. */
function dataBlock(id: string, value: unknown): string {
  return `<script type="application/json" id="${id}">${JSON.stringify(value).replace(/</g, '\\u003c')}</script>`;
}

export function registerDashboard(app: FastifyInstance, d: DashboardDeps): void {
  const assets = loadAssets();

  app.get('/console/assets/:name', async (req, reply) => {
    const a = assets.get((req.params as { name: string }).name);
    if (!a) return reply.code(404).send({ error: 'not-found', message: 'no such asset' });
    return reply.header('content-type', a.type).send(a.body);
  });

  app.get('/api/v1/stats/history', async (req) =>
    series(d, hoursParam((req.query as Record<string, unknown>)['hours'], d.config.hours)),
  );

  app.get('/console/dashboard', async (req, reply) => {
    const hours = hoursParam((req.query as Record<string, unknown>)['hours'], d.config.hours);
    const s = await series(d, hours);
    const total = (xs: (number | null)[]) => xs.reduce<number>((a, b) => a + (b ?? 0), 0);
    const choices = [1, 6, 24, 48]
      .map((h) => (h === hours ? `<b>${h} h</b>` : `<a href="/console/dashboard?hours=${h}">${h} h</a>`))
      .join(' · ');
    const chart = (id: string, title: string, summary: string) =>
      `<section class="chart"><h3>${esc(title)} <span class="muted">${esc(summary)}</span></h3><div id="${id}" class="chart-box"></div></section>`;
    const lastLag = [...s.lag].reverse().find((v) => v !== null) ?? 0;
    const body = `<link rel="stylesheet" href="/console/assets/uPlot.min.css">
<p class="muted">Last ${hours} h in ${s.bucketMinutes}-minute steps · ${choices} · refreshes every minute</p>
${chart('chart-throughput', 'Throughput: accepted messages', `${total(s.accepted)} in ${hours} h`)}
${chart('chart-rejects', 'Rejects: refused during SMTP', `${total(s.refused)} in ${hours} h`)}
${chart('chart-lag', 'Consumer lag: records waiting, all stages', `now ${lastLag}`)}
${dataBlock('dashboard-data', s)}
<script src="/console/assets/uPlot.iife.min.js"></script><script src="/console/assets/dashboard.js"></script>`;
    return html(reply.header('content-security-policy', DASHBOARD_CSP), page('Dashboard', body, { refresh: 60 }));
  });
}
