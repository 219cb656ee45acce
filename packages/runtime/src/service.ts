import type { ServiceName } from '@mailgate/contracts';
import { startTelemetry, type Telemetry } from '@mailgate/telemetry';
import type { ZodTypeAny } from 'zod';
import { loadConfig, type LoadedConfig, type ServiceSection } from './config.js';
import { createHealthServer, type HealthServer } from './http.js';
import { createLifecycle, type Lifecycle } from './lifecycle.js';
import { createLogger, logFormat, type Logger } from './logger.js';

export interface ServiceContext<C> {
  readonly name: ServiceName;
  readonly config: C;
  readonly log: Logger;
  readonly telemetry: Telemetry;
  readonly lifecycle: Lifecycle;
  readonly health: HealthServer;
}

export interface ServiceDefinition<S extends Partial<Record<ServiceSection, ZodTypeAny>>> {
  readonly name: ServiceName;
  /**
   * What logs, telemetry (service.name) and /healthz call the process when it is not just `name`: a stage chain
   * (`chain dnsbl-check,virus-scan,…`; its `name` is its first stage, whose section has its http port).
   */
  readonly label?: string;
  /** This service's config section schema(s), e.g. `{ virusScan: virusScanSchema }`. */
  readonly sections: S;
  /** Where the health/metrics HTTP server listens, read from the service's section. */
  readonly http: (config: LoadedConfig<S>) => { host: string; port: number };
  /** Build clients and start work. Register shutdown hooks on ctx.lifecycle and readiness checks on ctx.health. */
  readonly start: (ctx: ServiceContext<LoadedConfig<S>>) => Promise<void>;
}

export interface StartOptions {
  /** YAML config file (default: env MAILGATE_CONFIG). */
  configFile?: string | undefined;
  /** Inline config document (tests). */
  configDocument?: unknown;
  env?: NodeJS.ProcessEnv;
  /** Install SIGTERM/SIGINT handlers that drain and exit (true for CLI runs, false in tests). */
  signals?: boolean;
  /** Override the logger (tests). */
  log?: Logger;
  /** Override HTTP port (tests use 0). */
  httpPort?: number;
}

export interface RunningService<C> {
  readonly ctx: ServiceContext<C>;
  readonly http: { host: string; port: number };
  /** Graceful stop: the same sequence as SIGTERM. */
  stop(): Promise<void>;
}

/**
 * The one way a service starts: load + validate config, logger, telemetry, health server, lifecycle;
 * then the service's own `start`. Errors before the service is up are thrown (the CLI prints them and exits 78).
 */
export async function startService<S extends Partial<Record<ServiceSection, ZodTypeAny>>>(
  def: ServiceDefinition<S>,
  opts: StartOptions = {},
): Promise<RunningService<LoadedConfig<S>>> {
  const config = loadConfig({
    file: opts.configFile,
    document: opts.configDocument,
    env: opts.env ?? process.env,
    sections: def.sections,
  });
  const label = def.label ?? def.name;
  const log = opts.log ?? createLogger(label, config.logging.level, undefined, logFormat(config.logging.format));
  const telemetry = startTelemetry({
    serviceName: label,
    otlpEndpoint: config.telemetry.tracing.enabled ? config.telemetry.tracing.otlpEndpoint : undefined,
    sampleRatio: config.telemetry.tracing.enabled ? config.telemetry.tracing.sampleRatio : 0,
  });
  const lifecycle = createLifecycle(log, { forceExitMs: config.gateway.shutdownTimeoutMs });
  const httpCfg = def.http(config);
  const health = createHealthServer({
    host: httpCfg.host,
    port: opts.httpPort ?? httpCfg.port,
    service: label,
    log,
    telemetry,
  });
  lifecycle.on('readiness-off', 'health', () => health.setAccepting(false));
  lifecycle.on('close', 'telemetry', () => telemetry.shutdown());
  lifecycle.on('close', 'http', () => health.close());
  const ctx: ServiceContext<LoadedConfig<S>> = { name: def.name, config, log, telemetry, lifecycle, health };
  try {
    await def.start(ctx);
  } catch (err) {
    log.error({ err }, 'service failed to start');
    await lifecycle.shutdown('start failed');
    throw err;
  }
  const http = await health.listen();
  if (opts.signals) lifecycle.installSignalHandlers();
  log.info({ http }, `${label} started`);
  return { ctx, http, stop: () => lifecycle.shutdown('stop requested') };
}
