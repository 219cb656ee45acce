import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CidrList } from '@mailgate/dnsbl';
import { findOrigin, headerValues, receivedFromIp } from '../src/index.js';

/**
 * Real Received lines of each MTA family (addresses moved into documentation ranges, host names kept in shape).
 * `ip` is the address the receiving MTA recorded for the connection; null = no connection recorded / unreadable.
 * The HELO is sender-controlled and must never be the answer: several samples name a trusted hop (10.0.0.5) there.
 */
const SAMPLES: { mta: string; line: string; ip: string | null }[] = [
  // ---- Postfix: from HELO (rdns [IP]) ----
  {
    mta: 'postfix',
    line: 'from mail.example.org (mail.example.org [198.51.100.7]) by mx.example.test (Postfix) with ESMTPS id 4Xy1Zk0abcz9sT for <bob@example.test>; Mon, 1 Jan 2026 10:00:00 +0000 (UTC)',
    ip: '198.51.100.7',
  },
  {
    mta: 'postfix, no rDNS',
    line: 'from bogus.helo (unknown [198.51.100.7]) by mx.example.test (Postfix) with ESMTP id 1A2B3C4D5E',
    ip: '198.51.100.7',
  },
  {
    mta: 'postfix, HELO literal of a trusted hop',
    line: 'from [10.0.0.5] (unknown [198.51.100.7]) by relay.internal (Postfix) with ESMTP id 1A2B3C4D5E; Mon, 1 Jan 2026 10:00:00 +0000',
    ip: '198.51.100.7',
  },
  {
    mta: 'postfix, HELO literal IPv6 of a trusted hop',
    line: 'from [IPv6:fd00::5] (unknown [198.51.100.7]) by relay.internal (Postfix) with ESMTP id 1A2B',
    ip: '198.51.100.7',
  },
  {
    mta: 'postfix, HELO is a bare trusted IP',
    line: 'from 10.0.0.5 (host.example.net [198.51.100.7]) by relay.internal (Postfix) with SMTP id 1A2B',
    ip: '198.51.100.7',
  },
  {
    mta: 'postfix, IPv6 client',
    line: 'from mail.example.org (mail.example.org [IPv6:2001:db8:bad::1]) by mx.example.test (Postfix) with ESMTPS id X',
    ip: '2001:db8:bad::1',
  },
  {
    mta: 'postfix, IPv6 client, HELO literal of a trusted hop',
    line: 'from [10.0.0.5] (unknown [IPv6:2001:db8:bad::1]) by relay.internal (Postfix) with ESMTP id X',
    ip: '2001:db8:bad::1',
  },
  {
    mta: 'postfix, authenticated',
    line: 'from [192.168.1.20] (unknown [203.0.113.9]) (Authenticated sender: alice@example.test) by smtp.example.test (Postfix) with ESMTPSA id 4Xy1Zk',
    ip: '203.0.113.9',
  },
  {
    mta: 'postfix, TLS details after by',
    line: 'from mail.example.org (mail.example.org [198.51.100.7]) (using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS (2048 bits)) (No client certificate requested) by mx.example.test (Postfix) with ESMTPS id 4Xy1',
    ip: '198.51.100.7',
  },
  {
    mta: 'postfix, local pickup (no connection)',
    line: 'by relay.internal (Postfix, from userid 1000) id 4Xy1Zk0abc; Mon, 1 Jan 2026 10:00:00 +0000 (UTC)',
    ip: null,
  },
  {
    mta: 'postfix, localhost',
    line: 'from localhost (localhost [127.0.0.1]) by mx.example.test (Postfix) with ESMTP id 1A2B',
    ip: '127.0.0.1',
  },
  // ---- sendmail ----
  {
    mta: 'sendmail',
    line: 'from mail.example.org (mail.example.org [198.51.100.7]) by mx.example.test (8.17.1/8.17.1) with ESMTP id 41AB0cde012345 for <bob@example.test>; Mon, 1 Jan 2026 10:00:00 GMT',
    ip: '198.51.100.7',
  },
  {
    mta: 'sendmail, may be forged, HELO literal of a trusted hop',
    line: 'from [10.0.0.5] (host.example.net [198.51.100.7] (may be forged)) by relay.internal (8.17.1/8.17.1) with ESMTP id 41AB0cde',
    ip: '198.51.100.7',
  },
  {
    mta: 'sendmail, no rDNS',
    line: 'from [10.0.0.5] ([198.51.100.7]) by relay.internal (8.15.2/8.15.2) with ESMTP id 41AB0cde',
    ip: '198.51.100.7',
  },
  {
    mta: 'sendmail, ident',
    line: 'from mail.example.org (root@mail.example.org [198.51.100.7]) by mx.example.test (8.15.2/8.15.2) with ESMTP id 41AB',
    ip: '198.51.100.7',
  },
  {
    mta: 'sendmail, IPv6',
    line: 'from mail.example.org (mail.example.org [IPv6:2001:db8::25]) by mx.example.test (8.17.1/8.17.1) with ESMTPS id 41AB',
    ip: '2001:db8::25',
  },
  {
    mta: 'sendmail, local submission',
    line: '(from alice@localhost) by host.example.test (8.15.2/8.15.2/Submit) id 41AB',
    ip: null,
  },
  // ---- Exim: from rdns ([IP] helo=HELO) / from [IP] (helo=HELO) ----
  {
    mta: 'exim, rDNS and HELO',
    line: 'from mail.example.org ([198.51.100.7] helo=bogus.example) by mx.example.test with esmtps (TLS1.3) tls TLS_AES_256_GCM_SHA384 (Exim 4.96) (envelope-from <a@example.org>) id 1rAbCd-000123-4x for bob@example.test; Mon, 01 Jan 2026 10:00:00 +0000',
    ip: '198.51.100.7',
  },
  {
    mta: 'exim, HELO literal of a trusted hop',
    line: 'from host.example.net ([198.51.100.7] helo=[10.0.0.5]) by relay.internal with esmtp (Exim 4.96) (envelope-from <a@example.org>) id 1rAbCd-000123-4x',
    ip: '198.51.100.7',
  },
  {
    mta: 'exim, no rDNS, HELO literal of a trusted hop',
    line: 'from [198.51.100.7] (helo=[10.0.0.5]) by relay.internal with esmtp (Exim 4.96) (envelope-from <a@example.org>) id 1rAbCd-000123-4x',
    ip: '198.51.100.7',
  },
  {
    mta: 'exim, no rDNS, port logging',
    line: 'from [198.51.100.8] (port=41234 helo=foo) by mx with esmtp (Exim 4.96) id 1rAbCd-000123-4x',
    ip: '198.51.100.8',
  },
  {
    mta: 'exim, rDNS, port logging',
    line: 'from mail.example.org ([198.51.100.7]:41234 helo=mail.example.org) by mx.example.test with esmtp (Exim 4.94.2) id 1rAbCd',
    ip: '198.51.100.7',
  },
  {
    mta: 'exim, HELO equal to the host name',
    line: 'from mail.example.org ([198.51.100.7]) by mx.example.test with esmtp (Exim 4.96) id 1rAbCd-000123-4x',
    ip: '198.51.100.7',
  },
  {
    mta: 'exim, HELO equal to the address (no comment)',
    line: 'from [198.51.100.8] by mx.example.test with esmtp (Exim 4.96) id 1rAbCd-000123-4x',
    ip: '198.51.100.8',
  },
  {
    mta: 'exim, IPv6 without prefix',
    line: 'from mail.example.org ([2001:db8:bad::7]:50512 helo=mail.example.org) by mx.example.test with esmtps (TLS1.2) (Exim 4.96) id 1rAbCd',
    ip: '2001:db8:bad::7',
  },
  {
    mta: 'exim, IPv6 no rDNS',
    line: 'from [2001:db8:bad::7] (helo=[IPv6:fd00::5]) by mx.example.test with esmtp (Exim 4.96) id 1rAbCd',
    ip: '2001:db8:bad::7',
  },
  {
    mta: 'exim, ident',
    line: 'from mail.example.org ([198.51.100.7] helo=x ident=bob) by mx.example.test with smtp (Exim 4.96) id 1rAbCd',
    ip: '198.51.100.7',
  },
  { mta: 'exim, local', line: 'from alice by host.example.test with local (Exim 4.96) id 1rAbCd-000123-4x', ip: null },
  // ---- Exchange (on premises) ----
  {
    mta: 'exchange 2016, hub to hub',
    line: 'from EX01.contoso.test (10.1.2.3) by EX02.contoso.test (10.1.2.4) with Microsoft SMTP Server (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384) id 15.1.2507.23; Mon, 1 Jan 2026 10:00:00 +0000',
    ip: '10.1.2.3',
  },
  {
    mta: 'exchange, internet to frontend',
    line: 'from mail.example.org (198.51.100.7) by EX02.contoso.test (10.1.2.4) with Microsoft SMTP Server id 15.2.1258.12 via Frontend Transport; Mon, 1 Jan 2026 10:00:00 +0000',
    ip: '198.51.100.7',
  },
  {
    mta: 'exchange, HELO literal of a trusted hop',
    line: 'from [10.0.0.5] (198.51.100.7) by EX02.contoso.test (10.1.2.4) with Microsoft SMTP Server id 15.2.1258.12 via Frontend Transport',
    ip: '198.51.100.7',
  },
  {
    mta: 'exchange 2010, TLS',
    line: 'from EX01.contoso.test (10.1.2.3) by EX02.contoso.test (10.1.2.4) with Microsoft SMTP Server (TLS) id 14.3.498.0; Mon, 1 Jan 2026',
    ip: '10.1.2.3',
  },
  {
    mta: 'exchange 2003 SMTPSVC',
    line: 'from mail.example.org ([198.51.100.7]) by ex2003.contoso.test with Microsoft SMTPSVC(6.0.3790.4675); Mon, 1 Jan 2026 10:00:00 +0000',
    ip: '198.51.100.7',
  },
  {
    mta: 'exchange, IPv6',
    line: 'from EX01.contoso.test (2001:db8:1::15) by EX02.contoso.test (2001:db8:1::16) with Microsoft SMTP Server (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.1.2507.27',
    ip: '2001:db8:1::15',
  },
  // ---- Microsoft 365 / Exchange Online ----
  {
    mta: 'microsoft 365, internet to EOP',
    line: 'from mail-pf1-f179.google.com (209.85.210.179) by BN8NAM12FT052.mail.protection.outlook.com (10.13.182.165) with Microsoft SMTP Server (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.20.7159.9 via Frontend Transport; Mon, 8 Jan 2024 10:00:00 +0000',
    ip: '209.85.210.179',
  },
  {
    mta: 'microsoft 365, internal IPv6 hop',
    line: 'from BN8NAM12FT052.eop-nam12.prod.protection.outlook.com (2603:10b6:408:e3:cafe::4e) by BN9PR03CA0178.outlook.office365.com (2603:10b6:408:f4::33) with Microsoft SMTP Server (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.20.7159.21 via Frontend Transport; Mon, 8 Jan 2024 10:00:00 +0000',
    ip: '2603:10b6:408:e3:cafe::4e',
  },
  {
    mta: 'microsoft 365, HELO literal of a trusted hop',
    line: 'from [10.0.0.5] (198.51.100.7) by DM6NAM11FT033.mail.protection.outlook.com (10.13.172.221) with Microsoft SMTP Server id 15.20.7159.9 via Frontend Transport',
    ip: '198.51.100.7',
  },
  {
    mta: 'microsoft 365, mapi with zone index',
    line: 'from DM6PR11MB4545.namprd11.prod.outlook.com ([fe80::1c2b:3d4e:5f60:7182]) by DM6PR11MB4545.namprd11.prod.outlook.com ([fe80::1c2b:3d4e:5f60:7182%6]) with mapi id 15.20.7159.020; Mon, 8 Jan 2024 10:00:00 +0000',
    ip: 'fe80::1c2b:3d4e:5f60:7182',
  },
  {
    mta: 'microsoft 365 outbound into postfix',
    line: 'from NAM10-BN7-obe.outbound.protection.outlook.com (mail-bn7nam10on2088.outbound.protection.outlook.com [40.107.92.88]) by mx.example.test (Postfix) with ESMTPS id 4Xy1',
    ip: '40.107.92.88',
  },
  // ---- Gmail: from HELO (rdns. [IP]) ----
  {
    mta: 'gmail, inbound',
    line: 'from mail-sor-f41.google.com (mail-sor-f41.google.com. [209.85.220.41]) by mx.google.com with SMTPS id a640c23a62f3a-a9a0f2d1c2esor1234567866b.7.2026.01.01.10.00.00 for <bob@gmail.com> (Google Transport Security); Mon, 01 Jan 2026 10:00:00 -0800 (PST)',
    ip: '209.85.220.41',
  },
  {
    mta: 'gmail, submission with HELO literal of a trusted hop',
    line: 'from [10.0.0.5] (host-198-51-100-7.example.net. [198.51.100.7]) by smtp.gmail.com with ESMTPSA id 5b1f17b1804b1-4311c9a2b3asm1234567f8a.12.2026.01.01.10.00.00 (version=TLS1_3 cipher=TLS_AES_256_GCM_SHA384 bits=256/256); Mon, 01 Jan 2026 10:00:00 -0800 (PST)',
    ip: '198.51.100.7',
  },
  {
    mta: 'gmail, IPv6',
    line: 'from mail-yb1-xb33.google.com (mail-yb1-xb33.google.com. [2607:f8b0:4864:20::b33]) by mx.google.com with ESMTPS id x4si1234567ybm.123.2026.01.01.10.00.00',
    ip: '2607:f8b0:4864:20::b33',
  },
  {
    mta: 'gmail, internal (no from)',
    line: 'by 2002:a05:6a10:a0c8:b0:5a1:2b3c:4d5e with SMTP id n8csp1234567pxm; Mon, 1 Jan 2026 10:00:00 -0800 (PST)',
    ip: null,
  },
  // ---- qmail: from rdns (HELO helo) (IP) ----
  {
    mta: 'qmail, unknown host',
    line: 'from unknown (HELO mail.example.org) (198.51.100.7) by mx.example.test with SMTP; 1 Jan 2026 10:00:00 -0000',
    ip: '198.51.100.7',
  },
  {
    mta: 'qmail, HELO literal of a trusted hop',
    line: 'from unknown (HELO [10.0.0.5]) (198.51.100.7) by relay.internal with SMTP; 1 Jan 2026 10:00:00 -0000',
    ip: '198.51.100.7',
  },
  {
    mta: 'qmail, bare trusted IP as HELO',
    line: 'from host.example.net (HELO 10.0.0.5) (198.51.100.7) by relay.internal with ESMTP; 1 Jan 2026 10:00:00 -0000',
    ip: '198.51.100.7',
  },
  {
    mta: 'qmail, HELO equal to rDNS',
    line: 'from mail.example.org (198.51.100.7) by mx.example.test with SMTP; 1 Jan 2026 10:00:00 -0000',
    ip: '198.51.100.7',
  },
  {
    mta: 'qmail, ident',
    line: 'from unknown (HELO x) (bob@198.51.100.7) by mx.example.test with SMTP; 1 Jan 2026 10:00:00 -0000',
    ip: '198.51.100.7',
  },
  {
    mta: 'qmail, IPv4-mapped IPv6 (ipv6 patch)',
    line: 'from unknown (HELO [10.0.0.5]) (::ffff:198.51.100.7) by mx.example.test with ESMTPA; 1 Jan 2026 10:00:00 -0000',
    ip: '198.51.100.7',
  },
  { mta: 'qmail-queue note', line: '(qmail 12345 invoked from network); 1 Jan 2026 10:00:00 -0000', ip: null },
  { mta: 'qmail local', line: '(qmail 12345 invoked by uid 89); 1 Jan 2026 10:00:00 -0000', ip: null },
  // ---- mailgate ingress (postfix layout) ----
  {
    mta: 'mailgate ingress',
    line: 'from [10.0.0.5] (unknown [198.51.100.7]) by mailgate.example.test (mailgate) with ESMTP id 01JABCDEF; Mon, 1 Jan 2026 10:00:00 +0000',
    ip: '198.51.100.7',
  },
  {
    mta: 'mailgate ingress, IPv6',
    line: 'from client.example ([IPv6:2001:db8::9]) by mailgate.example.test (mailgate) with ESMTP id 01JABCDEF',
    ip: '2001:db8::9',
  },
  // ---- other / unreadable ----
  {
    mta: 'bare address (HTTP submission)',
    line: 'from 203.0.113.5 by relay.test with HTTP; Mon, 1 Jan 2026',
    ip: '203.0.113.5',
  },
  { mta: 'HELO only, no address', line: 'from localhost (localhost) by mx', ip: null },
  { mta: 'HELO only, literal, unknown comment', line: 'from [10.0.0.5] (unverified) by mx with SMTP', ip: null },
  {
    mta: 'HELO with spaces in front of the comment',
    line: 'from [10.0.0.5] really (unknown [198.51.100.7]) by mx with ESMTP',
    ip: null,
  },
  { mta: 'unbalanced comment', line: 'from x (unknown [198.51.100.7] by mx', ip: null },
  { mta: 'garbage', line: 'this is not a received line', ip: null },
];

