// End to end: every MIME-confusion shape (packages/testkit) sent through the real pipeline with an
// executable-stripping policy never delivers the executable — it ends quarantined, or delivered with the exe
// stripped from every reading. And well-formed clean mail is delivered byte-identical apart from the headers the
// gateway prepends.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { carriesPayload, MIME_CONFUSION_SHAPES, type Sink, type SinkMessage } from '@mailgate/testkit';
import { eventually, mailgateId, quarantineList, send } from '../harness/mail.js';
import { ACCEPTED_DOMAIN, REMOTE_DOMAIN, startStack, type Stack } from '../harness/stack.js';

let stack: Stack;

before(async () => {
  stack = await startStack({
    config: {
      attachmentPolicy: {
        mode: 'block-list',
        rules: [{ name: 'strip-executables', match: { trueType: ['exe'] }, action: 'strip' }],
      },
    },
  });
});

after(async () => {
  if (process.env['MAILGATE_E2E_LOGDIR']) console.log(`logs: ${await stack?.dumpLogs()}`);
  await stack?.stop();
});

const sinks = (): Sink[] => [stack.internal, stack.mx1, stack.mx2];
const delivered = (id: string): SinkMessage | undefined =>
  sinks()
    .flatMap((s) => s.messages)
    .find((m) => mailgateId(m) === id);

const from = `mallory@${REMOTE_DOMAIN}`;
const to = `alice@${ACCEPTED_DOMAIN}`;

describe('MIME confusion through the pipeline', { timeout: 280_000 }, () => {
  test(`${MIME_CONFUSION_SHAPES.length} shapes carrying invoice.exe: never delivered with the executable`, async () => {
    const sent = [];
    for (const shape of MIME_CONFUSION_SHAPES) sent.push({ shape, r: await send(stack, { from, to, raw: shape.raw }) });
    const outcomes: Record<string, string> = {};
    for (const { shape, r } of sent) {
      assert.ok(r.id, `${shape.name}: accepted with an id`);
      // A positive signal for each: in quarantine, or at a sink.
      const end = await eventually(`${shape.name} quarantined or delivered`, async () => {
        const m = delivered(r.id);
        if (m) return { kind: 'delivered', m } as const;
        const q = (await quarantineList(stack)).find((e) => e.id === r.id);
        return q ? ({ kind: 'quarantined', q } as const) : undefined;
      });
      if (end.kind === 'delivered') {
        assert.ok(!carriesPayload(end.m.data, shape), `${shape.name}: delivered WITH the executable`);
        outcomes[shape.name] = 'stripped';
      } else {
        assert.equal(end.q.stage, 'attachment-policy', `${shape.name}: ${end.q.reason}`);
        outcomes[shape.name] = 'quarantined';
      }
    }
    // No sink ever got any shape's executable (also not under another id).
    for (const m of sinks().flatMap((s) => s.messages)) {
      for (const shape of MIME_CONFUSION_SHAPES) assert.ok(!carriesPayload(m.data, shape), shape.name);
    }
    assert.ok(Object.values(outcomes).includes('quarantined'));
  });

  test('clean multipart mail is delivered byte-identical apart from the prepended trace and verdict headers', async () => {
    const raw = Buffer.from(
      `From: Bob <bob@${REMOTE_DOMAIN}>\r\nTo: ${to}\r\nSubject: clean\r\nMIME-Version: 1.0\r\n` +
        'Content-Type: multipart/mixed; boundary="clean-b"\r\n\r\npreamble\r\n--clean-b\r\n' +
        'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nhello \xc3\xa9\r\n' +
        '--clean-b\r\nContent-Type: text/csv; name="n.csv"\r\nContent-Disposition: attachment; filename="n.csv"\r\n\r\n' +
        'a,b\r\n1,2\r\n--clean-b--\r\nepilogue\r\n',
      'latin1',
    );
    const r = await send(stack, { from: `bob@${REMOTE_DOMAIN}`, to, raw });
    const got = await stack.internal.waitFor((m) => mailgateId(m) === r.id, 60_000);
    const tail = got.data.subarray(got.data.length - raw.length);
    assert.ok(tail.equals(raw), 'the original bytes end the delivered message unchanged');
    const added = got.data.subarray(0, got.data.length - raw.length).toString('latin1');
    const names = added
      .split('\r\n')
      .filter((l) => l && !/^[ \t]/.test(l))
      .map((l) => l.slice(0, l.indexOf(':')).toLowerCase());
    // Trace headers, and the verdict headers added to every checked message (sender auth, spam-check).
    for (const n of names)
      assert.match(n, /^(received|authentication-results|x-mailgate-[a-z-]+|x-spam-[a-z]+)$/, `added header ${n}`);
    assert.ok(names.includes('received'));
  });
});
