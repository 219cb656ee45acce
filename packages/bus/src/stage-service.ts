import { CHAINABLE_STAGES, chainGroup, chainProblem, isChainableStage, type PipelineStage } from '@mailgate/contracts';
import {
  busSchema,
  type BusConfig,
  type LoadedConfig,
  type ReadinessCheck,
  type ServiceContext,
  type ServiceDefinition,
  type ServiceSection,
} from '@mailgate/runtime';
import type { Kafka } from 'kafkajs';
import type { ZodTypeAny } from 'zod';
import { connectBus } from './connect.js';
import type { DurableProducer } from './producer.js';
import { StageRunner, type StageRunnerOptions, type StageStep } from './runner.js';
import type { StageFn, StageHooks } from './stage.js';

/** What a stage's setup returns: its function plus the dependencies readiness should watch. */
export interface StageSetup {
  readonly fn: StageFn;
  readonly hooks?: StageHooks;
  /** Readiness checks for the stage's own dependencies (clamd, DNS, Redis). */
  readonly checks?: Record<string, ReadinessCheck>;
  /** Close the stage's own clients (runs in the shutdown `close` phase, after the consumer stopped). */
  readonly close?: () => Promise<void>;
}

export interface StageSetupContext<C> extends ServiceContext<C> {
  readonly kafka: Kafka;
  readonly producer: DurableProducer;
}

export interface StageServiceDefinition<K extends ServiceSection, S extends ZodTypeAny> {
  readonly stage: PipelineStage;
  /** The config section of this stage, e.g. 'virusScan'. It must have `http` and may have `bus` overrides. */
  readonly section: K;
  readonly schema: S;
  readonly setup: (ctx: StageSetupContext<LoadedConfig<{ [P in K]: S }>>) => Promise<StageSetup>;
  /**
   * The stage's default for `bus.inFlight` (records one replica keeps in flight across its partitions) when the
   * configuration does not set it: an I/O-bound stage sets it so a scaled-out replica holding few partitions still
   * works on as many records at once as a single replica. Default 0 (chunks of `bus.concurrency` per partition).
   */
  readonly inFlight?: number;
  /** Tests: faster group membership. */
  readonly runner?: Partial<
    Pick<
      StageRunnerOptions,
      'sessionTimeoutMs' | 'heartbeatIntervalMs' | 'maxWaitTimeInMs' | 'groupId' | 'topic' | 'faults'
    >
  >;
}

type SectionWithHttp = { http: { host: string; port: number }; bus?: Partial<BusConfig> };

/** Config sections of any set of stages (a stage chain loads those of all its steps). */
export type StageSections = Partial<Record<ServiceSection, ZodTypeAny>>;

/**
 * A stage service's definition as a stage chain needs it: its stage, config section and schema, and its setup.
 * The setup takes the configuration of the whole chain (a superset of the stage's own sections).
 */
export interface StageDefinition {
  readonly stage: PipelineStage;
  readonly section: ServiceSection;
  readonly schema: ZodTypeAny;
  readonly setup: (ctx: StageSetupContext<LoadedConfig<StageSections>>) => Promise<StageSetup>;
  /** The stage's default `bus.inFlight` (StageServiceDefinition.inFlight). */
  readonly inFlight?: number;
}

/**
 * The runner's `bus.inFlight`: the configured value when set (0 included), else the largest default of the steps
 * (a chain takes it from its I/O-bound step: a chain ending in delivery gets delivery's).
 */
export function stageInFlight(
  bus: { readonly inFlight?: number | undefined },
  stages: readonly Pick<StageDefinition, 'inFlight'>[],
): number {
  return bus.inFlight ?? Math.max(0, ...stages.map((s) => s.inFlight ?? 0));
}

/** A stage as a service (`mailgate <stage>`), keeping its definition for `mailgate chain` (`stageService`). */
export type StageService<K extends ServiceSection, S extends ZodTypeAny> = ServiceDefinition<{ [P in K]: S }> & {
  readonly stageDefinition: StageDefinition;
};

/** `stageDefinition` of a loaded service module's `service`, if it is a stage service. */
export function stageDefinitionOf(service: unknown): StageDefinition | undefined {
  if (typeof service !== 'object' || service === null || !('stageDefinition' in service)) return undefined;
  return (service as { stageDefinition: StageDefinition }).stageDefinition;
}

/**
 * A pipeline stage as a service: the shared runtime (config, logs, telemetry, health, shutdown) plus the bus
 * (`connectBus`: Kafka client, durable producer; the stage runner, whose unrecoverable crash is fatal). A stage
 * service is then only its `setup`.
 */
