import type { Meter } from '@opentelemetry/api';
import type { ClamdError } from './clamd/errors.js';

/** The stage's own metrics (the runner already counts verdicts, retries and fail-open passes per stage). */
export interface ScanMetrics {
  /** One per message scanned; result = clean | infected | too_large | unscannable | failed_open. */
  scanned(result: string, seconds: number): void;
  infection(signature: string): void;
  clamdError(err: ClamdError): void;
  failedOpen(reason: string): void;
}

/**
 * The family of a ClamAV signature name, for a low-cardinality label: `Win.Trojan.Agent-123` → `Win.Trojan`,
 * `Doc.Dropper.Agent-6400` → `Doc.Dropper`, `Eicar-Signature` → `Eicar`, third-party `Sanesecurity.Foxhole.Zip` →
 * `Sanesecurity.Foxhole`.
 */
export function signatureFamily(signature: string): string {
  const parts = signature.replace(/\s*FOUND$/, '').split('.');
  if (parts.length >= 2) return parts.slice(0, 2).join('.').replace(/-\d+$/, '');
  return (parts[0] ?? 'unknown').split('-')[0] || 'unknown';
}

export function createScanMetrics(meter: Meter): ScanMetrics {
  const scans = meter.createCounter('mailgate_virus_scans_total', { description: 'Messages scanned, by result' });
  const infections = meter.createCounter('mailgate_virus_infections_total', {
    description: 'Detections that made a message infected, by signature name',
  });
  const latency = meter.createHistogram('mailgate_virus_scan_duration_seconds', {
    description: 'Time to scan one message (all clamd requests for it), by result',
    unit: 's',
    advice: {
      explicitBucketBoundaries: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    },
  });
  const errors = meter.createCounter('mailgate_clamd_errors_total', {
    description:
      'Failed exchanges with a clamd, by endpoint and kind (connect, timeout, closed, protocol, scan-error, busy)',
  });
  const failOpen = meter.createCounter('mailgate_virus_fail_open_total', {
    description: 'Messages passed UNSCANNED because virusScan.failOpen is on',
  });
  return {
    scanned: (result, seconds) => {
      scans.add(1, { result });
      latency.record(seconds, { result });
    },
    infection: (signature) => infections.add(1, { signature, family: signatureFamily(signature) }),
    clamdError: (err) => errors.add(1, { endpoint: err.endpoint, kind: err.kind }),
    failedOpen: (reason) => failOpen.add(1, { reason }),
  };
}

/** For tests and tools that do not record metrics. */
export const noMetrics: ScanMetrics = {
  scanned: () => undefined,
  infection: () => undefined,
  clamdError: () => undefined,
  failedOpen: () => undefined,
};
