import type { HealthServer, KafkaConfig, Lifecycle, Logger } from '@mailgate/runtime';
import type { Consumer, Kafka, KafkaMessage } from 'kafkajs';
import { ConsumerState } from './consumer-state.js';
import { brokerReachable, createKafka } from './kafka.js';
import { DurableProducer } from './producer.js';
import { ensureTopics } from './topics.js';

/** The parts of a service's context the bus wires into: logs, the shutdown phases (and `fatal`), readiness. */
export interface BusServiceContext {
  readonly log: Logger;
  readonly lifecycle: Pick<Lifecycle, 'on' | 'fatal'>;
  readonly health: Pick<HealthServer, 'addCheck'>;
}

export interface ConnectBusOptions {
  /** kafkajs client id suffix: the service (or stage) name. */
  readonly clientId: string;
  /** The durable producer's acknowledgement deadline (default `kafka.produceTimeoutMs`; ingress: its accept timeout). */
  readonly produceTimeoutMs?: number;
}

/** A consumer of side topics (not a pipeline stage: no stage function, kafkajs commits after the handler). */
export interface SideConsumerOptions {
  /** Names the consumer in logs, in the fatal reason and in the shutdown hook. */
  readonly name: string;
  readonly groupId: string;
  readonly topics: readonly string[];
  /** Resolves once the record is handled (then kafkajs may commit it); throwing re-reads it. */
  readonly eachMessage?: (topic: string, message: KafkaMessage) => Promise<void>;
  /**
   * Instead of eachMessage: the records of one fetch from one partition, in order. Resolves once all are handled
   * (then kafkajs commits past the last); throwing re-reads the whole batch, so the handler must be idempotent.
   */
  readonly eachBatch?: (topic: string, messages: KafkaMessage[]) => Promise<void>;
  /** Default 30 s (tests: shorter, for faster group membership). */
  readonly sessionTimeoutMs?: number;
  /**
   * Fetch batching for a consumer that is not on the message's path (kafkajs' default: return on the first byte).
   * A fetch then returns once `minBytes` are waiting or after `maxWaitMs`: fewer, larger batches for a handler whose
   * cost is per batch (one Redis transaction, one commit), at the price of up to `maxWaitMs` of lag.
   */
  readonly fetch?: { readonly minBytes: number; readonly maxWaitMs: number };
}

export interface SideConsumer {
  /** Joined its group and not crashed. */
  readonly isReady: boolean;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A service's connection to the bus, made once: the kafkajs client, the pipeline topics, the durable producer
 * (acks=-1), and side consumers whose unrecoverable crash takes the service down.
 */
export interface Bus {
  readonly kafka: Kafka;
  readonly producer: DurableProducer;
  /** A side consumer (not started). Its stop runs in the shutdown `stop-intake` phase. */
  consumer(opts: SideConsumerOptions): SideConsumer;
  /**
   * A part of the bus died and kafkajs will not bring it back (a consumer crash with restart=false): shut the
   * service down through its lifecycle (exit 1 when it owns the process) rather than run on as a zombie that
   * looks alive and consumes nothing. Only the first call counts.
   */
  fatal(reason: string): void;
}

/**
 * Connect a service to Kafka: client, topics (when `kafka.topics.create`), connected durable producer. Registers
 * the producer's shutdown hooks (`flush`: drain, `close`: disconnect) and the `kafka` readiness check (producer
 * connected and a broker reachable).
 */
export async function connectBus(config: KafkaConfig, ctx: BusServiceContext, opts: ConnectBusOptions): Promise<Bus> {
  const { log, lifecycle, health } = ctx;
  const kafka = createKafka(config, opts.clientId, log);
  await ensureTopics(kafka, config);
  const producer = new DurableProducer(
    kafka,
    { produceTimeoutMs: opts.produceTimeoutMs ?? config.produceTimeoutMs },
    log,
  );
  await producer.connect();
  lifecycle.on('flush', 'producer', () => producer.drain());
  lifecycle.on('close', 'producer', () => producer.disconnect());
  health.addCheck('kafka', async () => producer.isConnected && (await brokerReachable(config.brokers)));
  let dead = false;
  const fatal = (reason: string) => {
    if (dead) return;
    dead = true;
    lifecycle.fatal(reason);
  };
  return {
    kafka,
    producer,
    fatal,
    consumer(o) {
      const c = new KafkaSideConsumer(kafka, o, log, fatal);
      lifecycle.on('stop-intake', o.name, () => c.stop());
      return c;
    },
  };
}

class KafkaSideConsumer implements SideConsumer {
  private readonly consumer: Consumer;
  private readonly state: ConsumerState;
  private running = false;

  constructor(
    kafka: Kafka,
    private readonly opts: SideConsumerOptions,
    log: Logger,
    onFatal: (reason: string) => void,
  ) {
    const sessionTimeout = opts.sessionTimeoutMs ?? 30000;
    this.consumer = kafka.consumer({
      groupId: opts.groupId,
      sessionTimeout,
      heartbeatInterval: Math.min(3000, Math.floor(sessionTimeout / 10)),
      maxBytesPerPartition: 64 * 1024 * 1024,
      allowAutoTopicCreation: true,
      ...(opts.fetch ? { minBytes: opts.fetch.minBytes, maxWaitTimeInMs: opts.fetch.maxWaitMs } : {}),
    });
    this.state = new ConsumerState(this.consumer, { log, running: () => this.running, onFatal, name: opts.name });
  }

  get isReady(): boolean {
    return this.state.ok;
  }

  async start(): Promise<void> {
    await this.consumer.connect();
    for (const topic of this.opts.topics) await this.consumer.subscribe({ topic, fromBeginning: true });
    this.running = true;
    const { eachBatch, eachMessage } = this.opts;
    if (eachBatch) await this.consumer.run({ eachBatch: ({ batch }) => eachBatch(batch.topic, batch.messages) });
    else if (eachMessage) await this.consumer.run({ eachMessage: ({ topic, message }) => eachMessage(topic, message) });
    else throw new Error(`${this.opts.name}: a side consumer needs eachMessage or eachBatch`);
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.consumer.disconnect().catch(() => undefined);
  }
}
