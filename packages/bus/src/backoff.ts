export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
  factor: number;
}

/** Exponential backoff with ±20% jitter so replicas retrying the same dependency do not stampede it. */
export function backoffMs(policy: BackoffPolicy, attempt: number, random = Math.random): number {
  const base = Math.min(policy.maxMs, policy.initialMs * Math.pow(policy.factor, Math.max(0, attempt - 1)));
  return Math.round(base * (0.8 + 0.4 * random()));
}
