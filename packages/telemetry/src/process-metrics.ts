import { monitorEventLoopDelay, PerformanceObserver, constants as perfConstants } from 'node:perf_hooks';
import type { Meter } from '@opentelemetry/api';

/**
 * Process metrics with the names Prometheus' own client libraries use, so stock dashboards and alerts work:
 *   process_cpu_seconds_total, process_cpu_user_seconds_total, process_cpu_system_seconds_total
 *   process_resident_memory_bytes, nodejs_heap_size_used_bytes, nodejs_heap_size_total_bytes
 *   nodejs_eventloop_lag_seconds (mean since the last scrape), nodejs_eventloop_lag_p99_seconds
 *   nodejs_gc_duration_seconds{kind} (histogram)
 * A small collector instead of a runtime-instrumentation package: a dozen lines of node:perf_hooks, no dependency.
 * Started once per process (startTelemetry); returns the function that stops the sampling.
 */
export function startProcessMetrics(meter: Meter): () => void {
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  const cpu = meter.createObservableCounter('process_cpu_seconds', {
    description: 'Total user and system CPU time spent in seconds',
  });
  const cpuUser = meter.createObservableCounter('process_cpu_user_seconds', { description: 'User CPU seconds' });
  const cpuSystem = meter.createObservableCounter('process_cpu_system_seconds', { description: 'System CPU seconds' });
  const rss = meter.createObservableGauge('process_resident_memory_bytes', { description: 'Resident memory size' });
  const heapUsed = meter.createObservableGauge('nodejs_heap_size_used_bytes', { description: 'V8 heap used' });
  const heapTotal = meter.createObservableGauge('nodejs_heap_size_total_bytes', { description: 'V8 heap size' });
  const lag = meter.createObservableGauge('nodejs_eventloop_lag_seconds', {
    description: 'Mean event loop delay since the previous scrape',
  });
  const lagP99 = meter.createObservableGauge('nodejs_eventloop_lag_p99_seconds', {
    description: '99th percentile event loop delay since the previous scrape',
  });
  const observe: Parameters<Meter['addBatchObservableCallback']>[0] = (r) => {
    const u = process.cpuUsage();
    r.observe(cpu, (u.user + u.system) / 1e6);
    r.observe(cpuUser, u.user / 1e6);
    r.observe(cpuSystem, u.system / 1e6);
    const m = process.memoryUsage();
    r.observe(rss, m.rss);
    r.observe(heapUsed, m.heapUsed);
    r.observe(heapTotal, m.heapTotal);
    // monitorEventLoopDelay reports nanoseconds and always includes its own resolution: report it as measured.
    r.observe(lag, Number.isFinite(loop.mean) ? loop.mean / 1e9 : 0);
    r.observe(lagP99, loop.percentile(99) / 1e9);
    loop.reset();
  };
  const instruments = [cpu, cpuUser, cpuSystem, rss, heapUsed, heapTotal, lag, lagP99];
  meter.addBatchObservableCallback(observe, instruments);

  const gc = meter.createHistogram('nodejs_gc_duration_seconds', {
    description: 'Garbage collection pauses by kind',
    advice: { explicitBucketBoundaries: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1] },
  });
  const KINDS: Record<number, string> = {
    [perfConstants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
    [perfConstants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
    [perfConstants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
    [perfConstants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
  };
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
      gc.record(e.duration / 1000, { kind: (kind !== undefined && KINDS[kind]) || 'other' });
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  return () => {
    obs.disconnect();
    loop.disable();
    meter.removeBatchObservableCallback(observe, instruments);
  };
}
