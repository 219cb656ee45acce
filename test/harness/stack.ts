// The whole gateway on loopback for end-to-end, chaos and benchmark runs: every service is its own child process
// (the CLI from source), kafka-lite runs as a child process in data-dir mode, Redis with AOF, Debian's clamd with the
// test signature database, rbldnsd serving both a DNSBL zone and the MX records of an "Internet" domain, and SMTP
// sinks standing in for the internal mail server and for the remote MX hosts.
//
// Addresses (all loopback, no setup needed on Linux):
//   127.0.0.1        ingress listener, internal sink, every infrastructure server
//   127.0.0.10       the "internal mail server" client: ingress.trustedNetworks (may relay anywhere)
//   127.0.0.66       a client listed in the DNSBL zone bl.test (refused at connect)
//   127.0.0.12/.13   mx1/mx2.remote.test: remote MX sinks on one port (delivery.mxPort)
//   127.0.0.20       other untrusted Internet clients (relay attempts)
//
// Sender authentication: rbldnsd also serves a catch-all `test` zone with the TXT records (SPF, DMARC, DKIM keys)
// of signed.test (mail from 127.0.0.20, p=reject, DKIM key `s1`), forged.test (p=reject, sends from nowhere we
// see) and example.test (our own outbound signing keys mg-rsa / mg-ed). rbldnsd serves at most 255 bytes per TXT
// record, so the keys are Ed25519 and RSA-1024 (production keys are RSA-2048 + Ed25519).
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  freePort,
  makeTempDir,
  ManagedProcess,
  removeTempDir,
  startClamd,
  startKafkaProcess,
  startRbldnsd,
  startRedis,
  startRspamd,
  startSmtpSink,
  type ClamdHandle,
  type KafkaProcessHandle,
  type RbldnsdHandle,
  type RedisHandle,
  type RspamdHandle,
  type Sink,
} from '@mailgate/testkit';
import {
  PIPELINE_STAGES,
  SERVICE_NAMES,
  SERVICES as SERVICE_TABLE,
  type PipelineStage,
  type ServiceName,
} from '@mailgate/contracts';
import { dkimDnsRecord } from '@mailgate/sender-auth';
import { stringify } from 'yaml';
import { REPO_ROOT } from './paths.js';

export const ACCEPTED_DOMAIN = 'example.test';
export const REMOTE_DOMAIN = 'remote.test';
export const TRUSTED_CLIENT = '127.0.0.10';
export const LISTED_CLIENT = '127.0.0.66';
export const INTERNET_CLIENT = '127.0.0.20';
export const MX1 = '127.0.0.12';
export const MX2 = '127.0.0.13';
export const ADMIN_TOKEN = 'e2e-admin-token-0123456789abcdef';
/** authserv-id of our Authentication-Results. */
export const AUTHSERV_ID = 'gw.example.test';

/** Keys of the sender-auth scenarios (one per test process). */
export const DKIM_KEYS = (() => {
  const ed = (): KeyObject => generateKeyPairSync('ed25519').privateKey;
  const pem = (k: KeyObject) => k.export({ type: 'pkcs8', format: 'pem' }) as string;
  const inbound = ed();
  const outEd = ed();
  const outRsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
  return {
    /** signed.test's key (selector s1), as dkimpy wants an Ed25519 key: the base64 seed. */
    inbound: {
      domain: 'signed.test',
      selector: 's1',
      dkimpy: inbound.export({ type: 'pkcs8', format: 'der' }).subarray(16).toString('base64'),
      record: dkimDnsRecord(inbound),
    },
    outbound: [
      { selector: 'mg-ed', pem: pem(outEd), record: dkimDnsRecord(outEd) },
      { selector: 'mg-rsa', pem: pem(outRsa), record: dkimDnsRecord(outRsa) },
    ],
  };
})();
/** Read when a service starts (not at import): a benchmark may choose the compiled build after importing this. */
const built = (): boolean => process.env['MAILGATE_E2E_BUILT'] === '1';

