// The common sections of the configuration document (gateway, kafka, redis, logging, telemetry, bus, the http
// section every service has) and which top-level sections belong to which service. The loader (env overrides, YAML,
// error mapping) is ./config.ts, which re-exports all of this.
import os from 'node:os';
import { z } from 'zod';
import { SERVICE_CONFIG_SECTIONS, SERVICES, type ServiceConfigSection, type ServiceName } from '@mailgate/contracts';

const hostPort = z.string().regex(/^[^\s:]+:\d{1,5}$|^\[[0-9a-fA-F:.]+\]:\d{1,5}$/, 'expected host:port');

/**
 * A service's `http` section (health, readiness, /metrics). Pass the service name: its default port is the one in
 * the SERVICES table of @mailgate/contracts (what the chart, probes and Prometheus use). A number is for tests.
 */
export const httpSchema = (service: ServiceName | number) =>
  z
    .object({
      host: z.string().default('0.0.0.0'),
      port: z
        .number()
        .int()
        .min(0)
        .max(65535)
        .default(typeof service === 'number' ? service : SERVICES[service].httpPort),
    })
    .strict()
    .default({});

export const gatewaySchema = z
  .object({
    /** Product name written in headers we add (X-<name>-...) and in Received lines. */
    name: z.string().default('mailgate'),
    /** Our public host name: EHLO/HELO, Received "by", DSN Reporting-MTA. */
    hostname: z.string().default(os.hostname()),
    /** Instance (pod) name for tracking events; Kubernetes sets POD_NAME. */
    instance: z.string().default(process.env['POD_NAME'] ?? os.hostname()),
    /** Postmaster address used as the From of DSNs. */
    postmaster: z.string().optional(),
    /**
     * After SIGTERM the process exits at the latest this long later, drained or not. Keep it above the longest drain
     * (ingress.drainTimeoutMs + producer flush) and below Kubernetes' terminationGracePeriodSeconds minus preStop
     * (the Helm chart sets it from those).
     */
    shutdownTimeoutMs: z.number().int().positive().default(60_000),
  })
  .strict()
  .default({});

export const kafkaSchema = z
  .object({
    brokers: z.array(hostPort).min(1).default(['127.0.0.1:9092']),
    clientId: z.string().default('mailgate'),
    ssl: z
      .union([
        z.boolean(),
        z
          .object({
            caFile: z.string().optional(),
            certFile: z.string().optional(),
            keyFile: z.string().optional(),
            rejectUnauthorized: z.boolean().default(true),
          })
          .strict(),
      ])
      .default(false),
    sasl: z
      .object({
        mechanism: z.enum(['plain', 'scram-sha-256', 'scram-sha-512']),
        username: z.string(),
        password: z.string(),
      })
      .strict()
      .optional(),
    connectionTimeoutMs: z.number().int().positive().default(3000),
    requestTimeoutMs: z.number().int().positive().default(30000),
    /** How long a durable produce (acks=-1) may take before ingress answers 451 / a stage retries. */
    produceTimeoutMs: z.number().int().positive().default(10000),
    topics: z
      .object({
        /** Create the pipeline topics at start-up if missing. */
        create: z.boolean().default(true),
        partitions: z.number().int().positive().default(6),
        replicationFactor: z.number().int().positive().default(1),
      })
      .strict()
      .default({}),
  })
  .strict()
  .default({});

export const redisSchema = z
  .object({
    url: z.string().default('redis://127.0.0.1:6379'),
    keyPrefix: z.string().default('mailgate:'),
  })
  .strict()
  .default({});

export const loggingSchema = z
  .object({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /**
     * json (the default: one object per line, for log collectors) or pretty (pino-pretty, for a terminal).
     * $MAILGATE_LOG_FORMAT and `mailgate --pretty` override it; unset, `mailgate dev` is pretty on a terminal.
     */
    format: z.enum(['json', 'pretty']).optional(),
  })
  .strict()
  .default({});

export const telemetrySchema = z
  .object({
    tracing: z
      .object({
        enabled: z.boolean().default(true),
        /** OTLP/HTTP endpoint, e.g. http://jaeger:4318. Unset: spans are created (ids in headers/events) but not exported. */
        otlpEndpoint: z.string().url().optional(),
        /** Fraction of messages traced. Default 1: each message is an audit record. */
        sampleRatio: z.number().min(0).max(1).default(1),
      })
      .strict()
      .default({}),
  })
  .strict()
  .default({});

