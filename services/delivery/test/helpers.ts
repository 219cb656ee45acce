import type { OutRecord, StageContext } from '@mailgate/bus';
import { ENVELOPE_SCHEMA, newMessageId, type PipelineMessage } from '@mailgate/contracts';
import { testStageContext } from '@mailgate/testkit';
import { trace } from '@opentelemetry/api';
import pino from 'pino';
import { createDeliveryComponents, type DeliveryComponents } from '../src/components.js';
import { deliverySchema } from '../src/config.js';
import type { RetryWorkerDeps } from '../src/worker.js';

export const silentLog = pino({ level: 'silent' });

export function message(o: { from: string; to: string[]; raw?: Buffer | string; id?: string }): PipelineMessage {
  const id = o.id ?? newMessageId();
  const raw = Buffer.isBuffer(o.raw)
    ? o.raw
    : Buffer.from(
        o.raw ??
          `From: <${o.from || 'mailer-daemon@x.test'}>\r\nTo: ${o.to.join(', ')}\r\nSubject: test ${id}\r\nMessage-ID: <${id}@test>\r\n\r\nHello.\r\n.leading dot line\r\n`,
      );
  const traceId = '0af7651916cd43dd8448eb211c80319c';
  return {
    envelope: {
      schema: ENVELOPE_SCHEMA,
      id,
      receivedAt: new Date().toISOString(),
      mailFrom: o.from,
      rcptTo: o.to,
      size: raw.length,
      direction: 'inbound',
      session: {
        clientIp: '192.0.2.10',
        helo: 'client.test',
        tls: { enabled: false },
        trustedNetwork: false,
        listener: 'mx',
        ingressHost: 'ingress-0',
      },
      trace: { traceparent: `00-${traceId}-b7ad6b7169203331-01`, traceId },
      verdicts: [],
    },
    raw,
  };
}

export const stageCtx = (): StageContext => testStageContext('delivery', { host: 'delivery-test' });

/**
 * Builds components from a `delivery:` section document (parsed with the real schema), as the gateway `gw.test`
 * unless `more.hostname` names another; `more.tracer` and `more.senderAuth` are passed on as they are.
 */
export function components(
  redisUrl: string,
  keyPrefix: string,
  section: unknown,
  more: { hostname?: string } & Pick<Parameters<typeof createDeliveryComponents>[0], 'tracer' | 'senderAuth'> = {},
): DeliveryComponents {
  const { hostname = 'gw.test', ...passOn } = more;
  const delivery = deliverySchema.parse(section);
  return createDeliveryComponents({
    delivery,
    redis: { url: redisUrl, keyPrefix },
    gateway: { name: 'mailgate', hostname, instance: 'delivery-test' },
    log: silentLog,
    ...passOn,
  });
}

/** A producer that just collects what would be produced. */
export function collectingProducer(): { send(records: OutRecord[]): Promise<void>; records: OutRecord[] } {
  const records: OutRecord[] = [];
  return {
    records,
    async send(r) {
      records.push(...r);
    },
  };
}

export function workerDeps(
  c: DeliveryComponents,
  producer: RetryWorkerDeps['producer'],
  section: unknown,
): RetryWorkerDeps {
  const delivery = deliverySchema.parse(section);
  return {
    engine: c.engine,
    store: c.store,
    scheduler: c.scheduler,
    producer,
    schedule: delivery.retry.schedule,
    delayDsnAfterMs: delivery.delayDsnAfterMs,
    reportingMta: 'gw.test',
    instance: 'delivery-test',
    tracer: trace.getTracer('test'),
    log: silentLog,
  };
}
