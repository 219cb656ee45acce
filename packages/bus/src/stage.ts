import type { PipelineMessage, PipelineStage, StageVerdict, TrackingEvent, Verdict } from '@mailgate/contracts';
import type { Logger } from '@mailgate/runtime';
import type { Span } from '@opentelemetry/api';
import type { OutRecord } from './producer.js';

/**
 * The contract between a stage's logic and the runner. A stage function is pure-ish: message in, outcome out.
 * It never produces, commits or sleeps for retries itself — the runner does that, the same way for every stage.
 */
export interface StageContext {
  readonly stage: PipelineStage;
  /** 1 on the first try of this record in this process; grows on tempfail/throw retries. */
  readonly attempt: number;
  /** When this process first tried this record (ms since epoch): tempfail hold time is measured from it. */
  readonly firstAttemptAt: number;
  readonly log: Logger;
  /** The stage's processing span (add attributes; the runner ends it). */
  readonly span: Span;
  /** Aborted when the service shuts down: long I/O should stop and let the record be redelivered. */
  readonly signal: AbortSignal;
  /** Instance (pod) name, for verdict/event bookkeeping. */
  readonly host: string;
}

export interface StageOutcome {
  readonly verdict: Verdict;
  /** Facts for the envelope verdict and the tracking event (zone answers, signatures, matched rules). */
  readonly details?: Record<string, unknown>;
  /** Replacement message bytes (a header added, an attachment stripped). Default: unchanged. */
  readonly raw?: Buffer;
  /** The check was skipped because the operator configured fail-open. Recorded loudly. */
  readonly failedOpen?: boolean;
  /** Additional records to produce atomically with the result (e.g. a DSN). Produced before the commit. */
  readonly extraRecords?: OutRecord[];
  /** Additional tracking events. */
  readonly events?: Omit<TrackingEvent, 'service' | 'host' | 'at' | 'messageId' | 'traceId'>[];
}

export type StageFn = (msg: PipelineMessage, ctx: StageContext) => Promise<StageOutcome>;

export interface StageHooks {
  /**
   * A tempfail held longer than `bus.maxHoldMs`: what to do now. Default: quarantine with
   * "undecidable after <hold>: <last reason>" (fail closed). virus-scan says "unscannable".
   */
  onHoldExpired?: (msg: PipelineMessage, last: Verdict & { kind: 'tempfail' }, heldMs: number) => StageOutcome;
}

export type { StageVerdict };
