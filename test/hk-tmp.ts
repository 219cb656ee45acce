import { startClamd, startRbldnsd, startSmtpSink, makeTempDir } from '@mailgate/testkit';
import nodemailer from 'nodemailer';
import { ensureHaraka, startHaraka } from './bench/haraka.js';
const clamd = await startClamd();
const dns = await startRbldnsd([{ name: 'bl.test', type: 'ip4set', lines: [':127.0.0.2:x', '127.0.0.2', '127.0.0.66'] }]);
const sink = await startSmtpSink();
const h = await startHaraka({ bin: ensureHaraka(console.log), dir: makeTempDir('hk'), dnsServer: dns.server, clamd, sink, acceptedDomain: 'example.test' });
const t = nodemailer.createTransport({ host: '127.0.0.1', port: h.port, ignoreTLS: true, logger: false } as any);
try { console.log(await t.sendMail({ envelope: { from: 'a@remote.test', to: ['inbox@example.test'] }, raw: 'From: a\r\nSubject: x\r\n\r\nhi\r\n' })); } catch (e) { console.log('ERR', (e as Error).message); }
await new Promise((r) => setTimeout(r, 3000));
console.log('sink got', sink.messages.length);
console.log(h.output().slice(-4000));
await h.stop(); await sink.close(); await clamd.stop(); await dns.stop();