export function defineStageService<K extends ServiceSection, S extends ZodTypeAny>(
  def: StageServiceDefinition<K, S>,
): StageService<K, S> {
  const stageDefinition: StageDefinition = {
    stage: def.stage,
    section: def.section,
    schema: def.schema,
    ...(def.inFlight !== undefined ? { inFlight: def.inFlight } : {}),
    // The chain's configuration has this stage's section (it loads every step's schema): the one narrowing cast.
    setup: (ctx) => def.setup(ctx as unknown as StageSetupContext<LoadedConfig<{ [P in K]: S }>>),
  };
  return {
    name: def.stage,
    sections: { [def.section]: def.schema } as { [P in K]: S },
    http: (config) => (config[def.section as keyof typeof config] as unknown as SectionWithHttp).http,
    stageDefinition,
    start: (ctx) =>
      startStages(ctx as unknown as ServiceContext<LoadedConfig<StageSections>>, [stageDefinition], {
        clientId: def.stage,
        ...(def.runner ? { runner: def.runner } : {}),
      }),
  };
}

/**
 * A stage chain as a service (`mailgate chain dnsbl-check,virus-scan,…`): one process, one consumer group
 * (`chainGroup`), one runner whose steps are the stages in order, each built by its own `setup` from its own config
 * section. The first step's section gives the `http` port and the `bus:` overrides; readiness has every step's
 * checks, named `<stage>.<check>`; shutdown closes every step's clients. Only CHAINABLE_STAGES (the check stages).
 */
export function defineChainService(
  stages: readonly StageDefinition[],
  opts: { runner?: StageServiceDefinition<ServiceSection, ZodTypeAny>['runner'] } = {},
): ServiceDefinition<StageSections> {
  const names = stages.map((s) => s.stage);
  for (const s of names) {
    if (!isChainableStage(s)) {
      throw new Error(
        `${s} cannot be a step of a stage chain: only the stages that read a topic can (${CHAINABLE_STAGES.join(', ')})`,
      );
    }
  }
  const problem = chainProblem(names);
  if (problem) throw new Error(problem);
  const first = stages[0]!;
  return {
    name: first.stage,
    label: 'chain',
    sections: Object.fromEntries(stages.map((s) => [s.section, s.schema])) as StageSections,
    http: (config) => (config[first.section as keyof typeof config] as unknown as SectionWithHttp).http,
    start: (ctx) =>
      startStages(ctx, stages, {
        clientId: 'chain',
        prefixChecks: true,
        ...(opts.runner ? { runner: opts.runner } : {}),
      }),
  };
}

/** The body of a stage service and of a chain: bus, each step's setup, one runner, readiness, shutdown. */
async function startStages(
  ctx: ServiceContext<LoadedConfig<StageSections>>,
  stages: readonly StageDefinition[],
  opts: {
    readonly clientId: string;
    readonly prefixChecks?: boolean;
    readonly runner?: StageServiceDefinition<ServiceSection, ZodTypeAny>['runner'];
  },
): Promise<void> {
  const { config, log, lifecycle, health } = ctx;
  const first = stages[0]!;
  const section = config[first.section as keyof typeof config] as unknown as SectionWithHttp;
  const bus = busSchema.parse({ ...config.bus, ...(section.bus ?? {}) });
  const { kafka, producer, fatal } = await connectBus(config.kafka, ctx, { clientId: opts.clientId });
  const steps: StageStep[] = [];
  const checks: [string, ReadinessCheck][] = [];
  for (const def of stages) {
    const stepLog = opts.prefixChecks ? log.child({ stage: def.stage }) : log;
    const setup = await def.setup({ ...ctx, name: def.stage, log: stepLog, kafka, producer });
    // Registered as soon as it exists: a later step's failing setup still closes this one's clients.
    if (setup.close) lifecycle.on('close', opts.prefixChecks ? `${def.stage}` : 'stage', setup.close);
    for (const [name, check] of Object.entries(setup.checks ?? {})) {
      checks.push([opts.prefixChecks ? `${def.stage}.${name}` : name, check]);
    }
    steps.push({ stage: def.stage, fn: setup.fn, ...(setup.hooks ? { hooks: setup.hooks } : {}) });
  }
  const runner = new StageRunner({
    steps,
    kafka,
    producer,
    bus,
    inFlight: stageInFlight(bus, stages),
    log,
    telemetry: ctx.telemetry,
    host: config.gateway.instance,
    onFatal: fatal,
    ...(opts.runner ?? {}),
  });
  if (stages.length > 1) {
    log.info(
      { steps: stages.map((s) => s.stage), group: opts.runner?.groupId ?? chainGroup(steps.map((s) => s.stage)) },
      'stage chain',
    );
  }
  health.addCheck('consumer', () => runner.isReady);
  for (const [name, check] of checks) health.addCheck(name, check);
  lifecycle.on('stop-intake', 'consumer', () => runner.stop());
  await runner.start();
}
