import { readFileSync } from 'node:fs';
import net from 'node:net';
import { Kafka, logLevel, type KafkaConfig as KafkaJsConfig, type SASLOptions } from 'kafkajs';
import type { KafkaConfig, Logger } from '@mailgate/runtime';
import { installNativeCrc32c } from './crc32c.js';
import { installRequestQueueFix } from './request-queue-fix.js';

const LEVEL_NAMES: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [logLevel.ERROR]: 'error',
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'info',
  [logLevel.DEBUG]: 'debug',
};

/** A kafkajs client for a real cluster or kafka-lite, from the `kafka:` config section. */
export function createKafka(cfg: KafkaConfig, clientId: string, log?: Logger): Kafka {
  if (!installNativeCrc32c())
    log?.warn('kafkajs checksum module not where expected: produce uses kafkajs’ own (slower) CRC-32C');
  if (!installRequestQueueFix())
    log?.warn('kafkajs request queue not as expected: its idle 1 ms timer loop (kafkajs#1556) is not fixed');
  const conf: KafkaJsConfig = {
    clientId: `${cfg.clientId}-${clientId}`,
    brokers: cfg.brokers,
    connectionTimeout: cfg.connectionTimeoutMs,
    requestTimeout: cfg.requestTimeoutMs,
    // kafkajs' own INFO chatter (joins, commits) is noise in our JSON logs; warnings and errors are kept.
    logLevel: logLevel.WARN,
    retry: { retries: 8, initialRetryTime: 200, maxRetryTime: 5000 },
  };
  if (log) {
    const klog = log.child({ component: 'kafkajs' });
    conf.logCreator =
      () =>
      ({ level, log: entry }) => {
        const { message, ...rest } = entry;
        klog[LEVEL_NAMES[level] ?? 'info'](rest, message);
      };
  }
  if (cfg.ssl === true) conf.ssl = true;
  else if (cfg.ssl) {
    conf.ssl = {
      rejectUnauthorized: cfg.ssl.rejectUnauthorized,
      ...(cfg.ssl.caFile ? { ca: [readFileSync(cfg.ssl.caFile, 'utf8')] } : {}),
      ...(cfg.ssl.certFile ? { cert: readFileSync(cfg.ssl.certFile, 'utf8') } : {}),
      ...(cfg.ssl.keyFile ? { key: readFileSync(cfg.ssl.keyFile, 'utf8') } : {}),
    };
  }
  if (cfg.sasl) {
    conf.sasl = {
      mechanism: cfg.sasl.mechanism,
      username: cfg.sasl.username,
      password: cfg.sasl.password,
    } as SASLOptions;
  }
  return new Kafka(conf);
}

/** Readiness probe: can we open a TCP connection to at least one broker right now? */
export async function brokerReachable(brokers: readonly string[], timeoutMs = 1000): Promise<boolean> {
  const tryOne = (b: string) =>
    new Promise<boolean>((resolve) => {
      const i = b.lastIndexOf(':');
      const host = b.slice(0, i).replace(/^\[|\]$/g, '');
      const sock = net.connect({ host, port: Number(b.slice(i + 1)) });
      const done = (ok: boolean) => {
        sock.destroy();
        resolve(ok);
      };
      sock.setTimeout(timeoutMs, () => done(false));
      sock.once('connect', () => done(true));
      sock.once('error', () => done(false));
    });
  const results = await Promise.all(brokers.map(tryOne));
  return results.some(Boolean);
}
