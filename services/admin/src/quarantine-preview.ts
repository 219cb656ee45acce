import {
  bodyReadings,
  bodyTexts,
  decodeWordsSafe,
  isBodyText,
  leaves,
  MalformedMimeError,
  messageHeaders,
  walkMime,
  type HeaderField,
  type ParsedMessage,
} from '@mailgate/mail';
import type { QuarantineEntry } from './quarantine-store.js';

/**
 * What an administrator sees of a quarantined message before deciding: its header fields, its text parts and the
 * list of its attachments — read with the shared MIME walk (@mailgate/mail), the same reading the stages judged.
 * Nothing here is ever rendered: HTML parts are shown as their source text, attachments only by name, type and
 * size. The console escapes every string (console.ts `esc`) and the CSP forbids script on every page.
 */
export interface MessagePreview {
  /** Header fields in message order; names lower-cased, values unfolded with RFC 2047 words decoded. */
  readonly headers: readonly { readonly name: string; readonly value: string }[];
  /** Body text parts (text/plain, text/html…) as text, in document order. */
  readonly texts: readonly {
    readonly part: string;
    readonly contentType: string;
    readonly text: string;
    readonly truncated: boolean;
  }[];
  /** Leaves a mail reader may show as attachments (and uuencoded files inside text). Size is decoded bytes. */
  readonly attachments: readonly {
    readonly part: string;
    readonly name: string;
    readonly contentType: string;
    readonly size: number;
  }[];
  /** Why part of the message could not be read (malformed MIME) and leniencies the walk applied. */
  readonly problems: readonly string[];
}

export interface PreviewLimits {
  /** Characters of one text part shown (the rest is cut, `truncated: true`). */
  readonly maxTextChars: number;
  /** Text parts shown at most. */
  readonly maxTexts: number;
  /** Header fields shown at most. */
  readonly maxHeaders: number;
}

export const DEFAULT_PREVIEW_LIMITS: PreviewLimits = { maxTextChars: 100_000, maxTexts: 10, maxHeaders: 200 };

/** Reads a message for the preview; malformed MIME still yields its header fields and the reason. */
export function previewMessage(raw: Buffer, limits: PreviewLimits = DEFAULT_PREVIEW_LIMITS): MessagePreview {
  let parsed: ParsedMessage;
  let fields: readonly HeaderField[];
  try {
    parsed = walkMime(raw);
  } catch (err) {
    if (!(err instanceof MalformedMimeError)) throw err;
    try {
      fields = messageHeaders(raw).fields;
    } catch {
      fields = [];
    }
    return {
      headers: fields.slice(0, limits.maxHeaders).map((f) => ({ name: f.name, value: decodeWordsSafe(f.value) })),
      texts: [],
      attachments: [],
      problems: [`the MIME structure cannot be read: ${err.message}`],
    };
  }
  const headers = parsed.root.header.fields
    .slice(0, limits.maxHeaders)
    .map((f) => ({ name: f.name, value: decodeWordsSafe(f.value) }));
  const texts: MessagePreview['texts'][number][] = [];
  const attachments: MessagePreview['attachments'][number][] = [];
  for (const leaf of leaves(parsed.root)) {
    const readings = bodyReadings(leaf);
    if (isBodyText(leaf) && texts.length < limits.maxTexts) {
      // bodyTexts over this one leaf: the package's charset decoding of its first (standard) reading.
      const text = bodyTexts({ ...parsed, root: leaf })[0] ?? '';
      texts.push({
        part: leaf.path || '1',
        contentType: leaf.contentType,
        text: text.slice(0, limits.maxTextChars),
        truncated: text.length > limits.maxTextChars,
      });
    } else if (!isBodyText(leaf)) {
      attachments.push({
        part: leaf.path || '1',
        name: leaf.filename ?? leaf.filenames[0] ?? '(no name)',
        contentType: leaf.contentType,
        size: readings[0]?.content.length ?? 0,
      });
    }
    // A `begin 644 name` block inside a text body: a reader shows it as an attachment of its own.
    for (const r of readings) {
      if (r.filename !== undefined)
        attachments.push({
          part: leaf.path || '1',
          name: r.filename,
          contentType: 'application/octet-stream (uuencoded)',
          size: r.content.length,
        });
    }
  }
  return { headers, texts, attachments, problems: [...parsed.warnings, ...parsed.anomalies] };
}

/**
 * The detection name(s) when virus-scan quarantined the message (`Eicar-Test-Signature`), else null. Read from
 * the verdict's details (`signatures`, as virus-scan writes them), else from its reason (`virus found: …`).
 */
export function virusDetection(entry: Pick<QuarantineEntry, 'envelope' | 'stage' | 'kind'>): string | null {
  if (entry.stage !== 'virus-scan' || entry.kind === 'dead-letter' || entry.kind === 'undecodable') return null;
  const v = entry.envelope.verdicts.findLast((x) => x.stage === 'virus-scan');
  if (!v) return null;
  const details = (v.details ?? {}) as { signatures?: unknown; signature?: unknown };
  if (Array.isArray(details.signatures) && details.signatures.length > 0) return details.signatures.join(', ');
  if (typeof details.signature === 'string' && details.signature) return details.signature;
  const reason = 'reason' in v.verdict ? v.verdict.reason : '';
  const m = /^virus found: (.+)$/.exec(reason);
  return m ? m[1]! : null;
}
