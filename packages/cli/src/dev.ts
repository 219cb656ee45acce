import type { ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startBroker, type BrokerHandle } from '@mailgate/kafka-lite';
import { createLogger, loadConfig, logFormat, type Logger } from '@mailgate/runtime';
import { SERVICE_NAMES, SERVICES, type ServiceName } from '@mailgate/contracts';
import { devSchema } from './dev-config.js';
import { startDevDirectory } from './dev-ldap.js';
import { startDevSink } from './dev-mailbox.js';
import { availableServices } from './services.js';
import { Supervisor } from './supervisor.js';
import { tcpOpen } from './tcp-open.js';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../bin/mailgate.js');
const SRC_MAIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../src/main.ts');

async function waitHealthy(port: number, timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/healthz`);
      if (r.ok) return true;
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return false;
}

/** A process `mailgate dev` runs: a service, or `chain` (dev.chain's stages in one process). */
export type DevProcess = ServiceName | 'chain';

export interface DevHandle {
  readonly broker: BrokerHandle;
  /** The current process of each service, or of the stage chain (replaced when its supervisor restarts it). */
  readonly children: Map<DevProcess, ChildProcess>;
  readonly supervisors: Map<DevProcess, Supervisor>;
  readonly smtpPorts: number[];
  stop(): Promise<void>;
}

/**
 * `mailgate dev`: kafka-lite in this process, Redis/clamd/a sink when needed, and every installed service as its
 * own child process (as in Kubernetes: one process per stage, so killing one shows what the others do).
 */
export async function runDev(opts: { configFile?: string; log?: Logger; env?: NodeJS.ProcessEnv }): Promise<DevHandle> {
  const env = opts.env ?? process.env;
  const config = loadConfig({ file: opts.configFile, env, sections: { dev: devSchema } });
  const childEnv: NodeJS.ProcessEnv = { ...env };
  // A developer at a terminal reads the logs: pretty unless the config or $MAILGATE_LOG_FORMAT says otherwise.
  // The services inherit the terminal (stdio) and the choice (env).
  if (!env['MAILGATE_LOG_FORMAT'] && !config.logging.format && process.stderr.isTTY)
    childEnv['MAILGATE_LOG_FORMAT'] = 'pretty';
  const log =
    opts.log ?? createLogger('dev', config.logging.level, undefined, logFormat(config.logging.format, childEnv));
  const dev = config.dev;
  const cleanups: (() => Promise<unknown>)[] = [];
  if (opts.configFile) childEnv['MAILGATE_CONFIG'] = path.resolve(opts.configFile);
  for (const name of SERVICE_NAMES) {
    const section = SERVICES[name].section.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase(); // virusScan → VIRUS_SCAN
    childEnv[`MAILGATE__${section}__HTTP__HOST`] ??= dev.httpHost;
  }

  if (dev.broker.dataDir) mkdirSync(dev.broker.dataDir, { recursive: true });
  const broker = await startBroker({
    host: dev.broker.host,
    port: dev.broker.port,
    defaultPartitions: dev.broker.partitions,
    ...(dev.broker.dataDir ? { dataDir: path.resolve(dev.broker.dataDir) } : {}),
    logLevel: 'warn',
  });
  cleanups.push(() => broker.close());
  childEnv['MAILGATE__KAFKA__BROKERS'] = `[${broker.brokers}]`;
  log.info({ brokers: broker.brokers, dataDir: dev.broker.dataDir }, 'embedded kafka-lite started');

  const devstack = await import('@mailgate/devstack');
  const redisUrl = new URL(config.redis.url);
  const redisUp = await tcpOpen(redisUrl.hostname, Number(redisUrl.port || 6379));
  if (dev.redis.spawn === 'always' || (dev.redis.spawn === 'auto' && !redisUp)) {
    const r = await devstack.startRedis({ appendonly: true });
    cleanups.push(() => r.stop());
    childEnv['MAILGATE__REDIS__URL'] = r.url;
    log.info({ url: r.url }, 'private redis-server started');
  }

  const stopDirectory = await startDevDirectory({
    spawn: dev.ldap.spawn,
    ingress: (config as { ingress?: unknown }).ingress,
    childEnv,
    log,
  });
  if (stopDirectory) cleanups.push(stopDirectory);

  const clamdEndpoint = (config as { virusScan?: { clamd?: { endpoints?: { host?: string; port?: number }[] } } })
    .virusScan?.clamd?.endpoints?.[0];
  const clamdUp =
    clamdEndpoint?.host && clamdEndpoint.port ? await tcpOpen(clamdEndpoint.host, clamdEndpoint.port) : false;
  if (dev.clamd.spawn === 'always' || (dev.clamd.spawn === 'auto' && !clamdUp)) {
    try {
      const c = await devstack.startClamd({ streamMaxLength: '60M' });
      cleanups.push(() => c.stop());
      childEnv['MAILGATE__VIRUS_SCAN__CLAMD__ENDPOINTS'] = `[{host: ${c.host}, port: ${c.port}}]`;
      log.warn(
        { port: c.port },
        'clamd started with the TEST signature database only (EICAR); use a real clamd for real scanning',
      );
    } catch (e) {
      log.error(
        { err: (e as Error).message },
        'could not start clamd (install clamav-daemon); virus-scan will hold mail (fail closed)',
      );
    }
  }

  const rspamdWorker = (config as { spamCheck?: { rspamd?: { worker?: { host?: string; port?: number } } } }).spamCheck
    ?.rspamd?.worker;
  const rspamdUp = await tcpOpen(rspamdWorker?.host ?? '127.0.0.1', rspamdWorker?.port ?? 11333);
  if (dev.rspamd.spawn === 'always' || (dev.rspamd.spawn === 'auto' && !rspamdUp)) {
    try {
      const url = new URL(childEnv['MAILGATE__REDIS__URL'] ?? config.redis.url);
      const r = await devstack.startRspamd({ redis: { host: url.hostname, port: Number(url.port || 6379), db: 5 } });
      cleanups.push(() => r.stop());
      childEnv['MAILGATE__SPAM_CHECK__RSPAMD__WORKER'] = `{host: ${r.host}, port: ${r.port}}`;
      childEnv['MAILGATE__SPAM_CHECK__RSPAMD__CONTROLLER'] = `{host: ${r.host}, port: ${r.controllerPort}}`;
      childEnv['MAILGATE__SPAM_CHECK__RSPAMD__PASSWORD'] = r.password;
      // Spam learning from the console/API ("release as not spam", "mark as spam") through the same rspamd.
      childEnv['MAILGATE__ADMIN__RSPAMD__CONTROLLER_URL'] = `http://${r.host}:${r.controllerPort}`;
      childEnv['MAILGATE__ADMIN__RSPAMD__PASSWORD'] = r.password;
      log.warn(
        { port: r.port, controller: r.controllerPort, startupMs: r.startupMs },
        'rspamd started with network checks OFF (no DNS lists, SPF/DKIM, fuzzy); use a real rspamd in production',
      );
    } catch (e) {
      log.error(
        { err: (e as Error).message.split('\n')[0] },
        'could not start rspamd (install rspamd); spam-check will hold mail (fail closed)',
      );
    }
  }

  if (dev.sink.enabled) {
    const { close } = await startDevSink(dev.sink, { log, childEnv });
    cleanups.push(close);
  }

  const wanted = dev.services ? new Set(dev.services) : null;
  const chained = new Set<string>(dev.chain ?? []);
  const children = new Map<DevProcess, ChildProcess>();
  const supervisors = new Map<DevProcess, Supervisor>();
  const entry = process.execArgv.some((a) => a.includes('tsx')) ? SRC_MAIN : BIN;
  // Supervised: a crashed service is restarted with backoff (logged), as Kubernetes would.
  const supervise = (name: DevProcess, args: string[]): void => {
    const sup = new Supervisor({
      name,
      command: process.execPath,
      args: [...process.execArgv, entry, ...args],
      spawnOptions: { env: childEnv, stdio: ['ignore', 'inherit', 'inherit'] },
      log,
    });
    sup.onStart((p) => children.set(name, p));
    sup.start();
    supervisors.set(name, sup);
  };
  for (const svc of await availableServices()) {
    if (wanted && !wanted.has(svc.name)) continue;
    if (chained.has(svc.name)) continue; // runs inside the chain process below
    if (!svc.def) {
      log.warn({ service: svc.name, reason: svc.error }, 'service not available: skipped');
      continue;
    }
    supervise(svc.name, [svc.name]);
  }
  if (dev.chain) {
    // dev.services does not filter the chain: asking for a chain is asking for its stages.
    supervise('chain', ['chain', dev.chain.join(',')]);
    log.info({ chain: dev.chain }, 'check stages run as one stage chain process (dev.chain)');
  }

  // Report each service's health endpoint once it answers.
  const probe = loadConfig({ file: opts.configFile, env: childEnv }) as unknown as Record<
    string,
    { http?: { port?: number } }
  >;
  const httpPorts = Object.fromEntries(
    SERVICE_NAMES.map((n) => [n, probe[SERVICES[n].section]?.['http']?.port ?? SERVICES[n].httpPort]),
  ) as Record<DevProcess, number>;
  // A chain serves health on its first stage's port (packages/bus defineChainService).
  if (dev.chain?.[0]) httpPorts.chain = httpPorts[dev.chain[0]];
  await Promise.all(
    [...children.keys()].map(async (name) => {
      const port = httpPorts[name];
      if (port && (await waitHealthy(port, 60_000)))
        log.info({ service: name, health: `http://127.0.0.1:${port}/readyz` }, 'service up');
      else log.error({ service: name }, 'service did not become healthy within 60 s');
    }),
  );
  const ingress = (probe['ingress'] as { listeners?: Record<string, { port?: number }> } | undefined)?.listeners;
  const smtpPorts = Object.values(ingress ?? {})
    .map((l) => l.port ?? 0)
    .filter(Boolean);
  log.info({ smtp: smtpPorts }, 'mailgate dev is running (Ctrl-C stops everything)');

  return {
    broker,
    children,
    supervisors,
    smtpPorts,
    async stop() {
      await Promise.all([...supervisors.values()].map((s) => s.stop(20_000)));
      for (const c of cleanups.reverse()) await c().catch(() => undefined);
    },
  };
}
