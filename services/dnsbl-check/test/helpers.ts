import { newEnvelope, type PipelineMessage, type SessionFacts } from '@mailgate/contracts';
import type { StageContext } from '@mailgate/bus';
import { createLogger } from '@mailgate/runtime';
import { testStageContext, type RbldnsdZone } from '@mailgate/testkit';

export const log = createLogger('dnsbl-check-test', process.env['TEST_LOG_LEVEL'] ?? 'silent');

/** Zones for the stage tests: one IP list, one domain list (DBL style), one URI list. */
export const ZONES: RbldnsdZone[] = [
  { name: 'bl.test', type: 'ip4set', lines: [':127.0.0.2:Listed in bl.test', '127.0.0.2', '198.51.100.7'] },
  { name: 'bl.test', type: 'ip6trie', lines: [':127.0.0.2:IPv6 listed', '2001:db8:bad::/48'] },
  {
    name: 'dbl.test',
    type: 'dnset',
    lines: [':127.0.1.2:Domain listed', 'test', 'spammer.example', 'bad-helo.example'],
  },
  { name: 'uribl.test', type: 'dnset', lines: [':127.0.0.2:URI listed', 'test', 'evil-link.example', '203.0.113.66'] },
  { name: 'slow.test', type: 'ip4set', lines: [':127.0.0.2:slow', '127.0.0.2'] },
];

export function zonesConfig(): Record<string, unknown>[] {
  return [
    { name: 'bl.test', type: 'ip', weight: 1 },
    { name: 'dbl.test', type: 'domain', weight: 1 },
    { name: 'uribl.test', type: 'uri', weight: 1 },
  ];
}

export interface MsgOpts {
  session?: Partial<SessionFacts>;
  mailFrom?: string;
  rcptTo?: string[];
  direction?: 'inbound' | 'outbound';
  headers?: string[];
  body?: string;
  contentType?: string;
}

export function message(o: MsgOpts = {}): PipelineMessage {
  const raw = Buffer.from(
    [
      ...(o.headers ?? []),
      'From: Sender <s@sender.example>',
      'To: u@example.test',
      'Subject: hello',
      'MIME-Version: 1.0',
      `Content-Type: ${o.contentType ?? 'text/plain; charset=utf-8'}`,
      '',
      o.body ?? 'Hello there.',
      '',
    ].join('\r\n'),
    'latin1',
  );
  return {
    envelope: newEnvelope({
      mailFrom: o.mailFrom ?? 's@sender.example',
      rcptTo: o.rcptTo ?? ['u@example.test'],
      size: raw.length,
      ...(o.direction ? { direction: o.direction } : {}),
      session: { clientIp: '198.51.100.99', helo: 'mail.sender.example', ...o.session },
    }),
    raw,
  };
}

export const stageContext = (over: Partial<StageContext> = {}): StageContext => testStageContext('dnsbl-check', over);
