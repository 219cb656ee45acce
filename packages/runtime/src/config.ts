import { readFileSync } from 'node:fs';
import os from 'node:os';
import { parseDocument } from 'yaml';
import { z, type ZodTypeAny } from 'zod';
import { SERVICE_CONFIG_SECTIONS, SERVICES, type ServiceConfigSection, type ServiceName } from '@mailgate/contracts';

/**
 * One configuration document for the whole gateway: a YAML file plus environment overrides, validated at
 * start-up. Every service reads the same document; the common sections are declared here, each service
 * declares its own section's schema beside its code and passes it in (see `SERVICE_SECTIONS`).
 *
 * Environment overrides: `MAILGATE__<SECTION>__<KEY>...=<YAML scalar or flow value>`, e.g.
 *   MAILGATE__KAFKA__BROKERS='[kafka-0:9092, kafka-1:9092]'
 *   MAILGATE__VIRUS_SCAN__HTTP__PORT=9103
 * Segments match keys case-insensitively ignoring `_` and `-` (VIRUS_SCAN → virusScan).
 * `MAILGATE_CONFIG` names the file when no --config is given.
 */

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    message: string,
    /** Dotted key path, e.g. `kafka.brokers[0]`. */
    readonly key: string,
    /** Where the bad value came from: `file deploy/x.yaml` or `env MAILGATE__KAFKA__BROKERS`. */
    readonly source: string,
  ) {
    super(`config error at ${key || '(root)'} (${source}): ${message}`);
  }
}

/** Errors from one load, all of them (an operator fixes a file once, not once per error). */
export class ConfigErrors extends Error {
  override readonly name = 'ConfigErrors';
  constructor(readonly errors: ConfigError[]) {
    super(errors.map((e) => e.message).join('\n'));
  }
}

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

export type LoadedConfig<S extends Partial<Record<ServiceSection, ZodTypeAny>>> = CommonConfig & {
  [K in keyof S]: S[K] extends ZodTypeAny ? z.infer<S[K]> : never;
} & { readonly $source: { file?: string } };