/** The services and stages, from the SERVICES table of @mailgate/contracts (no second list to keep in step). */
export const SERVICES: readonly ServiceName[] = SERVICE_NAMES;
export type { ServiceName };
export const STAGES = PIPELINE_STAGES.filter((s): s is Exclude<PipelineStage, 'ingress-smtp'> => s !== 'ingress-smtp');

/** Env-override segment of each service's config section (its http port is set per replica): virusScan → VIRUS_SCAN. */
const ENV_SECTION = Object.fromEntries(
  SERVICE_NAMES.map((n) => [n, SERVICE_TABLE[n].section.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()]),
) as Record<ServiceName, string>;

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export interface StackOptions {
  /** Partitions per topic (kafka.topics.partitions and the broker default). Default 3. */
  partitions?: number;
  /** Replicas per service (default 1 each; ingress and admin must stay 1). */
  replicas?: Partial<Record<ServiceName, number>>;
  /** Services to start (default all). */
  services?: readonly ServiceName[];
  /** Deep-merged over the generated config document. */
  config?: Record<string, Json>;
  /** Service log level (default 'warn'; MAILGATE_E2E_LOG overrides). */
  logLevel?: string;
  /** Startup timeout per service (default 120 s: six tsx processes starting at once on 2 loaded cores). */
  startTimeoutMs?: number;
  /** Extra CLI node flags (e.g. ['--cpu-prof']) per service. */
  nodeFlags?: Partial<Record<ServiceName, string[]>>;
  /** kafka-lite fsync policy (default 'interval'). */
  fsync?: 'always' | 'interval' | 'never';
  /**
   * Run these consecutive check stages as one `mailgate chain …` process (label `chain#<replica>`, the first
   * stage's http port, its replica count and node flags) instead of one process each. `services` has it under the
   * first stage; `proc(<any of them>)` is the chain process.
   */
  chain?: readonly PipelineStage[];
}

/** One service process (one replica). kill() is a crash (SIGKILL), restart() starts it again on the same ports. */
export class ServiceProcess {
  private proc: ManagedProcess | undefined;
  private starts = 0;
  /** Output of the runs before the current one (see startOnce). */
  private earlier = '';

  constructor(
    readonly name: ServiceName,
    readonly replica: number,
    public httpPort: number,
    private readonly configFile: string,
    private readonly env: NodeJS.ProcessEnv,
    private readonly nodeFlags: string[],
    private readonly startTimeoutMs: number,
    /** A stage chain process: `mailgate chain <stages>` (`name` is its first stage). */
    readonly chain?: readonly PipelineStage[],
  ) {}

  get pid(): number | undefined {
    return this.proc?.isRunning() ? this.proc.pid : undefined;
  }

  get running(): boolean {
    return this.proc?.isRunning() ?? false;
  }

  get label(): string {
    return `${this.chain ? 'chain' : this.name}#${this.replica}`;
  }

  /** Starts the process; if its HTTP port was taken meanwhile (EADDRINUSE), once more on a fresh port. */
  async start(): Promise<void> {
    try {
      await this.startOnce();
    } catch (err) {
      if (!/EADDRINUSE/.test((err as Error).message)) throw err;
      this.httpPort = await freePort();
      this.env[`MAILGATE__${ENV_SECTION[this.name]}__HTTP__PORT`] = String(this.httpPort);
      await this.startOnce();
    }
  }

  private async startOnce(): Promise<void> {
    this.starts += 1;
    // A restarted process's log follows the earlier runs' (a crash test needs the log of the process it killed).
    if (this.proc) this.earlier += this.proc.output();
    // MAILGATE_E2E_BUILT=1 runs the compiled CLI (`npm run build` first), as the container image does: from source,
    // tsx's require hook costs 6-16 % of a stage's CPU (kafkajs requires its protocol module on every request).
    const entry = built()
      ? [join(REPO_ROOT, 'packages/cli/bin/mailgate.js')]
      : ['--import', 'tsx', '--conditions=mailgate-src', join(REPO_ROOT, 'packages/cli/src/main.ts')];
    const command = this.chain ? ['chain', this.chain.join(',')] : [this.name];
    const args = [...this.nodeFlags, ...entry, ...command, '--config', this.configFile];
    const p = new ManagedProcess(`${this.label}(${this.starts})`, process.execPath, args, {
      cwd: REPO_ROOT,
      env: this.env,
    });
    this.proc = p;
    await this.waitReady();
  }

