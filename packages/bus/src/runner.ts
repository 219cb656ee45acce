// One file: consume → decide → produce → commit for one stage or a chain of consecutive stages (a single stage is a
// chain of one step), with the hold/retry and drain rules that must see the same in-flight state; the records a
// decision produces are in stage-records.ts.
import {
  chainGroup,
  chainProblem,
  CodecError,
  decodeMessage,
  STAGE_GRAPH,
  type PipelineMessage,
  type PipelineStage,
  type Verdict,
} from '@mailgate/contracts';
import type { BusConfig, Logger } from '@mailgate/runtime';
import { extractTraceContext, injectTraceHeaders, type RecordHeaders, type Telemetry } from '@mailgate/telemetry';
import { context, SpanKind, SpanStatusCode, trace, type Span, type Tracer } from '@opentelemetry/api';
import type { Consumer, EachBatchPayload, Kafka, KafkaMessage } from 'kafkajs';
import { setMaxListeners } from 'node:events';
import { backoffMs } from './backoff.js';
import { ConsumerState } from './consumer-state.js';
import { GroupSend } from './group-send.js';
import type { DurableProducer, OutRecord } from './producer.js';
import { deadLetterRecords, decidedMessage, decisionRecords, forwardRecord, type StageEdge } from './stage-records.js';
import type { StageContext, StageFn, StageHooks, StageOutcome } from './stage.js';

/** One step of a runner: a pipeline stage and its function. */
export interface StageStep {
  readonly stage: PipelineStage;
  readonly fn: StageFn;
  readonly hooks?: StageHooks;
}

/** What a runner runs: one stage (`stage`, `fn`, `hooks`), or `steps`, a chain of consecutive stages. */
export type StageRunnerSteps =
  | { readonly stage: PipelineStage; readonly fn: StageFn; readonly hooks?: StageHooks; readonly steps?: never }
  | { readonly steps: readonly StageStep[]; readonly stage?: never; readonly fn?: never; readonly hooks?: never };

export type StageRunnerOptions = StageRunnerCommonOptions & StageRunnerSteps;

export interface StageRunnerCommonOptions {
  readonly kafka: Kafka;
  readonly producer: DurableProducer;
  readonly bus: BusConfig;
  readonly log: Logger;
  readonly telemetry: Telemetry;
  readonly host: string;
  /**
   * Override the first step's input topic / the group (tests). Defaults come from the stage graph: every step's
   * `consumes`, and the stage's group (a chain: `chainGroup`, e.g. mailgate.chain.dnsbl-check..spam-check).
   */
  readonly topic?: string;
  readonly groupId?: string;
  /** Partitions processed in parallel by this instance (default `bus.partitionsConcurrently`). */
  readonly partitionsConcurrently?: number;
  readonly sessionTimeoutMs?: number;
  readonly heartbeatIntervalMs?: number;
  /** Records kept in flight across the partitions worked on (`bus.inFlight`; default that, else 0 = off). */
  readonly inFlight?: number;
  /** Fetch long-poll wait (default `bus.fetchMaxWaitMs`). */
  readonly maxWaitTimeInMs?: number;
  /**
   * Fault injection for crash tests: called after a chunk's (or a window's) output was durably produced and before its offsets
   * are committed — the window the no-loss rule is about. Never set in production.
   */
  readonly faults?: { readonly afterProduce?: () => void | Promise<void> };
  /** Called when the consumer crashed and kafkajs will not restart it (the service should exit and be restarted). */
  readonly onFatal?: (reason: string) => void;
}

/** What record processing needs of its batch: liveness and heartbeats (a lane passes its own, see PartitionLane). */
type BatchControl = Pick<EachBatchPayload, 'heartbeat' | 'isStale' | 'isRunning'>;

/**
 * One partition's sliding window, kept across fetched batches (`inFlight` with `slidingWindow`). Records are indexed
 * by their position in the lane since it began (`at(i)` = records[i - base]); the produced and committed prefix is
 * dropped from the arrays from time to time (`base` grows). A lane belongs to one group generation: after a
 * rebalance, or after it failed, it starts nothing more and a new lane takes the partition's next batch.
 */
