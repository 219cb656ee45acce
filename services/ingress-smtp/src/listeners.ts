import type { SecureContextOptions } from 'node:tls';
import type { Logger } from '@mailgate/runtime';
import type { SMTPServerOptions } from 'smtp-server';
import type { IngressConfig, ListenerKind } from './config.js';
import { disabledCommands } from './phases/helo.js';
import { REPLIES, replyText } from './replies.js';
import { GuardedServer, type GuardHooks } from './smtp-guard.js';

/**
 * The SMTP listeners (mx, submission): smtp-server options from the config, one GuardedServer per enabled
 * listener, listen, drain (stop intake, 421 to idle sessions, wait for the rest) and certificate reload.
 */

export interface ListenerAddress {
  readonly host: string;
  readonly port: number;
}

/** The smtp-server callbacks ingress.ts routes to the phases. */
export type SmtpHandlers = Pick<
  SMTPServerOptions,
  'onConnect' | 'onSecure' | 'onAuth' | 'onMailFrom' | 'onRcptTo' | 'onData' | 'onClose'
>;

export interface ListenerSetup {
  readonly config: IngressConfig;
  readonly hostname: string;
  readonly tls?: { key: string | Buffer; cert: string | Buffer } | null | undefined;
  readonly log: Logger;
  readonly hooks: (kind: ListenerKind) => GuardHooks;
  readonly handlers: (kind: ListenerKind) => SmtpHandlers;
}

export function smtpOptions(kind: ListenerKind, s: ListenerSetup): SMTPServerOptions {
  const { config: cfg, tls } = s;
  const limits = cfg.limits;
  const tlsOpts: Partial<SecureContextOptions> = tls
    ? { key: tls.key, cert: tls.cert, minVersion: cfg.tls?.minVersion ?? 'TLSv1.2' }
    : {};
  return {
    ...tlsOpts,
    name: s.hostname,
    banner: cfg.banner || undefined,
    logger: false,
    size: limits.maxMessageBytes,
    maxClients: limits.maxConnections,
    maxRecipients: limits.maxRecipients,
    socketTimeout: limits.idleTimeoutMs,
    closeTimeout: cfg.drainTimeoutMs,
    disableReverseLookup: !cfg.reverseDns,
    hideENHANCEDSTATUSCODES: false,
    hideDSN: true,
    hideSTARTTLS: !tls,
    // AUTH is switched off again in onConnect while a submission session is not yet secure.
    disabledCommands: disabledCommands(kind, !!tls, true),
    authMethods: ['PLAIN', 'LOGIN'],
    authOptional: kind === 'mx',
    allowInsecureAuth: false,
    ...s.handlers(kind),
  };
}

export class Listeners {
  readonly addresses: Partial<Record<ListenerKind, ListenerAddress>> = {};
  private readonly servers = new Map<ListenerKind, GuardedServer>();
  private closing: Promise<void>[] = [];
  private sweep: NodeJS.Timeout | undefined;
  private draining = false;

  constructor(private readonly setup: ListenerSetup) {
    for (const kind of ['mx', 'submission'] as const) {
      if (!setup.config.listeners[kind].enabled) continue;
      const server = new GuardedServer(smtpOptions(kind, setup), setup.hooks(kind));
      // Connection-level errors (resets, TLS failures) are the client's problem, not ours: log, never crash.
      server.on('error', (err: Error) =>
        setup.log.debug({ err: err.message, listener: kind }, 'smtp connection error'),
      );
      this.servers.set(kind, server);
    }
  }

  async listen(): Promise<Partial<Record<ListenerKind, ListenerAddress>>> {
    for (const [kind, server] of this.servers) {
      const l = this.setup.config.listeners[kind];
      await new Promise<void>((resolve, reject) => {
        const onError = (err: Error) =>
          reject(new Error(`ingress.listeners.${kind}: cannot listen on ${l.host}:${l.port}: ${err.message}`));
        server.server.once('error', onError);
        server.listen(l.port, l.host, () => {
          server.server.off('error', onError);
          resolve();
        });
      });
      const a = server.server.address();
      this.addresses[kind] = { host: l.host, port: typeof a === 'object' && a ? a.port : l.port };
      this.setup.log.info({ listener: kind, ...this.addresses[kind], tls: !!this.setup.tls }, 'smtp listener ready');
    }
    return this.addresses;
  }

  stopIntake(): void {
    if (this.draining) return;
    this.draining = true;
    this.closing = [...this.servers.values()].map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    // Sessions waiting for a command get 421 now; those in DATA (or awaiting the broker) finish first and are
    // swept once idle. smtp-server itself answers 421 to any new command after close().
    const bye = REPLIES.shuttingDown;
    const sweepOnce = () => {
      for (const s of this.servers.values()) for (const c of s.views()) if (!c.busy) c.send(bye.code, replyText(bye));
    };
    sweepOnce();
    this.sweep = setInterval(sweepOnce, 100);
    this.sweep.unref();
  }

  async drained(): Promise<void> {
    if (!this.draining) this.stopIntake();
    await Promise.all(this.closing);
    clearInterval(this.sweep);
  }

  updateTls(tls: { key: string | Buffer; cert: string | Buffer }): void {
    for (const s of this.servers.values()) s.updateSecureContext({ key: tls.key, cert: tls.cert });
  }
}
