// One durable produce request in flight for all the partitions a runner works on through windows: what they decide
// while it is in flight goes into the next request (a group commit). Without it each partition's window sent its
// own request per wake-up, one or two records each when the replica is CPU-bound, and the requests' encoding and
// round trips became a visible share of delivery's CPU per message (docs/benchmarks.md, round 6).
import type { DurableProducer, OutRecord } from './producer.js';

interface Waiting {
  readonly records: OutRecord[];
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

export class GroupSend {
  private waiting: Waiting[] = [];
  private busy = false;

  constructor(private readonly producer: Pick<DurableProducer, 'send'>) {}

  /** Resolves once `records` were produced durably (acks=-1), possibly in one request with other callers' records. */
  send(records: OutRecord[]): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ records, resolve, reject });
      if (!this.busy) void this.pump();
    });
  }

  private async pump(): Promise<void> {
    this.busy = true;
    while (this.waiting.length > 0) {
      const group = this.waiting.splice(0);
      try {
        await this.producer.send(group.flatMap((w) => w.records));
        for (const w of group) w.resolve();
      } catch (err) {
        // Every caller in the failed request is told: none of them may commit (the no-loss rule).
        for (const w of group) w.reject(err);
      }
    }
    this.busy = false;
  }
}
