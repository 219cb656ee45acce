// What the load benchmarks share: Postfix's smtp-source as the load, waiting for arrivals at a sink, and the
// partition assignment of a consumer group (to show how a stage's replicas split the work).
import { spawn } from 'node:child_process';
import { AssignerProtocol, Kafka, logLevel } from 'kafkajs';
import type { Sink } from '@mailgate/testkit';
import { ACCEPTED_DOMAIN, REMOTE_DOMAIN, sleep } from '../harness/stack.js';

export const LOAD_FROM = `load@${REMOTE_DOMAIN}`;
export const LOAD_TO = `inbox@${ACCEPTED_DOMAIN}`;

/** smtp-source: `count` messages of `bytes` over `sessions` parallel sessions; resolves with the wall time (s). */
export async function smtpSource(port: number, bytes: number, count: number, sessions: number): Promise<number> {
  const t0 = Date.now();
  await new Promise<void>((resolve, reject) => {
    const args = ['-s', String(sessions), '-l', String(bytes), '-m', String(count)];
    args.push('-f', LOAD_FROM, '-t', LOAD_TO, '-M', 'client.test', `127.0.0.1:${port}`);
    const p = spawn('/usr/sbin/smtp-source', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`smtp-source exited ${code}: ${err.slice(0, 500)}`)),
    );
  });
  return (Date.now() - t0) / 1000;
}

/** Resolves true once the sink holds `n` messages, false at the timeout. */
export async function waitCount(sink: Sink, n: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (sink.messages.length < n) {
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
  return true;
}

export interface Member {
  clientId: string;
  partitions: number[];
}

/** Consumer-group members and their partitions (kafkajs admin). */
export async function groupMembers(brokers: string, group: string): Promise<Member[]> {
  const kafka = new Kafka({ clientId: 'bench', brokers: [brokers], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  try {
    const { groups } = await admin.describeGroups([group]);
    if (groups[0]?.state !== 'Stable') return [];
    return (groups[0]?.members ?? []).map((m) => {
      const a = AssignerProtocol.MemberAssignment.decode(m.memberAssignment);
      const partitions = Object.values(a?.assignment ?? {})
        .flat()
        .sort((x, y) => x - y);
      return { clientId: m.clientId, partitions };
    });
  } finally {
    await admin.disconnect();
  }
}

export const describeSplit = (members: Member[]): string[] =>
  members.map((m) => `${m.clientId}: partitions [${m.partitions.join(', ')}]`);