  /** Polls /readyz until it answers 200 (consumer joined, dependencies reachable). */
  async waitReady(timeoutMs = this.startTimeoutMs): Promise<void> {
    const p = this.proc;
    if (!p) throw new Error(`${this.label}: not started`);
    const deadline = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      if (!p.isRunning()) throw p.describeFailure('exited before it was ready');
      try {
        const r = await fetch(`http://127.0.0.1:${this.httpPort}/readyz`, { signal: AbortSignal.timeout(2000) });
        last = `${r.status} ${await r.text()}`;
        if (r.ok) return;
      } catch (e) {
        last = (e as Error).message;
      }
      if (Date.now() > deadline) {
        throw p.describeFailure(`not ready within ${timeoutMs} ms (last /readyz: ${last.slice(0, 300)})`);
      }
      await sleep(250);
    }
  }

  /** SIGKILL: a crash, no drain. */
  async kill(): Promise<void> {
    await this.proc?.kill();
  }

  /** SIGTERM: the graceful drain a Kubernetes rollout does. */
  async stop(graceMs = 30_000): Promise<void> {
    await this.proc?.stop('SIGTERM', graceMs);
  }

  async restart(): Promise<void> {
    if (this.proc?.isRunning()) await this.stop();
    await this.start();
  }

  output(): string {
    return this.earlier + (this.proc?.output() ?? '');
  }
}

export interface Stack {
  readonly dir: string;
  readonly configFile: string;
  readonly config: Record<string, Json>;
  readonly kafka: KafkaProcessHandle;
  readonly redis: RedisHandle;
  readonly clamd: ClamdHandle;
  readonly rspamd: RspamdHandle;
  readonly dns: RbldnsdHandle;
  /** The internal mail server (route for example.test). */
  readonly internal: Sink;
  /** mx1.remote.test (127.0.0.12) and mx2.remote.test (127.0.0.13), same port. */
  readonly mx1: Sink;
  readonly mx2: Sink;
  readonly smtp: { host: string; port: number };
  readonly adminUrl: string;
  readonly adminToken: string;
  readonly services: ReadonlyMap<ServiceName, ServiceProcess[]>;
  proc(name: ServiceName, replica?: number): ServiceProcess;
  /** Every process of the stack with its pid (for CPU/RSS sampling). */
  processes(): { label: string; pid: number | undefined }[];
  /** GET/POST the admin API; throws on non-2xx. */
  admin<T = unknown>(path: string, init?: { method?: string; body?: unknown }): Promise<T>;
  /** Write every process's output into <dir>/logs/ and return the folder. */
  dumpLogs(): Promise<string>;
  stop(): Promise<void>;
}

function isObj(v: unknown): v is Record<string, Json> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function deepMerge(base: Record<string, Json>, over: Record<string, Json>): Record<string, Json> {
  const out: Record<string, Json> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = isObj(b) && isObj(v) ? deepMerge(b, v) : v;
  }
  return out;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Two sinks on one port at different loopback addresses (delivery has one mxPort for every MX host). */
async function startMxSinks(): Promise<[Sink, Sink]> {
  for (let i = 0; ; i++) {
    const a = await startSmtpSink({ host: MX1, name: 'mx1.remote.test' });
    try {
      const b = await startSmtpSink({ host: MX2, port: a.port, name: 'mx2.remote.test' });
      return [a, b];
    } catch (err) {
      await a.close();
      if (i >= 5) throw err;
    }
  }
}

