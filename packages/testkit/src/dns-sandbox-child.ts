// Runs inside the namespace made by runWithSandboxDns (mail-auth.ts): serves the job's records on 127.0.0.1:53,
// runs the job's command with the input file on stdin, prints {code, stdout (base64), stderr} as JSON.
import { readFileSync } from 'node:fs';
import { startDnsServer, type DnsRecord } from './dns-server.js';
import { run } from './mail-auth.js';

const [jobFile, inputFile] = process.argv.slice(2);
const job = JSON.parse(readFileSync(jobFile!, 'utf8')) as { records: DnsRecord[]; cmd: string; args: string[] };
const dns = await startDnsServer({ records: job.records, host: '127.0.0.1', port: 53 });
try {
  const r = await run(job.cmd, job.args, readFileSync(inputFile!));
  process.stdout.write(JSON.stringify({ code: r.code, stdout: r.stdout.toString('base64'), stderr: r.stderr }));
} finally {
  await dns.close();
}