describe('Received "from" clause per MTA format', () => {
  for (const s of SAMPLES) {
    test(`${s.mta}`, () => assert.equal(receivedFromIp(s.line), s.ip, s.line));
  }

  test('the table covers every format the parser documents', () => {
    const families = new Set(SAMPLES.map((s) => s.mta.split(/[ ,]/)[0]));
    for (const f of ['postfix', 'sendmail', 'exim', 'exchange', 'microsoft', 'gmail', 'qmail', 'mailgate']) {
      assert.ok(families.has(f), f);
    }
    assert.ok(SAMPLES.length >= 50, `${SAMPLES.length} samples`);
  });
});

describe('findOrigin', () => {
  const trusted = new CidrList(['10.0.0.0/24', 'fd00::/64']);

  test('a listed sender using a trusted relay address as HELO is judged by its real IP, forgeries below ignored', () => {
    for (const helo of ['[10.0.0.5]', '10.0.0.6', '[IPv6:fd00::5]']) {
      const received = [
        'from relay.internal (relay.internal [10.0.0.5]) by mailgate.example.test (mailgate) with ESMTP id A; Mon, 1 Jan 2026',
        `from ${helo} (unknown [198.51.100.7]) by relay.internal (Postfix) with ESMTP id B; Mon, 1 Jan 2026`,
        // The sender's own forgery: would make a "clean" origin if the HELO were believed.
        'from clean.example (clean.example [203.0.113.1]) by relay.internal (Postfix); Mon, 1 Jan 2026',
      ];
      assert.deepEqual(findOrigin('10.0.0.5', received, trusted, 5), {
        ip: '198.51.100.7',
        source: 'received',
        via: ['10.0.0.5'],
      });
    }
  });

  test('same for Exim, Exchange and qmail relays', () => {
    const top = 'from relay.internal (relay.internal [10.0.0.5]) by mailgate.example.test (mailgate) with ESMTP id A';
    for (const line of [
      'from host.example.net ([198.51.100.7] helo=[10.0.0.6]) by relay.internal with esmtp (Exim 4.96) id 1r',
      'from [10.0.0.6] (198.51.100.7) by relay.internal (10.0.0.5) with Microsoft SMTP Server id 15.2.1258.12',
      'from unknown (HELO [10.0.0.6]) (198.51.100.7) by relay.internal with SMTP; 1 Jan 2026 10:00:00 -0000',
    ]) {
      const forged = 'from x (x [203.0.113.1]) by y';
      assert.equal(findOrigin('10.0.0.5', [top, line, forged], trusted, 5).ip, '198.51.100.7', line);
    }
  });

  test('our own line is recognised by the recorded address, not the HELO', () => {
    // Ingress line from the relay whose HELO names another trusted host: still our line (skipped).
    const received = [
      'from [10.0.0.9] (relay.internal [10.0.0.5]) by mailgate.example.test (mailgate) with ESMTP id A',
      'from mail.example.org (mail.example.org [198.51.100.7]) by relay.internal (Postfix) with ESMTP id B',
    ];
    assert.deepEqual(findOrigin('10.0.0.5', received, trusted, 5), {
      ip: '198.51.100.7',
      source: 'received',
      via: ['10.0.0.5'],
    });
    // A relay line whose HELO is the client's address is not mistaken for ours (no line is skipped).
    const noIngressLine = [
      'from [10.0.0.5] (unknown [198.51.100.7]) by relay.internal (Postfix) with ESMTP id B',
      'from clean.example (clean.example [203.0.113.1]) by evil.example',
    ];
    assert.equal(findOrigin('10.0.0.5', noIngressLine, trusted, 5).ip, '198.51.100.7');
  });

  test('walks several trusted hops (IPv6 included) and stops at the first unreadable line', () => {
    const received = [
      'from relay1.internal (relay1.internal [10.0.0.5]) by mailgate.example.test (mailgate) with ESMTP id A',
      'from relay2.internal (relay2.internal [IPv6:fd00::6]) by relay1.internal (Postfix) with ESMTP id B',
      'from [10.0.0.7] (unknown [IPv6:2001:db8:bad::1]) by relay2.internal (Postfix) with ESMTP id C',
      'from forged.example (forged [203.0.113.1]) by evil.example',
    ];
    assert.deepEqual(findOrigin('10.0.0.5', received, trusted, 5), {
      ip: '2001:db8:bad::1',
      source: 'received',
      via: ['10.0.0.5', 'fd00::6'],
    });
    const unreadable = [
      received[0]!,
      'from relay2.internal really (x [10.0.0.6]) by relay1.internal',
      'from forged.example (forged [203.0.113.1]) by relay2.internal',
    ];
    const o = findOrigin('10.0.0.5', unreadable, trusted, 5);
    assert.equal(o.ip, null);
    assert.match(o.note!, /unreadable/);
  });

  test('qmail-queue note of a trusted relay is part of the same hop', () => {
    const raw = Buffer.from(
      [
        'Received: from relay.internal (relay.internal [10.0.0.5]) by mailgate.example.test (mailgate) with ESMTP id A;',
        '\tMon, 1 Jan 2026 10:00:00 +0000',
        'Received: (qmail 12345 invoked from network); 1 Jan 2026 10:00:00 -0000',
        'Received: from unknown (HELO [10.0.0.5]) (198.51.100.7)',
        '  by relay.internal with SMTP; 1 Jan 2026 10:00:00 -0000',
        'Subject: x',
        '',
        'body',
      ].join('\r\n'),
    );
    assert.equal(findOrigin('10.0.0.5', headerValues(raw, 'received'), trusted, 5).ip, '198.51.100.7');
  });
});