/** Starts everything; on a failure stops what was started and rethrows. */
export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  const partitions = opts.partitions ?? 3;
  const dir = makeTempDir('e2e-stack');
  const cleanups: (() => Promise<unknown>)[] = [];
  const procs = new Map<ServiceName, ServiceProcess[]>();
  const stopAll = async (): Promise<void> => {
    // Services first (they drain into Kafka/Redis), then the infrastructure, in reverse start order.
    await Promise.all([...procs.values()].flat().map((p) => p.kill().catch(() => undefined)));
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    cleanups.length = 0;
    await removeTempDir(dir).catch(() => undefined);
  };

  try {
    const dataDir = join(dir, 'kafka');
    await mkdir(dataDir);
    const kafka = await startKafkaProcess({
      dataDir,
      defaultPartitions: partitions,
      fsync: opts.fsync ?? 'interval',
      minSessionTimeoutMs: 1000,
      // Readiness (its READY line) is the signal; a restart on a loaded machine can take far more than 20 s.
      timeoutMs: opts.startTimeoutMs ?? 120_000,
    });
    cleanups.push(() => kafka.stop());
    await mkdir(join(dir, 'redis'));
    const redis = await startRedis({ appendonly: true, dir: join(dir, 'redis') });
    cleanups.push(() => redis.stop());
    const clamd = await startClamd({ streamMaxLength: '60M', extraConfig: ['MaxThreads 8'] });
    cleanups.push(() => clamd.stop());
    // Bayes in its own Redis db of the stack's Redis (rspamd's own backend, as in production).
    const rspamd = await startRspamd({ redis: { host: redis.host, port: redis.port, db: 5 } });
    cleanups.push(() => rspamd.stop());
    const dns = await startRbldnsd([
      // 127.0.0.2 is the RFC 5782 "must be listed" test point the zone health check asks for.
      {
        name: 'bl.test',
        type: 'ip4set',
        lines: [':127.0.0.2:Listed by the e2e test list', '127.0.0.2', LISTED_CLIENT],
      },
      {
        name: REMOTE_DOMAIN,
        type: 'generic',
        lines: [
          '$TTL 60',
          `@ MX 10 mx1.${REMOTE_DOMAIN}`,
          `@ MX 20 mx2.${REMOTE_DOMAIN}`,
          `mx1 A ${MX1}`,
          `mx2 A ${MX2}`,
        ],
      },
      {
        name: 'test',
        type: 'generic',
        lines: [
          '$TTL 60',
          `signed TXT "v=spf1 ip4:${INTERNET_CLIENT} -all"`,
          '_dmarc.signed TXT "v=DMARC1; p=reject"',
          `s1._domainkey.signed TXT "${DKIM_KEYS.inbound.record}"`,
          'forged TXT "v=spf1 ip4:192.0.2.1 -all"',
          '_dmarc.forged TXT "v=DMARC1; p=reject"',
          `${ACCEPTED_DOMAIN.replace(/\.test$/, '')} TXT "v=spf1 ip4:${TRUSTED_CLIENT} -all"`,
          ...DKIM_KEYS.outbound.map((k) => `${k.selector}._domainkey.example TXT "${k.record}"`),
        ],
      },
    ]);
    cleanups.push(() => dns.stop());
    const keyFiles = DKIM_KEYS.outbound.map((k) => {
      const f = join(dir, `${k.selector}.pem`);
      writeFileSync(f, k.pem, { mode: 0o600 });
      return { selector: k.selector, keyFile: f };
    });
    const internal = await startSmtpSink({ name: 'mail.example.test' });
    cleanups.push(() => internal.close());
    const [mx1, mx2] = await startMxSinks();
    cleanups.push(
      () => mx1.close(),
      () => mx2.close(),
    );

    const wanted = new Set<ServiceName>(opts.services ?? SERVICES);
    const ports = new Map<string, number>();
    // freePort() binds and releases: the kernel may hand the same port out twice, so keep ours unique.
    const portOf = async (key: string): Promise<number> => {
      let p = ports.get(key);
      while (p === undefined || [...ports.entries()].some(([k, v]) => v === p && k !== key)) p = await freePort();
      ports.set(key, p);
      return p;
    };
    const smtpPort = await portOf('smtp');
    const http = async (name: ServiceName, replica = 0) => ({
      host: '127.0.0.1',
      port: await portOf(`${name}#${replica}`),
    });

    let config: Record<string, Json> = {
      gateway: {
        name: 'mailgate',
        hostname: 'gw.example.test',
        instance: 'e2e',
        postmaster: `postmaster@${ACCEPTED_DOMAIN}`,
      },
      kafka: {
        brokers: [kafka.brokers],
        clientId: 'e2e',
        connectionTimeoutMs: 2000,
        requestTimeoutMs: 15000,
        topics: { create: true, partitions, replicationFactor: 1 },
      },
      redis: { url: redis.url, keyPrefix: 'mg:' },
      logging: { level: process.env['MAILGATE_E2E_LOG'] ?? opts.logLevel ?? 'warn' },
      telemetry: { tracing: { enabled: true, sampleRatio: 1 } },
      // Short backoff so a stage held by a dependency outage resumes quickly once it is back; a short session
      // timeout so the partitions of a kill -9'd stage move to its restarted replacement within seconds.
      bus: { retry: { initialMs: 200, maxMs: 2000, factor: 2 }, sessionTimeoutMs: 6000, heartbeatIntervalMs: 500 },
      ingress: {
        http: await http('ingress-smtp'),
        listeners: { mx: { enabled: true, host: '127.0.0.1', port: smtpPort } },
        acceptedDomains: [ACCEPTED_DOMAIN],
        trustedNetworks: [`${TRUSTED_CLIENT}/32`],
        limits: {
          pregreetDelayMs: 0,
          maxConnectionsPerIp: 500,
          maxConnections: 2000,
          messageRate: { max: 0, windowSeconds: 60 },
        },
        reverseDns: false,
        acceptTimeoutMs: 20000,
      },
      dnsbl: {
        http: await http('dnsbl-check'),
        resolvers: [dns.server],
        timeoutMs: 1000,
        // Loopback is skipped by default (no list has data for it); our test clients are loopback addresses.
        skipNetworks: [],
        zones: [{ name: 'bl.test', label: 'e2e-bl', type: 'ip', ipv6: false }],
        checks: { helo: false, senderDomain: false, uris: false },
        health: { enabled: true, intervalSec: 60 },
      },
      virusScan: {
        http: await http('virus-scan'),
        clamd: {
          endpoints: [{ host: clamd.host, port: clamd.port }],
          healthIntervalMs: 1000,
          connectTimeoutMs: 1000,
          readTimeoutMs: 20000,
        },
      },
      attachmentPolicy: { http: await http('attachment-policy') },
      spamCheck: {
        http: await http('spam-check'),
        rspamd: {
          worker: { host: rspamd.host, port: rspamd.port },
          controller: { host: rspamd.host, port: rspamd.controllerPort },
          password: rspamd.password,
          connectTimeoutMs: 1000,
        },
      },
      delivery: {
        http: await http('delivery'),
        routes: [{ domains: [ACCEPTED_DOMAIN], type: 'smarthost', hosts: [`127.0.0.1:${internal.port}`], tls: 'none' }],
        defaultRoute: { type: 'mx', tls: 'none' },
        dns: { resolvers: [dns.server], timeoutMs: 1000, tries: 2, ipv6: false },
        mxPort: mx1.port,
        ehloName: 'gw.example.test',
        timeouts: { connectMs: 5000, greetingMs: 10000, commandMs: 10000, dataMs: 30000 },
        retry: {
          schedule: { initialMs: 1000, factor: 1.5, maxMs: 3000, giveUpAfterMs: 3_600_000 },
          reconcileEveryMs: 5000,
        },
        limits: { backoffAfterFailures: 1000, backoffMs: 1000, connectionIdleMs: 500, slotWaitMs: 10000 },
      },
      senderAuth: {
        authservId: AUTHSERV_ID,
        dns: { resolvers: [dns.server], timeoutMs: 1000, tries: 2 },
        signing: { enabled: true, domains: [{ domain: ACCEPTED_DOMAIN, keys: keyFiles }] },
      },
      admin: { http: await http('admin'), tokens: [{ name: 'e2e', token: ADMIN_TOKEN, role: 'admin' }] },
    };
    if (opts.config) config = deepMerge(config, opts.config);
    const configFile = join(dir, 'mailgate.yaml');
    writeFileSync(configFile, stringify(config));

    const baseEnv: NodeJS.ProcessEnv = { ...process.env };
    for (const k of Object.keys(baseEnv)) if (k.startsWith('MAILGATE__') || k === 'MAILGATE_CONFIG') delete baseEnv[k];
    baseEnv['NODE_ENV'] = 'test';
    const startTimeoutMs = opts.startTimeoutMs ?? 120_000;
    const all: ServiceProcess[] = [];
    const chain = opts.chain && opts.chain.length > 0 ? opts.chain : undefined;
    for (const name of SERVICES) {
      if (!wanted.has(name)) continue;
      // The chain's later stages are the chain process (registered under its first stage below).
      if (chain && chain.includes(name as PipelineStage) && name !== chain[0]) continue;
      const n = opts.replicas?.[name] ?? 1;
      const list: ServiceProcess[] = [];
      for (let r = 0; r < n; r++) {
        const port = (await http(name, r)).port;
        const env: NodeJS.ProcessEnv = {
          ...baseEnv,
          [`MAILGATE__${ENV_SECTION[name]}__HTTP__PORT`]: String(port),
          MAILGATE__GATEWAY__INSTANCE: `${name}-${r}`,
        };
        const inChain = chain?.[0] === name ? chain : undefined;
        const flags = opts.nodeFlags?.[name] ?? [];
        const sp = new ServiceProcess(name, r, port, configFile, env, flags, startTimeoutMs, inChain);
        list.push(sp);
        all.push(sp);
      }
      procs.set(name, list);
    }
    // Start them all at once (each waits for its own readiness); ingress creates the topics too.
    await Promise.all(all.map((p) => p.start()));

    const adminUrlNow = (): string => `http://127.0.0.1:${procs.get('admin')?.[0]?.httpPort ?? 0}`;
    const stack: Stack = {
      dir,
      configFile,
      config,
      kafka,
      redis,
      clamd,
      rspamd,
      dns,
      internal,
      mx1,
      mx2,
      smtp: { host: '127.0.0.1', port: smtpPort },
      get adminUrl() {
        return adminUrlNow();
      },
      adminToken: ADMIN_TOKEN,
      services: procs,
      proc(name, replica = 0) {
        // A stage inside the chain is the chain process (registered under the chain's first stage).
        const key = chain?.includes(name as PipelineStage) ? chain[0]! : name;
        const p = procs.get(key)?.[replica];
        if (!p) throw new Error(`stack: no process ${name}#${replica}`);
        return p;
      },
      processes() {
        return [
          ...[...procs.values()].flat().map((p) => ({ label: p.label, pid: p.pid })),
          { label: 'kafka-lite', pid: kafka.pid },
          { label: 'redis-server', pid: redis.pid },
          { label: 'clamd', pid: clamd.pid },
          { label: 'rspamd', pid: rspamd.pid },
        ];
      },
      async admin<T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
        const r = await fetch(`${adminUrlNow()}${path}`, {
          method: init.method ?? 'GET',
          headers: {
            authorization: `Bearer ${ADMIN_TOKEN}`,
            ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}),
          },
          ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
          signal: AbortSignal.timeout(10_000),
        });
        const text = await r.text();
        if (!r.ok) throw new Error(`admin ${init.method ?? 'GET'} ${path}: ${r.status} ${text.slice(0, 500)}`);
        return JSON.parse(text) as T;
      },
      async dumpLogs() {
        const logs = join(process.env['MAILGATE_E2E_LOGDIR'] ?? dir, 'logs');
        await mkdir(logs, { recursive: true });
        for (const p of [...procs.values()].flat()) writeFileSync(join(logs, `${p.label}.log`), p.output());
        writeFileSync(join(logs, 'kafka-lite.log'), kafka.output());
        writeFileSync(join(logs, 'clamd.log'), clamd.output());
        writeFileSync(join(logs, 'redis.log'), redis.output());
        return logs;
      },
      stop: stopAll,
    };
    return stack;
  } catch (err) {
    // Keep the failing services' output in the error (ManagedProcess.describeFailure has it already).
    await stopAll();
    throw err;
  }
}
