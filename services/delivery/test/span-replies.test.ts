import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startRedis, startSmtpSink, type RedisHandle, type Sink } from '@mailgate/testkit';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { DeliveryComponents } from '../src/components.js';
import { parseReply } from '../src/span-replies.js';
import { components, message } from './helpers.js';

describe('parseReply', () => {
  test('code, enhanced code and text', () => {
    assert.deepEqual(parseReply('250 2.0.0 Ok: queued as 4Xy1Zk'), {
      code: 250,
      enhanced: '2.0.0',
      text: 'Ok: queued as 4Xy1Zk',
    });
    assert.deepEqual(parseReply('250 OK: message queued'), { code: 250, text: 'OK: message queued' });
    assert.deepEqual(parseReply('550-5.1.1 no such user'), { code: 550, enhanced: '5.1.1', text: 'no such user' });
    assert.deepEqual(parseReply('250'), { code: 250, text: '' });
    assert.deepEqual(parseReply('451 4.4.1 connection refused'), {
      code: 451,
      enhanced: '4.4.1',
      text: 'connection refused',
    });
    assert.equal(parseReply('hello'), null);
  });
});

describe('delivery attempt span carries the remote reply', () => {
  let redis: RedisHandle;
  let sink: Sink;
  let c: DeliveryComponents;
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });

  before(async () => {
    redis = await startRedis();
    sink = await startSmtpSink({ name: 'hub.corp.test' });
    c = components(
      redis.url,
      'spanreplies:',
      {
        routes: [{ domains: ['corp.test'], hosts: [`127.0.0.1:${sink.port}`], tls: 'none' }],
        ehloName: 'gw.test',
        timeouts: { connectMs: 2000, greetingMs: 2000, commandMs: 2000, dataMs: 5000 },
      },
      { tracer: provider.getTracer('delivery') },
    );
  });

  after(async () => {
    await c?.close();
    await sink?.close();
    await redis?.stop();
  });

  const attemptSpan = (id: string) => {
    const s = exporter
      .getFinishedSpans()
      .find((x) => x.name === 'delivery attempt' && x.attributes['mailgate.message_id'] === id);
    assert.ok(s, `a delivery attempt span for ${id}`);
    return s;
  };

  test('a delivered message: the remote 250 with its text', async () => {
    const msg = message({ from: 'a@x.test', to: ['bob@corp.test'] });
    const [r] = await c.engine.deliver(msg, msg.envelope.rcptTo);
    assert.equal(r!.status, 'delivered');
    await sink.waitFor(1);
    const a = attemptSpan(msg.envelope.id).attributes;
    assert.equal(a['mailgate.smtp.reply'], r!.reply);
    assert.equal(a['mailgate.smtp.reply.code'], 250);
    assert.equal(a['mailgate.smtp.reply.source'], 'remote');
    assert.ok(String(a['mailgate.smtp.reply.text']).length > 0, 'the server text is kept');
    assert.equal(a['mailgate.delivered'], 1);
  });

  test('a refused recipient: code, enhanced code and text; mixed outcomes list every reply', async () => {
    sink.setReply({ stage: 'rcpt', code: 550, message: '5.1.1 no such user here', rcpt: 'nobody@corp.test' });
    const msg = message({ from: 'a@x.test', to: ['nobody@corp.test'] });
    const [r] = await c.engine.deliver(msg, msg.envelope.rcptTo);
    assert.equal(r!.status, 'failed');
    const a = attemptSpan(msg.envelope.id).attributes;
    assert.equal(a['mailgate.smtp.reply.code'], 550);
    assert.equal(a['mailgate.smtp.reply.enhanced_code'], '5.1.1');
    assert.equal(a['mailgate.smtp.reply.text'], 'no such user here');
    assert.equal(a['mailgate.smtp.reply.source'], 'remote');

    const mixed = message({ from: 'a@x.test', to: ['nobody@corp.test', 'carol@corp.test'] });
    await c.engine.deliver(mixed, mixed.envelope.rcptTo);
    const m = attemptSpan(mixed.envelope.id).attributes;
    assert.equal(m['mailgate.smtp.reply.code'], 250, 'the reply that delivered the message leads');
    const all = m['mailgate.smtp.replies'] as string[];
    assert.equal(all.length, 2);
    assert.ok(all.some((x) => x.startsWith('550 5.1.1')));
    sink.clearReplies();
  });

  test('no server answered: our own reply, marked local', async () => {
    const down = await startSmtpSink();
    const port = down.port;
    await down.close();
    const c2 = components(
      redis.url,
      'spanreplies2:',
      {
        routes: [{ domains: ['down.test'], hosts: [`127.0.0.1:${port}`], tls: 'none' }],
        ehloName: 'gw.test',
        timeouts: { connectMs: 1000, greetingMs: 1000, commandMs: 1000, dataMs: 1000 },
      },
      { tracer: provider.getTracer('delivery') },
    );
    try {
      const msg = message({ from: 'a@x.test', to: ['x@down.test'] });
      const [r] = await c2.engine.deliver(msg, msg.envelope.rcptTo);
      assert.equal(r!.status, 'deferred');
      const a = attemptSpan(msg.envelope.id).attributes;
      assert.equal(a['mailgate.smtp.reply.source'], 'local');
      assert.equal(Math.floor(Number(a['mailgate.smtp.reply.code']) / 100), 4);
    } finally {
      await c2.close();
    }
  });
});