class PartitionLane {
  base = 0;
  readonly records: KafkaMessage[] = [];
  readonly outputs: (OutRecord[] | undefined)[] = [];
  readonly produced: boolean[] = [];
  decidedNotProduced: number[] = [];
  readonly running = new Set<Promise<void>>();
  failure: { err: unknown } | undefined;
  /** Set once the lane starts nothing more (failed, stopped, or its generation ended); it then finishes and ends. */
  closed = false;
  next = 0;
  undecided = 0;
  prefix = 0;
  committedPrefix = 0;
  lastCommit = Date.now();
  /** Offset of the last record appended (records a refetch brings again are skipped). */
  lastOffset = -1n;
  wake: (() => void) | undefined;
  /** The lane's driver while it has work (the runner's drain waits for it). */
  driver: Promise<void> | undefined;
  readonly roomWaiters: (() => void)[] = [];

  constructor(
    readonly topic: string,
    readonly partition: number,
    readonly generation: number,
    /** The latest batch's payload: heartbeats and kafkajs' liveness for the records in flight. */
    public p: EachBatchPayload,
  ) {}

  get total(): number {
    return this.base + this.records.length;
  }

  at(i: number): KafkaMessage {
    return this.records[i - this.base]!;
  }

  /** Drop the committed prefix once it is large: a long-lived lane does not keep every record it ever read. */
  compact(): void {
    const n = this.committedPrefix - this.base;
    if (n < 1024 || n < this.records.length / 2) return;
    this.records.splice(0, n);
    this.outputs.splice(0, n);
    this.produced.splice(0, n);
    this.base += n;
  }

  wakeRoomWaiters(): void {
    for (const w of this.roomWaiters.splice(0)) w();
  }
}

/** Thrown inside a batch to stop it without committing (shutdown or lost partition): records are redelivered. */
class BatchAborted extends Error {}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * How far past the oldest undecided record a window may start records, in windows. A record held by a slow remote
 * keeps everything after it uncommitted; 4 windows (delivery, one replica: 4 × 8 per partition) lets the other slots
 * go on for a few seconds of slow SMTP at the measured rates while a crash redelivers at most that much.
 */
const WINDOW_SPAN = 4;

/** A step with what the runner derives for it: its topics and identity (stage-records.ts) and its tracer. */
interface Step extends StageStep {
  readonly edge: StageEdge;
  tracer?: Tracer;
}

/** What processing one record decided: its records, or the step that dead-lettered it (for the metrics). */
type StepOutcome = StageOutcome | { deadLetter: Error };

/**
 * Runs one pipeline stage: consume its input topic in its consumer group, call the stage function, produce the
 * result, and only then commit the offset (at-least-once: a crash anywhere before the commit means the record
 * is processed again, never lost — see docs/architecture.md "No loss").
 *
 * A stage chain (`steps`, consecutive stages) is the same with the hand-over in memory: the runner consumes the
 * input topic of every step (a record read from step k's topic starts at step k: a release with recheck, or a
 * backlog left by split stages); on `pass` the forwarded message goes straight to the next step's function. Each
 * step has its own span, metrics, tempfail hold and retries; the last step's forward record (or the quarantine
 * record of the step that quarantined, naming that step's input topic) and every step's events are produced
 * together before the commit, so a crash re-runs the whole chain for uncommitted records.
 *
 *   pass                → output topic (the stage graph's `produces`), envelope verdict appended
 *   quarantine / reject → quarantine topic
 *   tempfail            → held in place and retried with backoff (the partition waits: fail closed; with
 *                          `inFlight`, at most a window past the held record); after
 *                          bus.maxHoldMs → hooks.onHoldExpired (default: quarantine)
 *   throws              → retried bus.maxAttempts times, then the record goes to the dead-letter topic
 *   undecodable record  → dead-letter topic at once
 */
export class StageRunner {
  private readonly consumer: Consumer;
  /** The steps in pipeline order (one for a single stage). */
  private readonly steps: readonly Step[];
  /** Input topic → index of the step that starts there. */
  private readonly startAt: ReadonlyMap<string, number>;
  private readonly abort = new AbortController();
  private readonly state: ConsumerState;
  private running = false;
  /** Set by stop(): no new chunk or window record starts; what is in flight finishes and commits (drain). */
  private stopping = false;
  private readonly inflight = new Set<Promise<unknown>>();
  /** The windows' produce requests, one in flight for all partitions (`inFlight` set). */
  private readonly windowSend: GroupSend;
  /** Partitions of our topics the group assigned to this consumer at its last join (0 until it joined). */
  private assigned = 0;
  /** Group joins so far: a lane of an earlier generation starts nothing more. */
  private generation = 0;
  /** topic|partition → its sliding window across batches (`inFlight` with `slidingWindow`). */
  private readonly lanes = new Map<string, PartitionLane>();
  private readonly metrics;

