import { ENVELOPE_SCHEMA, type Envelope, type PipelineMessage } from './envelope.js';

/**
 * How a message travels in a Kafka record: inline, one record per message, so "durably in the topic"
 * means the whole message is durable (no second store to keep consistent with Kafka).
 *
 *   value   = MAGIC(4) | envelopeLength(uint32 BE) | envelope JSON (UTF-8) | raw RFC 5322 bytes
 *   key     = message id (so replays and releases of one message land on one partition)
 *   headers = traceparent / tracestate (W3C) + mailgate-id + mailgate-schema (see headers.ts)
 *
 * The raw bytes are never re-encoded, so a message that passes every check is delivered byte-identical
 * (plus the headers stages deliberately add). Size limit: MAX_MESSAGE_BYTES of raw message; the record
 * carries up to ENVELOPE_OVERHEAD_BYTES more. A production Kafka must allow records of MAX_RECORD_BYTES
 * (message.max.bytes / max.message.bytes, replica.fetch.max.bytes) — see docs/architecture.md.
 */
export const MAGIC = Buffer.from('MGW1', 'latin1');
export const MAX_MESSAGE_BYTES = 50 * 1024 * 1024;
export const ENVELOPE_OVERHEAD_BYTES = 1024 * 1024;
export const MAX_RECORD_BYTES = MAX_MESSAGE_BYTES + ENVELOPE_OVERHEAD_BYTES + 4 * 1024 * 1024;

export class CodecError extends Error {
  override readonly name = 'CodecError';
}

export function encodeMessage(msg: PipelineMessage): Buffer {
  const json = Buffer.from(JSON.stringify(msg.envelope), 'utf8');
  const head = Buffer.allocUnsafe(8);
  MAGIC.copy(head, 0);
  head.writeUInt32BE(json.length, 4);
  return Buffer.concat([head, json, msg.raw], 8 + json.length + msg.raw.length);
}

export function decodeMessage(value: Buffer | null | undefined): PipelineMessage {
  if (!value || value.length < 8) throw new CodecError('record too short to be a mailgate message');
  if (!value.subarray(0, 4).equals(MAGIC)) throw new CodecError('record does not start with the mailgate magic');
  const len = value.readUInt32BE(4);
  if (8 + len > value.length) throw new CodecError(`envelope length ${len} exceeds record size ${value.length}`);
  let envelope: Envelope;
  try {
    envelope = JSON.parse(value.subarray(8, 8 + len).toString('utf8')) as Envelope;
  } catch (e) {
    throw new CodecError(`envelope is not valid JSON: ${(e as Error).message}`);
  }
  if (envelope.schema !== ENVELOPE_SCHEMA) {
    throw new CodecError(`unknown envelope schema ${String(envelope.schema)} (this build reads ${ENVELOPE_SCHEMA})`);
  }
  // subarray: no copy of a possibly 50 MiB body.
  return { envelope, raw: value.subarray(8 + len) };
}
