import type { OutRecord } from '@mailgate/bus';
import type { Logger } from '@mailgate/runtime';
import type { Context } from '@opentelemetry/api';
import type { IngressConfig } from '../config.js';
import { stripHeaders } from '../headers.js';
import { LineEndingGuard } from '../line-endings.js';
import { NulGuard } from '../nul-bytes.js';
import { REPLIES } from '../replies.js';
import type { MailFromAuth, SenderAuthPhase } from '../sender-auth-phase.js';
import { buildAccepted, type Accepted, type AcceptedContext, type AcceptedSession } from './accepted.js';
import { refusal, type Refusal } from './state.js';

/**
 * DATA (Haraka `data` / `data_post`, Postfix `smtpd_data_restrictions` + `smtpd_end_of_data_restrictions`): the
 * content is collected under the size limit with NUL octets and bare CR / LF found (or removed) on the way; at the
 * end it is refused (552, 554 5.6.0) or checked by sender authentication (DKIM/ARC/DMARC) and queued: the records
 * from `buildAccepted` (phases/accepted.ts) go out in one acks=-1 produce, and only then does the client get 250.
 */

export type DataSettings = Pick<IngressConfig, 'lineEndings' | 'nulBytes'> & {
  readonly limits: Pick<IngressConfig['limits'], 'maxMessageBytes'>;
};

/** What end of DATA knows about the content. */
export interface CollectedData {
  readonly body: Buffer;
  readonly size: number;
  /** More than `limits.maxMessageBytes` arrived (the content was dropped). */
  readonly over: boolean;
  readonly bareLf: number;
  readonly bareCr: number;
  /** NUL octets seen (removed when `nulBytes: strip`). */
  readonly nul: number;
}

/** The DATA stream, chunk by chunk: NULs, line endings, size. Memory stops growing once the limit is passed. */
export class DataCollector {
  private readonly lines = new LineEndingGuard();
  private readonly nul: NulGuard;
  private chunks: Buffer[] = [];
  private size = 0;
  private over = false;

  constructor(private readonly settings: DataSettings) {
    this.nul = new NulGuard(settings.nulBytes);
  }

  feed(chunk: Buffer): void {
    if (this.over) return;
    const n = this.nul.feed(chunk);
    const b = this.settings.lineEndings === 'normalize' ? this.lines.normalize(n) : (this.lines.scan(n), n);
    this.size += b.length;
    if (this.size > this.settings.limits.maxMessageBytes) {
      this.over = true;
      this.chunks = [];
      return;
    }
    this.chunks.push(b);
  }

  finish(): CollectedData {
    const tail = this.lines.finish();
    if (this.settings.lineEndings === 'normalize' && tail.length) {
      this.chunks.push(tail);
      this.size += tail.length;
    }
    return {
      body: this.over ? Buffer.alloc(0) : Buffer.concat(this.chunks, this.size),
      size: this.size,
      over: this.over,
      bareLf: this.lines.bareLf,
      bareCr: this.lines.bareCr,
      nul: this.nul.count,
    };
  }
}

/** Pure: may this content be queued? (`sizeExceeded`: smtp-server's own count said so.) */
export function dataVerdict(d: CollectedData, s: DataSettings, sizeExceeded = false): Refusal | null {
  const { maxMessageBytes } = s.limits;
  if (d.over || sizeExceeded || d.size > maxMessageBytes) {
    return refusal(REPLIES.messageTooBig(maxMessageBytes), 'size', { phase: 'data' });
  }
  if (s.lineEndings === 'reject' && (d.bareLf > 0 || d.bareCr > 0)) {
    const log = { msg: 'message refused: bare CR/LF', fields: { bareLf: d.bareLf, bareCr: d.bareCr } };
    return refusal(REPLIES.bareLineEndingInData, 'bare-cr-lf', { phase: 'data' }, log);
  }
  if (s.nulBytes === 'reject' && d.nul > 0) {
    return refusal(REPLIES.nulInData, 'nul-byte', undefined, {
      msg: 'message refused: NUL in content',
      fields: { nul: d.nul },
    });
  }
  return null;
}

/** The outcome word for the transaction span of a refused message. */
export const DATA_OUTCOMES: Readonly<Record<string, string>> = {
  size: 'too-big',
  'bare-cr-lf': 'bare-cr-lf',
  'nul-byte': 'nul-byte',
  'sender-auth': 'sender-auth',
  broker: 'tempfail',
};

export interface EndOfDataDeps {
  readonly senderAuth?: SenderAuthPhase | null | undefined;
  /** Durable producer (acks=-1): resolves only once the broker acknowledged. */
  readonly producer: { send(records: OutRecord[]): Promise<void> };
  readonly acceptTimeoutMs: number;
  readonly log: Logger;
}

export type EndOfData =
  | { readonly accepted: Accepted; readonly refuse?: undefined }
  | { readonly refuse: Refusal; readonly accepted?: Accepted };

/**
 * Sender authentication, then the durable produce of `buildAccepted`'s records. Broker down or slower than
 * `acceptTimeoutMs`: 451 (nothing is lost; a late write can mean a duplicate, which the pipeline tolerates).
 */
export async function endOfData(
  s: AcceptedSession,
  body: Buffer,
  c: Omit<AcceptedContext, 'auth'>,
  tx: { readonly ctx: Context; readonly auth?: MailFromAuth | undefined },
  deps: EndOfDataDeps,
): Promise<EndOfData> {
  const authed = deps.senderAuth
    ? await deps.senderAuth.atEndOfData(
        {
          ip: s.clientIp,
          helo: s.helo,
          mailFrom: s.mailFrom,
          authenticated: !!s.authUser,
          trusted: s.trustedNetwork,
          mailFromState: tx.auth,
        },
        stripHeaders(body),
        tx.ctx,
      )
    : null;
  if (authed?.refuse) return { refuse: { error: authed.refuse, reason: 'sender-auth', track: { phase: 'data' } } };
  const accepted = buildAccepted(s, body, { ...c, auth: authed });
  let timer: NodeJS.Timeout | undefined;
  try {
    // Message and its 'received' event in one produce request: the 250 means both are durable.
    await Promise.race([
      deps.producer.send(accepted.records),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no acknowledgement within ${deps.acceptTimeoutMs} ms`)),
          deps.acceptTimeoutMs,
        );
      }),
    ]);
  } catch (err) {
    deps.log.warn({ err: (err as Error).message, id: accepted.id }, 'durable produce failed: 451');
    return { refuse: refusal(REPLIES.notQueued, 'broker', { phase: 'data' }), accepted };
  } finally {
    clearTimeout(timer);
  }
  return { accepted };
}
