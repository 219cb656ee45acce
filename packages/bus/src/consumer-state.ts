import type { Logger } from '@mailgate/runtime';
import type { Consumer } from 'kafkajs';

/**
 * A kafkajs consumer's group membership and crash state, for readiness, and the fatal rule every consumer of the
 * gateway follows: a crash kafkajs will not restart (restart=false) while the consumer is meant to run calls
 * `onFatal`, so the service goes down and is restarted instead of running on without consuming.
 */
export class ConsumerState {
  private joined = false;
  private crashed = false;

  constructor(
    consumer: Consumer,
    o: {
      readonly log: Logger;
      /** Whether the consumer is meant to run (a crash during stop is not fatal). */
      readonly running: () => boolean;
      readonly onFatal?: ((reason: string) => void) | undefined;
      /** Names the consumer in the log and the fatal reason (a service's side consumers). */
      readonly name?: string;
    },
  ) {
    const ev = consumer.events;
    consumer.on(ev.GROUP_JOIN, () => {
      this.joined = true;
      this.crashed = false;
    });
    consumer.on(ev.CRASH, (e) => {
      this.crashed = true;
      this.joined = false;
      const err = e.payload.error?.message;
      o.log.error({ ...(o.name ? { consumer: o.name } : {}), err, restart: e.payload.restart }, 'consumer crashed');
      if (!e.payload.restart && o.running())
        o.onFatal?.(`${o.name ? `${o.name} ` : ''}consumer crashed: ${err ?? 'unknown'}`);
    });
    consumer.on(ev.STOP, () => (this.joined = false));
  }

  /** Joined its group and not crashed. */
  get ok(): boolean {
    return this.joined && !this.crashed;
  }
}
