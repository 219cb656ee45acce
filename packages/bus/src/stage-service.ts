import type { PipelineStage } from '@mailgate/contracts';
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
import { StageRunner, type StageRunnerOptions } from './runner.js';
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
  /** Tests: faster group membership. */
  readonly runner?: Partial<
    Pick<
      StageRunnerOptions,
      'sessionTimeoutMs' | 'heartbeatIntervalMs' | 'maxWaitTimeInMs' | 'groupId' | 'topic' | 'faults'
    >
  >;
}

type SectionWithHttp = { http: { host: string; port: number }; bus?: Partial<BusConfig> };

/**
 * A pipeline stage as a service: the shared runtime (config, logs, telemetry, health, shutdown) plus the bus
 * (`connectBus`: Kafka client, durable producer; the stage runner, whose unrecoverable crash is fatal). A stage
 * service is then only its `setup`.
 */
export function defineStageService<K extends ServiceSection, S extends ZodTypeAny>(
  def: StageServiceDefinition<K, S>,
): ServiceDefinition<{ [P in K]: S }> {
  return {
    name: def.stage,
    sections: { [def.section]: def.schema } as { [P in K]: S },
    http: (config) => (config[def.section as keyof typeof config] as unknown as SectionWithHttp).http,
    async start(ctx) {
      const { config, log, lifecycle, health } = ctx;
      const section = config[def.section as keyof typeof config] as unknown as SectionWithHttp;
      const bus = busSchema.parse({ ...config.bus, ...(section.bus ?? {}) });
      const { kafka, producer, fatal } = await connectBus(config.kafka, ctx, { clientId: def.stage });
      const setup = await def.setup({ ...ctx, kafka, producer });
      const runner = new StageRunner({
        stage: def.stage,
        kafka,
        producer,
        fn: setup.fn,
        bus,
        log,
        telemetry: ctx.telemetry,
        host: config.gateway.instance,
        ...(setup.hooks ? { hooks: setup.hooks } : {}),
        onFatal: fatal,
        ...(def.runner ?? {}),
      });
      health.addCheck('consumer', () => runner.isReady);
      for (const [name, check] of Object.entries(setup.checks ?? {})) health.addCheck(name, check);
      lifecycle.on('stop-intake', 'consumer', () => runner.stop());
      if (setup.close) lifecycle.on('close', 'stage', setup.close);
      await runner.start();
    },
  };
}
