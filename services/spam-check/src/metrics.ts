import type { Meter } from '@opentelemetry/api';

/** The stage's own metrics (the runner already counts verdicts, retries and fail-open passes per stage). */
export interface SpamMetrics {
  /** action = pass | tag | quarantine | reject | skipped | unchecked; dryRun when only recorded. */
  action(action: string, dryRun: boolean): void;
  score(score: number): void;
  duration(seconds: number, result: string): void;
  rspamdError(kind: string): void;
  failedOpen(reason: string): void;
}

export function createSpamMetrics(meter: Meter): SpamMetrics {
  const actions = meter.createCounter('mailgate_spam_actions_total', {
    description: 'Spam-check decisions by action (pass, tag, quarantine, reject, skipped, unchecked) and dry_run',
  });
  const scores = meter.createHistogram('mailgate_spam_score', {
    description: 'rspamd score of checked messages',
    advice: { explicitBucketBoundaries: [-5, -2, 0, 1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 30, 50] },
  });
  const latency = meter.createHistogram('mailgate_spam_check_duration_seconds', {
    description: 'Time for one message: rspamd /checkv2 round trip and header edits, by result',
    unit: 's',
    advice: { explicitBucketBoundaries: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] },
  });
  const errors = meter.createCounter('mailgate_rspamd_errors_total', {
    description: 'Failed exchanges with rspamd, by kind (connect, timeout, closed, http, protocol)',
  });
  const failOpen = meter.createCounter('mailgate_spam_fail_open_total', {
    description: 'Messages passed UNCHECKED for spam because spamCheck.failOpen is on',
  });
  return {
    action: (action, dryRun) => actions.add(1, { action, dry_run: String(dryRun) }),
    score: (s) => scores.record(s),
    duration: (seconds, result) => latency.record(seconds, { result }),
    rspamdError: (kind) => errors.add(1, { kind }),
    failedOpen: (reason) => failOpen.add(1, { reason }),
  };
}

export const noMetrics: SpamMetrics = {
  action: () => undefined,
  score: () => undefined,
  duration: () => undefined,
  rspamdError: () => undefined,
  failedOpen: () => undefined,
};
