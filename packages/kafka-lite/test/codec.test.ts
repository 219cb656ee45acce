// The schema codec on its own: every served version of every API round-trips, flexible encodings and tagged
// fields included, and the decode budget rejects hostile counts before allocating. (kcat/kafkajs/confluent-kafka
// tests check the layouts against real clients; this checks the codec is self-consistent for all versions.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DecodeBudgetError, ProtocolError, Reader, Writer } from '../src/protocol.js';
import { compileMessage, decode, encode, isFlexible } from '../src/schema/codec.js';
import { MESSAGES } from '../src/schema/messages.js';
import { APIS } from '../src/apis/index.js';

function roundTrip(spec: (typeof MESSAGES)[keyof typeof MESSAGES], v: number, body: object): Record<string, unknown> {
  const m = compileMessage(spec);
  const w = encode(m, new Writer(), v, body);
  const buf = Buffer.concat(w.finish());
  const r = new Reader(buf);
  const out = decode(m, r, v);
  assert.equal(r.remaining(), 0, `v${v}: every byte consumed`);
  return out;
}

test('every served version of every API: default request and response bodies round-trip', () => {
  for (const api of APIS.values()) {
    for (let v = api.min; v <= api.max; v++) {
      for (const spec of [
        MESSAGES[`${api.name}Request` as keyof typeof MESSAGES],
        MESSAGES[`${api.name}Response` as keyof typeof MESSAGES],
      ]) {
        const first = roundTrip(spec, v, {});
        assert.deepEqual(roundTrip(spec, v, first), first, `${api.name} v${v}`);
      }
    }
  }
});

test('flexible versions: compact strings/arrays and tagged fields survive; unknown tags are skipped', () => {
  const body = {
    throttleTimeMs: 7,
    errorCode: 0,
    sessionId: 0,
    responses: [
      {
        topic: 'tópico', // multi-byte UTF-8: lengths are byte counts
        partitions: [
          {
            partitionIndex: 3,
            errorCode: 0,
            highWatermark: 42,
            lastStableOffset: 42,
            logStartOffset: 0,
            divergingEpoch: { epoch: 5, endOffset: 40 }, // tagged field 0
            abortedTransactions: null,
            preferredReadReplica: -1,
            records: { chunks: [Buffer.from('abc'), Buffer.from('defg')], len: 7 },
          },
        ],
      },
    ],
  };
  const out = roundTrip(MESSAGES.FetchResponse, 12, body) as typeof body & {
    responses: { partitions: { records: Buffer; divergingEpoch: unknown }[] }[];
  };
  const p = out.responses[0]!.partitions[0]!;
  assert.equal(out.responses[0]!.topic, 'tópico');
  assert.deepEqual(p.divergingEpoch, { epoch: 5, endOffset: 40 });
  assert.equal(p.abortedTransactions, null);
  assert.equal(p.records.toString(), 'abcdefg');
  assert.ok(isFlexible(compileMessage(MESSAGES.FetchResponse), 12));

  // An ApiVersions v3 request with an unknown tagged field (tag 9, 3 bytes) at the end.
  const m = compileMessage(MESSAGES.ApiVersionsRequest);
  const w = new Writer()
    .string('kcat', true)
    .string('1.7.1', true)
    .uvarint(1)
    .uvarint(9)
    .uvarint(3)
    .int8(1)
    .int8(2)
    .int8(3);
  const r = new Reader(Buffer.concat(w.finish()));
  assert.deepEqual(decode(m, r, 3), { clientSoftwareName: 'kcat', clientSoftwareVersion: '1.7.1' });
  assert.equal(r.remaining(), 0);
});

test('classic versions keep their layouts: v0 fields absent, defaults filled in for the handler', () => {
  const m = compileMessage(MESSAGES.MetadataRequest);
  // Metadata v0: [topics] only (non-nullable); allowAutoTopicCreation defaults to true.
  const r = new Reader(Buffer.concat(new Writer().int32(1).string('a').finish()));
  assert.deepEqual(decode(m, r, 0), {
    topics: [{ name: 'a', topicId: Buffer.alloc(16) }],
    allowAutoTopicCreation: true,
    includeClusterAuthorizedOperations: false,
    includeTopicAuthorizedOperations: false,
  });
});

test('decode budget: counts the bytes cannot back and counts over the object cap are rejected up front', () => {
  const m = compileMessage(MESSAGES.ProduceRequest);
  // 1000 topics declared, bytes for none.
  const short = Buffer.concat(new Writer().nstring(null).int16(-1).int32(1000).int32(1000).finish());
  assert.throws(
    () => decode(m, new Reader(short), 7),
    (e) => e instanceof ProtocolError && /exceeds request size/.test(e.message),
  );
  // 10 well-formed empty topics (6 bytes each) against a budget of 5 objects.
  const ten = Buffer.concat([
    Buffer.concat(new Writer().nstring(null).int16(-1).int32(1000).int32(10).finish()),
    Buffer.alloc(60),
  ]);
  assert.throws(() => decode(m, new Reader(ten, 0, { objects: 5 }), 7), DecodeBudgetError);
  assert.equal((decode(m, new Reader(ten, 0, { objects: 11 }), 7).topicData as unknown[]).length, 10);
});
