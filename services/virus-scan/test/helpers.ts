import type { PipelineMessage } from '@mailgate/contracts';
import type { StageContext } from '@mailgate/bus';
import { createLogger } from '@mailgate/runtime';
import { EICAR, startClamd, testPipelineMessage, testStageContext, type ClamdHandle } from '@mailgate/testkit';
import { MeterProvider, MetricReader, type DataPoint } from '@opentelemetry/sdk-metrics';
import { zipSync } from 'fflate';
import { after, before } from 'node:test';
import {
  ClamdPool,
  virusScanSchema,
  type ClamdEndpoint,
  type ClamdPoolOptions,
  type VirusScanConfig,
  type VirusScanInput,
} from '../src/index.js';

export const log = createLogger('virus-scan-test', process.env['TEST_LOG_LEVEL'] ?? 'silent');

export function config(input: VirusScanInput = {}): VirusScanConfig {
  return virusScanSchema.parse(input);
}

/** A pipeline message around these bytes (from a@sender.test to u@example.test). */
export const pipelineMessage = (raw: Buffer | string): PipelineMessage => testPipelineMessage(raw);

export const stageContext = (over: Partial<StageContext> = {}): StageContext => testStageContext('virus-scan', over);

const HEAD = ['From: Alice <a@sender.test>', 'To: u@example.test', 'Subject: test', 'MIME-Version: 1.0'];

function wrap76(b64: string): string {
  return b64.replace(/.{1,76}/g, '$&\r\n').trimEnd();
}

/** A multipart/mixed message with a text part and one attachment part (already encoded body). */
function withAttachment(type: string, filename: string, encoding: string, body: string, boundary = 'mg-b1'): string {
  return [
    ...HEAD,
    `Content-Type: multipart/mixed; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=utf-8',
    '',
    'Please see the attachment.',
    `--${boundary}`,
    `Content-Type: ${type}; name="${filename}"`,
    `Content-Transfer-Encoding: ${encoding}`,
    `Content-Disposition: attachment; filename="${filename}"`,
    '',
    body,
    `--${boundary}--`,
    '',
  ].join('\r\n');
}

const eicarBytes = () => new Uint8Array(Buffer.from(EICAR, 'latin1'));

export const samples = {
  clean: (): string =>
    withAttachment(
      'application/zip',
      'report.zip',
      'base64',
      wrap76(
        Buffer.from(zipSync({ 'report.txt': new TextEncoder().encode('quarterly figures\n'.repeat(50)) })).toString(
          'base64',
        ),
      ),
    ),
  /** EICAR as an attachment sent as is (7bit). */
  plain: (): string => withAttachment('application/octet-stream', 'eicar.com', '7bit', EICAR),
  base64: (): string =>
    withAttachment('application/octet-stream', 'eicar.com', 'base64', Buffer.from(EICAR, 'latin1').toString('base64')),
  zip: (): string =>
    withAttachment(
      'application/zip',
      'invoice.zip',
      'base64',
      wrap76(Buffer.from(zipSync({ 'invoice.com': eicarBytes() })).toString('base64')),
    ),
  nestedZip: (): string => {
    const inner = zipSync({ 'eicar.com': eicarBytes() });
    const outer = zipSync({ 'docs/inner.zip': inner, 'readme.txt': new TextEncoder().encode('nothing here') });
    return withAttachment('application/zip', 'docs.zip', 'base64', wrap76(Buffer.from(outer).toString('base64')));
  },
  /** A forwarded message (message/rfc822) that itself carries EICAR as a base64 attachment. */
  rfc822: (): string =>
    withAttachment(
      'message/rfc822',
      'forwarded.eml',
      '7bit',
      withAttachment(
        'application/octet-stream',
        'eicar.com',
        'base64',
        Buffer.from(EICAR, 'latin1').toString('base64'),
        'mg-inner',
      ),
    ),
};

/** A MeterProvider whose metrics a test can read back. */
export function testMeter() {
  class Reader extends MetricReader {
    protected override onForceFlush(): Promise<void> {
      return Promise.resolve();
    }
    protected override onShutdown(): Promise<void> {
      return Promise.resolve();
    }
  }
  const reader = new Reader();
  const provider = new MeterProvider({ readers: [reader] });
  return {
    meter: provider.getMeter('virus-scan-test'),
    /** Sum of a counter's data points whose attributes include `attrs`. */
    async value(name: string, attrs: Record<string, string> = {}): Promise<number> {
      const { resourceMetrics } = await reader.collect();
      let sum = 0;
      for (const sm of resourceMetrics.scopeMetrics)
        for (const m of sm.metrics) {
          if (m.descriptor.name !== name) continue;
          for (const dp of m.dataPoints as DataPoint<unknown>[]) {
            if (Object.entries(attrs).every(([k, v]) => dp.attributes[k] === v)) {
              sum += typeof dp.value === 'number' ? dp.value : ((dp.value as { count: number }).count ?? 0);
            }
          }
        }
      return sum;
    },
  };
}

export interface ClamdFixture {
  /** The file's clamd (set once its before() hook ran). */
  readonly clamd: ClamdHandle;
  /** Its TCP endpoint. */
  readonly tcp: ClamdEndpoint;
  /** A pool over `endpoints` with test timeouts and no health checks; closed after the file. */
  pool(endpoints: ClamdEndpoint[], extra?: Partial<ClamdPoolOptions>): ClamdPool;
}

/** A real clamd (stream limit 1 MiB) for a test file: started before its tests, stopped with its pools after. */
export function clamdForFile(): ClamdFixture {
  let clamd: ClamdHandle | undefined;
  const pools: ClamdPool[] = [];
  before(async () => {
    clamd = await startClamd({ streamMaxLength: '1M' });
  });
  after(async () => {
    for (const p of pools) p.close();
    await clamd?.stop();
  });
  return {
    get clamd() {
      return clamd!;
    },
    get tcp() {
      return { host: clamd!.host, port: clamd!.port };
    },
    pool(endpoints, extra = {}) {
      const p = new ClamdPool({
        endpoints,
        connectTimeoutMs: 1000,
        readTimeoutMs: 10_000,
        chunkBytes: 64 * 1024,
        healthIntervalMs: 0,
        ...extra,
      });
      pools.push(p);
      return p;
    },
  };
}