export interface LoadConfigOptions<S extends Partial<Record<ServiceSection, ZodTypeAny>>> {
  /** YAML file; falls back to env MAILGATE_CONFIG; none = defaults + env only. */
  file?: string | undefined;
  /** Inline document (tests); merged under the file. */
  document?: unknown;
  env?: NodeJS.ProcessEnv;
  /** Section schemas of the services that will use this config. */
  sections?: S;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const ENV_PREFIX = 'MAILGATE__';

function norm(s: string): string {
  return s.toLowerCase().replace(/[_-]/g, '');
}

function camel(s: string): string {
  return s.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

interface EnvOrigin {
  readonly variable: string;
  /** The value as written in the environment (used when the key wants a string, e.g. a password "123456"). */
  readonly raw: string;
  /** The container and key the value was written to, so it can be replaced by `raw`. */
  readonly parent: Record<string, Json>;
  readonly key: string;
}

/**
 * Apply MAILGATE__A__B=value overrides; returns which dotted paths came from which variable.
 * `MAILGATE__A__B_FILE=/path` reads the value from a file (a mounted secret), verbatim, as a string.
 */
function applyEnv(doc: Record<string, Json>, env: NodeJS.ProcessEnv): Map<string, EnvOrigin> {
  const origins = new Map<string, EnvOrigin>();
  const names = Object.keys(env)
    .filter((k) => k.startsWith(ENV_PREFIX))
    .sort();
  for (const name of names) {
    let raw = env[name] ?? '';
    let segments = name.slice(ENV_PREFIX.length).split('__').filter(Boolean);
    if (segments.length === 0) continue;
    let fromFile = false;
    const lastSeg = segments[segments.length - 1]!;
    if (lastSeg.endsWith('_FILE')) {
      segments = [...segments.slice(0, -1), lastSeg.slice(0, -'_FILE'.length)];
      try {
        raw = readFileSync(raw, 'utf8').replace(/\r?\n$/, '');
      } catch (e) {
        throw new ConfigErrors([new ConfigError(`cannot read: ${(e as Error).message}`, '', `env ${name}`)]);
      }
      fromFile = true;
    }
    let node: Record<string, Json> = doc;
    const path: string[] = [];
    segments.forEach((seg, i) => {
      const existing = Object.keys(node).find((k) => norm(k) === norm(seg));
      const key = existing ?? camel(seg);
      path.push(key);
      if (i === segments.length - 1) {
        let value: Json = raw;
        if (!fromFile) {
          const parsed = parseDocument(raw);
          // `null`/`~` mean null (e.g. dev.broker.dataDir: null); an unparsable value is taken verbatim.
          value = parsed.errors.length > 0 ? raw : raw.trim() === '' ? raw : (parsed.toJS() as Json);
        }
        node[key] = value;
        origins.set(path.join('.'), { variable: name, raw, parent: node, key });
      } else {
        const next = node[key];
        if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
        node = node[key] as Record<string, Json>;
      }
    });
  }
  return origins;
}

function deepMerge(base: Json, over: Json): Json {
  if (
    typeof base === 'object' &&
    base !== null &&
    !Array.isArray(base) &&
    typeof over === 'object' &&
    over !== null &&
    !Array.isArray(over)
  ) {
    const out: Record<string, Json> = { ...base };
    for (const [k, v] of Object.entries(over)) out[k] = k in out ? deepMerge(out[k]!, v) : v;
    return out;
  }
  return over;
}

function pathToString(path: (string | number)[]): string {
  return path.reduce<string>((acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '');
}

function originFor(path: string, origins: Map<string, EnvOrigin>): EnvOrigin | undefined {
  for (let p = path; p; p = p.includes('.') ? p.slice(0, p.lastIndexOf('.')) : '') {
    const bare = p.replace(/\[\d+\]$/, '');
    const o = origins.get(bare) ?? origins.get(p);
    if (o) return o;
  }
  return undefined;
}

function sourceFor(path: string, origins: Map<string, EnvOrigin>, fileSource: string): string {
  const o = originFor(path, origins);
  return o ? `env ${o.variable}` : fileSource;
}

/** Load, merge and validate the configuration document. Throws ConfigErrors naming each key and its source. */
export function loadConfig<S extends Partial<Record<ServiceSection, ZodTypeAny>> = Record<never, never>>(
  opts: LoadConfigOptions<S> = {},
): LoadedConfig<S> {
  const env = opts.env ?? process.env;
  const file = opts.file ?? env['MAILGATE_CONFIG'];
  const fileSource = file ? `file ${file}` : 'defaults';
  let doc: Json = (opts.document as Json) ?? {};
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new ConfigErrors([new ConfigError(`cannot read: ${(e as Error).message}`, '', `file ${file}`)]);
    }
    const parsed = parseDocument(text, { prettyErrors: true });
    if (parsed.errors.length > 0) {
      throw new ConfigErrors(
        parsed.errors.map((e) => new ConfigError(`YAML: ${e.message.split('\n')[0]}`, '', `file ${file}`)),
      );
    }
    doc = deepMerge(doc, (parsed.toJS() as Json) ?? {});
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new ConfigErrors([new ConfigError('the document must be a mapping', '', fileSource)]);
  }
  const origins = applyEnv(doc, env);

  const sections = (opts.sections ?? {}) as Record<string, ZodTypeAny>;
  const shape: Record<string, ZodTypeAny> = { ...COMMON_SECTIONS };
  for (const key of SERVICE_SECTIONS) shape[key] = sections[key] ?? z.unknown();
  const schema = z.object(shape).strict();
  let result = schema.safeParse(doc);
  if (!result.success) {
    // An environment value that YAML read as a number/boolean where the key wants a string (a password
    // "123456", a token "true") is taken verbatim instead.
    let retried = false;
    for (const issue of result.error.issues) {
      if (issue.code !== 'invalid_type' || issue.expected !== 'string') continue;
      const o = origins.get(pathToString(issue.path));
      if (o) {
        o.parent[o.key] = o.raw;
        retried = true;
      }
    }
    if (retried) result = schema.safeParse(doc);
  }
  if (!result.success) {
    const errors = result.error.issues.flatMap((issue) => {
      if (issue.code === 'unrecognized_keys') {
        return issue.keys.map((k) => {
          const key = pathToString([...issue.path, k]);
          return new ConfigError('unknown key', key, sourceFor(key, origins, fileSource));
        });
      }
      const key = pathToString(issue.path);
      return [new ConfigError(issue.message, key, sourceFor(key, origins, fileSource))];
    });
    throw new ConfigErrors(errors);
  }
  return Object.assign(result.data as object, { $source: file ? { file } : {} }) as LoadedConfig<S>;
}
