import { encodeEvent, TOPICS, type TrackingEvent } from '@mailgate/contracts';
import { DependencyUnavailableError, type KafkaConfig, type Logger } from '@mailgate/runtime';
import { CompressionTypes, Partitioners, type Kafka, type Message, type Producer, type TopicMessages } from 'kafkajs';

export interface OutRecord {
  readonly topic: string;
  readonly key?: string | null;
  readonly value: Buffer;
  readonly headers?: Record<string, string | Buffer>;
}

/**
 * The only way the gateway writes to Kafka: acks=-1 (all in-sync replicas), and a promise that resolves only
 * once the broker acknowledged. Concurrent `send` calls in the same tick are coalesced into one produce
 * request (no added delay), which is what lets ingress answer many 250s per broker round trip.
 */
export class DurableProducer {
  private readonly producer: Producer;
  private connected = false;
  private queue: { records: OutRecord[]; resolve: () => void; reject: (e: Error) => void }[] = [];
  private flushScheduled = false;
  private inflight = new Set<Promise<void>>();

  constructor(
    kafka: Kafka,
    private readonly cfg: Pick<KafkaConfig, 'produceTimeoutMs'>,
    private readonly log?: Logger,
  ) {
    this.producer = kafka.producer({
      allowAutoTopicCreation: true,
      createPartitioner: Partitioners.DefaultPartitioner,
      // Not idempotent on purpose: kafkajs then allows one in-flight request only, which serialises every
      // accepted message behind the previous one. Duplicates are tolerated downstream (delivery's markers).
      idempotent: false,
      retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 2000 },
    });
    this.producer.on(this.producer.events.CONNECT, () => (this.connected = true));
    this.producer.on(this.producer.events.DISCONNECT, () => (this.connected = false));
  }

  get isConnected(): boolean {
    return this.connected;
  }

  async connect(): Promise<void> {
    await this.producer.connect();
    this.connected = true;
  }

  /** Produce records durably; rejects with DependencyUnavailableError on failure or timeout. */
  send(records: OutRecord[]): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ records, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Tracking events are records like any other (durable, so the timeline has no holes). */
  sendEvents(events: TrackingEvent[]): Promise<void> {
    return this.send(events.map(eventRecord));
  }

  private flush(): void {
    this.flushScheduled = false;
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    const byTopic = new Map<string, Message[]>();
    for (const item of batch) {
      for (const r of item.records) {
        let list = byTopic.get(r.topic);
        if (!list) byTopic.set(r.topic, (list = []));
        list.push({ key: r.key ?? null, value: r.value, headers: r.headers ?? {} });
      }
    }
    const topicMessages: TopicMessages[] = [...byTopic].map(([topic, messages]) => ({ topic, messages }));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no acknowledgement within ${this.cfg.produceTimeoutMs} ms`)),
        this.cfg.produceTimeoutMs,
      );
    });
    const p = Promise.race([
      this.producer.sendBatch({ topicMessages, acks: -1, compression: CompressionTypes.None }),
      timeout,
    ])
      .then(() => {
        for (const item of batch) item.resolve();
      })
      .catch((err: Error) => {
        this.log?.warn({ err: err.message }, 'durable produce failed');
        const e = new DependencyUnavailableError('kafka', err.message, { cause: err });
        for (const item of batch) item.reject(e);
      })
      .finally(() => {
        clearTimeout(timer);
        this.inflight.delete(p);
      });
    this.inflight.add(p);
  }

  /** Wait for everything queued or in flight (shutdown 'flush' phase). */
  async drain(): Promise<void> {
    while (this.queue.length > 0 || this.inflight.size > 0) {
      if (this.queue.length > 0 && !this.flushScheduled) this.flush();
      await Promise.allSettled([...this.inflight]);
      await new Promise((r) => setImmediate(r));
    }
  }

  async disconnect(): Promise<void> {
    await this.drain();
    await this.producer.disconnect();
    this.connected = false;
  }
}

export function eventRecord(e: TrackingEvent): OutRecord {
  return { topic: TOPICS.events, key: e.messageId, value: encodeEvent(e) };
}