/** How a pipeline stage consumes (packages/bus). Each stage section may override it under `bus:`. */
export const busSchema = z
  .object({
    /** Messages processed in parallel per partition batch. */
    concurrency: z.number().int().positive().default(8),
    /** Attempts for a stage that throws before the record goes to the dead-letter topic. */
    maxAttempts: z.number().int().positive().default(5),
    retry: z
      .object({
        initialMs: z.number().int().nonnegative().default(1000),
        maxMs: z.number().int().positive().default(60000),
        factor: z.number().min(1).default(2),
      })
      .strict()
      .default({}),
    /** How long a `tempfail` message is held and retried before it is quarantined as undecidable. */
    maxHoldMs: z
      .number()
      .int()
      .positive()
      .default(4 * 3600 * 1000),
    /**
     * Consumer group session timeout: how long a crashed (kill -9) replica keeps its partitions before the group
     * hands them to the others. Lower = faster failover, higher = tolerates longer GC/network pauses.
     */
    sessionTimeoutMs: z.number().int().min(1000).default(30_000),
    heartbeatIntervalMs: z.number().int().min(100).default(3000),
    /**
     * Fetch batching: a fetch returns once this many bytes are waiting or after fetchMaxWaitMs. Under live traffic
     * (messages trickling in) minBytes 1 costs one fetch + produce + commit per message; batching a few halves the
     * per-message CPU of a stage hop (npm run bench:stage-hop) for at most fetchMaxWaitMs of added latency per hop.
     */
    fetchMinBytes: z.number().int().min(1).default(65_536),
    /** Longest a fetch waits for fetchMinBytes; also bounds how long a drain waits for kafkajs' fetch loop. */
    fetchMaxWaitMs: z.number().int().min(1).max(10_000).default(25),
    /**
     * Offset-commit coalescing within one fetched batch: offsets are committed at the end of the batch and, in a long
     * batch (a backlog), after the first chunk that finishes this long after the last commit, instead of after every
     * chunk. Always after the output was produced; a crash redelivers at most this much work (duplicates, never
     * loss). 0 = after every chunk.
     */
    commitIntervalMs: z.number().int().min(0).max(60_000).default(1000),
    /**
     * Partitions one replica works on at once (kafkajs partitionsConsumedConcurrently), each `concurrency` records
     * at a time. At 3 (the old fixed value) a replica holding 6 of 12 partitions left half of them waiting behind
     * the other half's fetch-decide-produce round trips; docs/benchmarks.md measures the difference.
     */
    partitionsConcurrently: z.number().int().min(1).max(256).default(12),
    /**
     * Records one replica keeps in flight across the partitions it works on. A replica of a scaled-out stage holds
     * fewer partitions (12 partitions, 4 replicas: 3 each), so with chunks of `concurrency` per partition it would
     * have a quarter of the work in flight of a single replica; an I/O-bound stage (delivery: SMTP and Redis round
     * trips) then pays its per-round-trip and per-chunk costs over fewer messages. With inFlight set, a partition is
     * worked on through a sliding window of inFlight ÷ (partitions worked on at once) records, never below
     * `concurrency` (no chunk barrier; the commit covers the produced prefix). 0 = always chunks of `concurrency`.
     * Unset: the stage's own default (delivery 96 = 8 × 12, the others 0).
     */
    inFlight: z.number().int().min(0).max(10_000).optional(),
    /**
     * With inFlight set: work on each partition through a sliding window (default) or in chunks of that size that
     * wait for their slowest record. The window keeps one slow SMTP transaction from idling its chunk's other slots
     * (delivery at 4 replicas with a slow server among fast ones: 146 against 77–83 msg/s), and since it outlives
     * the fetched batch, one slow record no longer holds the replica's next fetch either; chunks cost less CPU per
     * message when nothing is slow (docs/benchmarks.md, round 6). No effect when inFlight is 0.
     */
    slidingWindow: z.boolean().default(true),
  })
  .strict()
  .default({});

export type GatewayConfig = z.infer<typeof gatewaySchema>;
export type KafkaConfig = z.infer<typeof kafkaSchema>;
export type RedisConfig = z.infer<typeof redisSchema>;
export type LoggingConfig = z.infer<typeof loggingSchema>;
export type TelemetryConfig = z.infer<typeof telemetrySchema>;
export type BusConfig = z.infer<typeof busSchema>;

/** The common sections every service understands. */
export const COMMON_SECTIONS = {
  gateway: gatewaySchema,
  kafka: kafkaSchema,
  redis: redisSchema,
  logging: loggingSchema,
  telemetry: telemetrySchema,
  bus: busSchema,
} as const;

/** Sections read by several services (senderAuth: ingress and delivery) or by the dev launcher, not one service. */
const SHARED_SECTIONS = ['senderAuth', 'dev'] as const;
export type ServiceSection = ServiceConfigSection | (typeof SHARED_SECTIONS)[number];

/**
 * The top-level keys of the document that belong to one service each (from the SERVICES table of
 * @mailgate/contracts), plus the shared ones. A service validates its own section strictly; the others are checked
 * by their own service (and all at once by `mailgate config check`).
 */
export const SERVICE_SECTIONS: readonly ServiceSection[] = [...SERVICE_CONFIG_SECTIONS, ...SHARED_SECTIONS];

export type CommonConfig = {
  gateway: GatewayConfig;
  kafka: KafkaConfig;
  redis: RedisConfig;
  logging: LoggingConfig;
  telemetry: TelemetryConfig;
  bus: BusConfig;
};
