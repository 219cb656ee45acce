import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startService, type RunningService } from '@mailgate/runtime';
import { testTlsCert } from '@mailgate/testkit';
import pino from 'pino';
import { createIngressService, type ConnectFilter, type Ingress } from '../src/index.js';

export const ACCEPTED = ['ours.test', { domain: 'listed.test', recipients: ['alice'] }];

/** Cert/key files for STARTTLS, in a temp dir removed by cleanup(). */
export function tlsFiles(): { certFile: string; keyFile: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'ingress-tls-'));
  const { cert, key } = testTlsCert();
  writeFileSync(join(dir, 'cert.pem'), cert);
  writeFileSync(join(dir, 'key.pem'), key);
  return {
    certFile: join(dir, 'cert.pem'),
    keyFile: join(dir, 'key.pem'),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface StartedIngress {
  running: RunningService<unknown>;
  ingress: Ingress;
  mx: number;
  submission?: number;
  http: number;
}

/** Start the real service (config loader, producer, Redis, health) with listeners on free ports. */
export async function startIngress(opts: {
  brokers: string;
  redisUrl: string;
  ingress: Record<string, unknown>;
  /** Omitted: none. `'dnsbl'`: the real packages/dnsbl filter from the `dnsbl` document section. */
  connectFilter?: ConnectFilter | 'dnsbl';
  dnsbl?: Record<string, unknown>;
  kafka?: Record<string, unknown>;
  keyPrefix?: string;
  /** The `senderAuth:` section; default: off (these tests have no DNS for SPF/DKIM/DMARC). */
  senderAuth?: Record<string, unknown>;
}): Promise<StartedIngress> {
  let ingress: Ingress | undefined;
  const svc = createIngressService({
    onStarted: (i) => (ingress = i),
    ...(opts.connectFilter === 'dnsbl' ? {} : { connectFilter: opts.connectFilter ?? null }),
  });
  const running = await startService(svc, {
    httpPort: 0,
    env: {},
    log: pino({ level: process.env['TEST_LOG'] ?? 'silent' }),
    configDocument: {
      gateway: { hostname: 'gw.test', instance: 'ingress-test' },
      kafka: { brokers: [opts.brokers], topics: { partitions: 1 }, ...opts.kafka },
      redis: {
        url: opts.redisUrl,
        keyPrefix: opts.keyPrefix ?? `ingress-test:${process.pid}:${Math.random().toString(36).slice(2)}:`,
      },
      logging: { level: 'silent' },
      ...(opts.dnsbl ? { dnsbl: opts.dnsbl } : {}),
      senderAuth: opts.senderAuth ?? { enabled: false },
      ingress: {
        reverseDns: false,
        ...opts.ingress,
        listeners: {
          mx: { host: '127.0.0.1', port: 0 },
          ...((opts.ingress['listeners'] as object | undefined) ?? {}),
        },
      },
    },
  });
  const a = ingress!.addresses;
  return {
    running: running as RunningService<unknown>,
    ingress: ingress!,
    mx: a.mx?.port ?? 0,
    ...(a.submission ? { submission: a.submission.port } : {}),
    http: running.http.port,
  };
}