  constructor(private readonly opts: StageRunnerOptions) {
    const steps: readonly StageStep[] = opts.steps ?? [
      { stage: opts.stage, fn: opts.fn, ...(opts.hooks ? { hooks: opts.hooks } : {}) },
    ];
    // Every record in flight (up to partitionsConcurrently × concurrency, and each of their waits on a client)
    // listens on the one shutdown signal: not a leak, so no MaxListenersExceededWarning at 11.
    setMaxListeners(0, this.abort.signal);
    const stages = steps.map((s) => s.stage);
    const problem = chainProblem(stages);
    if (problem) throw new Error(problem);
    this.steps = steps.map((s, k) => {
      const graph = STAGE_GRAPH[s.stage];
      const topic = (k === 0 ? opts.topic : undefined) ?? graph.consumes ?? '';
      return { ...s, edge: { stage: s.stage, host: opts.host, topic, output: graph.produces } };
    });
    this.startAt = new Map(this.steps.map((s, k) => [s.edge.topic, k]));
    this.windowSend = new GroupSend(opts.producer);
    this.consumer = opts.kafka.consumer({
      groupId: opts.groupId ?? chainGroup(stages),
      sessionTimeout: opts.sessionTimeoutMs ?? opts.bus.sessionTimeoutMs,
      heartbeatInterval: opts.heartbeatIntervalMs ?? opts.bus.heartbeatIntervalMs,
      rebalanceTimeout: 60000,
      maxWaitTimeInMs: opts.maxWaitTimeInMs ?? opts.bus.fetchMaxWaitMs,
      minBytes: opts.bus.fetchMinBytes,
      allowAutoTopicCreation: true,
      maxBytesPerPartition: 64 * 1024 * 1024,
      maxBytes: 128 * 1024 * 1024,
      retry: { retries: 10, initialRetryTime: 300, maxRetryTime: 5000 },
    });
    this.consumer.on(this.consumer.events.GROUP_JOIN, (e) => {
      this.generation++;
      for (const l of this.lanes.values()) this.closeLane(l);
      this.lanes.clear();
      this.assigned = Object.values(e.payload.memberAssignment).reduce((n, ps) => n + ps.length, 0);
    });
    this.state = new ConsumerState(this.consumer, {
      log: opts.log,
      running: () => this.running,
      onFatal: opts.onFatal,
    });
    const meter = opts.telemetry.meter('mailgate.bus');
    this.metrics = {
      messages: meter.createCounter('mailgate_stage_messages_total', {
        description: 'Messages decided by a stage, by verdict',
      }),
      duration: meter.createHistogram('mailgate_stage_duration_seconds', {
        description: 'Stage processing time per message (including retries)',
        unit: 's',
        advice: { explicitBucketBoundaries: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] },
      }),
      retries: meter.createCounter('mailgate_stage_retries_total', { description: 'tempfail and error retries' }),
      deadLetters: meter.createCounter('mailgate_stage_dead_letters_total', { description: 'records dead-lettered' }),
      failOpen: meter.createCounter('mailgate_stage_fail_open_total', {
        description: 'messages passed unchecked because the check is configured fail-open',
      }),
    };
  }

  /** Ready = joined the group and not crashed (the service adds the broker probe). */
  get isReady(): boolean {
    return this.running && this.state.ok;
  }

  async start(): Promise<void> {
    await this.consumer.connect();
    // fromBeginning applies only where the group has no committed offset yet (a new group, or a topic it never read).
    await this.consumer.subscribe({ topics: this.steps.map((s) => s.edge.topic), fromBeginning: true });
    this.running = true;
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: this.opts.partitionsConcurrently ?? this.opts.bus.partitionsConcurrently,
      eachBatch: (payload) => this.eachBatch(payload),
    });
  }

  /**
   * Drain: start no new chunk, let the chunks in flight finish and produce, and each batch commit what it produced
   * (kafkajs ignores commits once its own stop() began, so we wait before calling it), then leave the group.
   * Records held by a tempfail are released uncommitted (redelivered later). After `drainTimeoutMs` stage functions
   * are told to abort.
   */
  async stop(drainTimeoutMs = 20_000): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.stopping = true;
    const timer = setTimeout(() => this.abort.abort(), drainTimeoutMs);
    for (const l of this.lanes.values()) l.wakeRoomWaiters();
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
    clearTimeout(timer);
    this.abort.abort();
    await this.consumer.stop().catch(() => undefined);
    await this.consumer.disconnect().catch(() => undefined);
  }

  /** One fetched batch of one partition, tracked as in flight so a drain waits for it to produce and commit. */
  private async eachBatch(p: EachBatchPayload): Promise<void> {
    const work = this.runBatch(p);
    this.inflight.add(work);
    try {
      await work;
    } finally {
      this.inflight.delete(work);
    }
  }

  /**
   * Records per chunk (or per window, with `inFlight`): `bus.concurrency`, or more when `inFlight` is set and this
   * replica works on fewer partitions than inFlight ÷ concurrency (a scaled-out replica keeps about as much work in
   * flight as a single one would).
   */
  private chunkSize(): number {
    const base = Math.max(1, this.opts.bus.concurrency);
    const inFlight = this.inFlightSetting();
    const parallel = Math.min(this.assigned, this.opts.partitionsConcurrently ?? this.opts.bus.partitionsConcurrently);
    if (inFlight <= 0 || parallel <= 0) return base;
    return Math.max(base, Math.ceil(inFlight / parallel));
  }

  /**
   * The batch in chunks of `chunkSize()` records (with `inFlight` and `slidingWindow`: `appendToLane` instead): each
   * chunk is decided and its output produced durably before the next starts; offsets are committed after the chunk that reaches `bus.commitIntervalMs` since the batch's last
   * commit, after the batch's last chunk, and when a drain stops the batch early — always after the output of every
   * record they cover was produced (the no-loss rule). A crash redelivers what was produced but not yet committed.
   */
  private async runBatch(p: EachBatchPayload): Promise<void> {
    const { batch } = p;
    const chunkSize = this.chunkSize();
    if (this.inFlightSetting() > 0 && this.opts.bus.slidingWindow) return this.appendToLane(p, chunkSize);
    let uncommitted: string | undefined; // offset of the last record whose output was produced, not yet committed
    let lastCommit = Date.now();
    for (let i = 0; i < batch.messages.length; i += chunkSize) {
      if (!p.isRunning() || p.isStale() || this.stopping) break;
      const chunk = batch.messages.slice(i, i + chunkSize);
      if (!(await this.processChunk(chunk, p))) break;
      uncommitted = chunk[chunk.length - 1]!.offset;
      const lastChunk = i + chunkSize >= batch.messages.length;
      if (lastChunk || Date.now() - lastCommit >= this.opts.bus.commitIntervalMs) {
        await this.commit(p, uncommitted);
        uncommitted = undefined;
        lastCommit = Date.now();
      }
    }
    // Stopped early (drain, rebalance, kafkajs stopping): commit what was produced, unless the partition is no longer
    // ours. Best effort: if the group is rebalancing the commit is refused and those records are redelivered
    // (duplicates, never loss); the next heartbeat rejoins.
    if (uncommitted !== undefined && !p.isStale()) await this.commit(p, uncommitted).catch(() => undefined);
  }

  /** `inFlight` of the options, else `bus.inFlight`; 0 = chunks of `concurrency`. */
  private inFlightSetting(): number {
    return this.opts.inFlight ?? this.opts.bus.inFlight ?? 0;
  }

  /**
   * With `inFlight` set: the partition's records through a sliding window of `window` records instead of chunks,
   * in a lane that outlives the batch. A record starts as soon as fewer than `window` records are in flight, so one
   * slow record (an SMTP transaction to a slow server) no longer idles the `window - 1` slots beside it; and never
   * more than `WINDOW_SPAN × window` records past the oldest undecided one, which bounds what a crash redelivers
   * (everything after the oldest undecided record is uncommitted) while that slow record is held.
   *
   * The batch hands its records to the lane and returns as soon as the lane has room for more, before they are
   * decided: kafkajs fetches again only after every batch of its previous fetch returned, so a window that lived
   * inside one batch held the next fetch, for every partition of this replica, until its slowest record was decided
   * (up to the SMTP timeouts, minutes, behind one slow server). The fetch position moves on at once
   * (`resolveOffset`); what is committed does not: decided records are produced together, one produce request at a
   * time for all the partitions of this runner (`GroupSend`), in offset order within a partition, and a record is
   * committed only when its output and the output of every record before it in the partition were produced (the
   * no-loss rule); commits are coalesced by `bus.commitIntervalMs`, and the lane commits its produced prefix whenever
   * it runs out of work. A drain or a new group generation starts no new record, lets the ones in flight finish,
   * produces what they decided and commits the produced prefix (not after a rebalance: the partition may be
   * another member's by then). A failed produce closes the lane and moves the partition's fetch position back to its
   * last commit, so everything after it is read and decided again (duplicates, never loss).
   */
  private async appendToLane(p: EachBatchPayload, window: number): Promise<void> {
    const { batch } = p;
    // A batch fetched before a seek (the partition is read again from an earlier offset): the next fetch brings them.
    if (p.isStale()) return;
    const key = `${batch.topic}|${batch.partition}`;
    let lane = this.lanes.get(key);
    // A failed lane stays here until it moved the fetch position back: a lane that took later records meanwhile would
    // commit past the failed lane's uncommitted ones.
    if (lane?.failure) {
      await sleep(500); // unresolved: the next fetch brings the same records again; not in a hot loop
      return;
    }
    if (!lane || lane.closed || lane.generation !== this.generation) {
      lane = new PartitionLane(batch.topic, batch.partition, this.generation, p);
      this.lanes.set(key, lane);
    }
    const l = lane;
    l.p = p;
    for (const m of batch.messages) {
      const offset = BigInt(m.offset);
      if (offset <= l.lastOffset) continue; // a refetch of records the lane already has
      l.records.push(m);
      l.outputs.push(undefined);
      l.produced.push(false);
      l.lastOffset = offset;
    }
    if (batch.messages.length > 0) p.resolveOffset(batch.messages[batch.messages.length - 1]!.offset);
    this.driveLane(l, window);
    // Back-pressure: a lane holds at most what its window may start past its oldest undecided record.
    // Rechecked every second too: a lane that stops being live with nothing in flight wakes no one.
    while (this.laneLive(l) && l.total - l.undecided >= WINDOW_SPAN * window) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((r) => {
        l.roomWaiters.push(r);
        timer = setTimeout(r, 1000);
      });
      clearTimeout(timer);
    }
  }

  /** A lane starts nothing more; what is in flight finishes (see appendToLane). */
  private closeLane(l: PartitionLane): void {
    l.closed = true;
    l.wake?.();
    l.wakeRoomWaiters();
  }

  /** Start the lane's driver unless it runs; the runner's drain waits for it. */
  private driveLane(l: PartitionLane, window: number): void {
    if (l.driver) {
      l.wake?.();
      return;
    }
    const work = this.runLane(l, window)
      .catch((err: unknown) =>
        // Not expected (a lane's own failures end in a seek): logged, and the partition is read again after the
        // next rebalance or restart at the latest (nothing past the produced prefix was committed).
        this.opts.log.error({ err: (err as Error).message, topic: l.topic, partition: l.partition }, 'lane failed'),
      )
      .finally(() => {
        l.driver = undefined;
        this.inflight.delete(work);
        l.wakeRoomWaiters();
        // Records appended while the driver was finishing: start again.
        if (l.next < l.total && this.laneLive(l)) this.driveLane(l, window);
      });
    l.driver = work;
    this.inflight.add(work);
  }

  private laneLive(l: PartitionLane): boolean {
    if (l.closed || l.failure !== undefined || this.stopping || l.generation !== this.generation) return false;
    return l.p.isRunning() && !l.p.isStale();
  }

  private async runLane(l: PartitionLane, window: number): Promise<void> {
    // What the records in flight see of their batch: the lane's liveness, and heartbeats through the latest batch.
    const control: BatchControl = {
      heartbeat: () => l.p.heartbeat(),
      isRunning: () => l.p.isRunning() && !l.closed,
      isStale: () => l.p.isStale() || l.generation !== this.generation,
    };
    const start = (i: number) => {
      const work: Promise<void> = this.processRecord(l.at(i), l.topic, l.partition, control).then(
        (out) => {
          l.outputs[i - l.base] = out;
          l.decidedNotProduced.push(i);
        },
        (err: unknown) => {
          l.failure ??= { err };
        },
      );
      l.running.add(work);
      void work.finally(() => {
        l.running.delete(work);
        fill(); // a freed slot is refilled at once, also while a produce is in flight
        l.wake?.();
        l.wake = undefined;
      });
    };
    const fill = () => {
      if (!this.laneLive(l)) return;
      while (l.undecided < l.total && l.outputs[l.undecided - l.base] !== undefined) l.undecided++;
      while (l.next < l.total && l.running.size < window && l.next < l.undecided + WINDOW_SPAN * window)
        start(l.next++);
      l.wakeRoomWaiters();
    };
    const commitPrefix = async () => {
      const offset = l.at(l.prefix - 1).offset;
      await this.commit(l.p, offset);
      l.committedPrefix = l.prefix;
      l.lastCommit = Date.now();
      l.compact();
    };

    for (;;) {
      fill();
      if (l.decidedNotProduced.length > 0) {
        const ids = l.decidedNotProduced.splice(0).sort((a, b) => a - b);
        // Produce what was decided, durably; only then may its offsets be committed (the no-loss rule).
        try {
          await this.windowSend.send(ids.flatMap((i) => l.outputs[i - l.base]!));
        } catch (err) {
          // The records still in flight must not refill their slots with new records whose work would only be
          // thrown away: the partition is read again from its last commit (below).
          l.failure ??= { err };
          break;
        }
        await this.opts.faults?.afterProduce?.();
        for (const i of ids) {
          l.produced[i - l.base] = true;
          l.outputs[i - l.base] = []; // still decided; the records themselves are no longer needed
        }
        while (l.prefix < l.total && l.produced[l.prefix - l.base]) l.prefix++;
        if (l.prefix > l.committedPrefix && Date.now() - l.lastCommit >= this.opts.bus.commitIntervalMs) {
          // Best effort: a refused commit (rebalance) leaves the records to be redelivered; a later one covers them.
          if (this.laneLive(l)) await commitPrefix().catch(() => undefined);
        }
        await l.p.heartbeat().catch(() => undefined);
        continue;
      }
      if (l.running.size === 0) break;
      await new Promise<void>((r) => (l.wake = r));
    }
    // Out of work (or stopped): commit the produced prefix, unless the partition may no longer be ours.
    const ours = l.generation === this.generation && !l.p.isStale();
    if (l.prefix > l.committedPrefix && ours) await commitPrefix().catch(() => undefined);
    if (l.failure === undefined) return;
    // Failed, or stopped by a record told to stop (BatchAborted): read the partition again from the first record not
    // committed (everything after it is decided again). After a rebalance or a drain there is nothing to do: the
    // next owner reads from the commit anyway.
    this.closeLane(l);
    while (l.running.size > 0) await Promise.allSettled([...l.running]);
    const from = l.committedPrefix < l.total ? l.at(l.committedPrefix).offset : (l.lastOffset + 1n).toString();
    if (!(l.failure.err instanceof BatchAborted)) {
      const err = l.failure.err as Error;
      this.opts.log.warn(
        { topic: l.topic, partition: l.partition, from, err: err.message },
        'window failed: reading the partition again from its last commit',
      );
      await sleep(backoffMs(this.opts.bus.retry, 1));
    }
    const key = `${l.topic}|${l.partition}`;
    if (ours && this.running && !this.stopping && l.generation === this.generation) {
      try {
        this.consumer.seek({ topic: l.topic, partition: l.partition, offset: from });
      } catch (err) {
        // The fetch position stays past the records not committed: a new lane would commit past them. The failed
        // lane keeps blocking the partition (its batches are ignored) until the next group join (a consumer restart
        // rejoins) reads it from the commit: held, never lost.
        this.opts.log.error(
          { err: (err as Error).message, topic: l.topic, partition: l.partition },
          'seek refused: the partition waits for the next group join',
        );
        return;
      }
    }
    if (this.lanes.get(key) === l) this.lanes.delete(key);
  }

  /** Decide and produce one chunk. False when it was aborted (nothing produced: redelivery). */
  private async processChunk(chunk: KafkaMessage[], p: EachBatchPayload): Promise<boolean> {
    const { batch } = p;
    let outputs: OutRecord[][];
    try {
      outputs = await Promise.all(chunk.map((m) => this.processRecord(m, batch.topic, batch.partition, p)));
    } catch (err) {
      if (err instanceof BatchAborted) return false; // not committed: redelivered after restart/rebalance
      throw err;
    }
    // Produce everything this chunk decided, durably; only then may its offsets be committed (the no-loss rule).
    await this.opts.producer.send(outputs.flat());
    await this.opts.faults?.afterProduce?.();
    p.resolveOffset(chunk[chunk.length - 1]!.offset);
    await p.heartbeat().catch(() => undefined);
    return true;
  }

  /** Commits the partition up to and including `offset` (whose output, and all before it, was produced). */
  private async commit(p: EachBatchPayload, offset: string): Promise<void> {
    const { batch } = p;
    try {
      await this.consumer.commitOffsets([
        { topic: batch.topic, partition: batch.partition, offset: (BigInt(offset) + 1n).toString() },
      ]);
    } catch (err) {
      // consumer.commitOffsets wraps the broker's answer (UNKNOWN_MEMBER_ID after a broker restart or a session
      // expiry, ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS) in a KafkaJSNonRetriableError without its `type`, and
      // kafkajs' runner only re-joins the group for the protocol error itself: rethrow that, or the consumer
      // crashes for good (restart: false). The records stay uncommitted and are redelivered (at-least-once).
      const cause = (err as { cause?: unknown }).cause;
      if (cause instanceof Error && 'type' in cause) throw cause;
      throw err;
    }
  }

  /** Sleep in slices, heartbeating so a long hold does not cost the group membership. */
  private async holdFor(ms: number, p: BatchControl): Promise<void> {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      if (!p.isRunning() || p.isStale() || this.stopping) throw new BatchAborted('stopping');
      await sleep(Math.min(500, until - Date.now()));
      try {
        await p.heartbeat();
      } catch {
        throw new BatchAborted('rebalance in progress');
      }
    }
  }

  /**
   * One record read from `topic`: decoded, then decided by the step that consumes `topic` and, on `pass`, by each
   * following step in memory. Returns everything to produce for it: the final forward record (output or
   * quarantine), every step's events and extra records, or the dead-letter record.
   */
  private async processRecord(
    m: KafkaMessage,
    topic: string,
    partition: number,
    p: BatchControl,
  ): Promise<OutRecord[]> {
    const first = this.startAt.get(topic) ?? 0;
    const headers = (m.headers ?? {}) as RecordHeaders;
    let parent = extractTraceContext(headers);
    let msg: PipelineMessage | undefined;
    const out: OutRecord[] = [];
    // bus.maxHoldMs bounds the record's hold in this process, across all the steps of a chain (not per step).
    const firstAttemptAt = Date.now();
    for (let k = first; k < this.steps.length; k++) {
      const step = this.steps[k]!;
      // One tracer per step: trace.getTracer walks the provider on every call (~1 % of a stage's CPU per record).
      // The API's ProxyTracer still delegates to a provider registered after this first call.
      const tracer = (step.tracer ??= this.opts.telemetry.tracer(step.stage));
      const span = tracer.startSpan(
        `${step.stage} process`,
        {
          kind: SpanKind.CONSUMER,
          attributes: {
            'mailgate.service': step.stage,
            'messaging.system': 'kafka',
            'messaging.destination.name': step.edge.topic,
            'messaging.kafka.partition': partition,
            'messaging.kafka.offset': Number(m.offset),
          },
        },
        parent,
      );
      const started = Date.now();
      try {
        if (!msg) {
          try {
            msg = decodeMessage(m.value);
          } catch (err) {
            if (!(err instanceof CodecError)) throw err;
            span.setStatus({ code: SpanStatusCode.ERROR, message: err.message });
            return this.deadLetter(step, topic, m, err, undefined);
          }
        }
        const current = msg;
        span.setAttribute('mailgate.message_id', current.envelope.id);
        const outcome: StepOutcome = await context.with(trace.setSpan(parent, span), () =>
          this.decide(step, current, span, p, firstAttemptAt),
        );
        // The record as read goes to the dead-letter topic (its topic as the source); earlier steps' events stay.
        if ('deadLetter' in outcome) return [...out, ...this.deadLetter(step, topic, m, outcome.deadLetter, current)];
        const durationMs = Date.now() - started;
        this.metrics.duration.record(durationMs / 1000, { stage: step.stage });
        this.metrics.messages.add(1, { stage: step.stage, verdict: outcome.verdict.kind });
        if (outcome.failedOpen) this.metrics.failOpen.add(1, { stage: step.stage });
        span.setAttribute('mailgate.verdict', outcome.verdict.kind);
        if ('reason' in outcome.verdict) span.setAttribute('mailgate.reason', outcome.verdict.reason);
        const decided = decidedMessage(step.edge, current, outcome, durationMs);
        out.push(...decisionRecords(step.edge, current, outcome, durationMs, decided.at));
        if (outcome.verdict.kind === 'pass' && k + 1 < this.steps.length) {
          // Hand over in memory: the next step's span is a child of this one, as through the record's headers.
          msg = decided.fwd;
          parent = trace.setSpan(parent, span);
          continue;
        }
        const fwd = forwardRecord(step.edge, decided, outcome, this.traceHeaders(span));
        return fwd ? [fwd, ...out] : out;
      } catch (err) {
        if (!(err instanceof BatchAborted)) span.recordException(err as Error);
        throw err;
      } finally {
        span.end();
      }
    }
    return out; // not reached: the last step always returns
  }

  private async decide(
    step: Step,
    msg: PipelineMessage,
    span: Span,
    p: BatchControl,
    firstAttemptAt: number,
  ): Promise<StepOutcome> {
    let errors = 0;
    for (let attempt = 1; ; attempt++) {
      const ctx: StageContext = {
        stage: step.stage,
        attempt,
        firstAttemptAt,
        log: this.opts.log.child({ msgId: msg.envelope.id }),
        span,
        signal: this.abort.signal,
        host: this.opts.host,
      };
      let outcome: StageOutcome;
      try {
        outcome = await step.fn(msg, ctx);
      } catch (err) {
        if (this.abort.signal.aborted) throw new BatchAborted('stopping');
        errors++;
        this.metrics.retries.add(1, { stage: step.stage, cause: 'error' });
        this.opts.log.warn(
          { stage: step.stage, msgId: msg.envelope.id, err: (err as Error).message, errors },
          'stage threw',
        );
        if (errors >= this.opts.bus.maxAttempts) return { deadLetter: err as Error };
        await this.holdFor(backoffMs(this.opts.bus.retry, errors), p);
        continue;
      }
      if (outcome.verdict.kind !== 'tempfail') return outcome;
      const held = Date.now() - firstAttemptAt;
      if (held >= this.opts.bus.maxHoldMs) {
        const v = outcome.verdict;
        return (
          step.hooks?.onHoldExpired?.(msg, v, held) ?? {
            verdict: { kind: 'quarantine', reason: `undecidable after ${Math.round(held / 1000)} s: ${v.reason}` },
            details: outcome.details ?? {},
          }
        );
      }
      this.metrics.retries.add(1, { stage: step.stage, cause: 'tempfail' });
      span.addEvent('tempfail', { reason: outcome.verdict.reason, attempt });
      this.opts.log.warn(
        { stage: step.stage, msgId: msg.envelope.id, reason: outcome.verdict.reason, attempt },
        'tempfail: holding',
      );
      const wait = outcome.verdict.retryAfterMs ?? backoffMs(this.opts.bus.retry, attempt);
      await this.holdFor(Math.min(wait, Math.max(0, this.opts.bus.maxHoldMs - held)), p);
    }
  }

  /** Dead-letters the record `m` as read from `topic`, naming `step` (the stage that could not decide it). */
  private deadLetter(
    step: Step,
    topic: string,
    m: KafkaMessage,
    err: Error,
    msg: PipelineMessage | undefined,
  ): OutRecord[] {
    this.metrics.deadLetters.add(1, { stage: step.stage });
    this.opts.log.error(
      { stage: step.stage, err: err.message, offset: m.offset, msgId: msg?.envelope.id },
      'record dead-lettered',
    );
    return deadLetterRecords({ ...step.edge, topic }, m, err, msg);
  }

  /** Trace headers that make the next stage's span a child of this stage's span. */
  private traceHeaders(span: Span): Record<string, string> {
    return injectTraceHeaders(trace.setSpan(context.active(), span));
  }
}

export type { Verdict };
