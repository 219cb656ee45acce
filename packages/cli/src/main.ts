import { pathToFileURL } from 'node:url';
import { CHECK_STAGES, SERVICE_NAMES } from '@mailgate/contracts';
import { runBrokerCli } from '@mailgate/kafka-lite';
import { ConfigErrors, loadConfig, startService, type ServiceSection } from '@mailgate/runtime';
import type { ZodTypeAny } from 'zod';
import { flagString, parseArgs } from './args.js';
import { devSchema } from './dev-config.js';
import { runDev } from './dev.js';
import { runQueue } from './queue.js';
import { runLists } from './lists.js';
import { runSpam } from './spam.js';
import { runTrack } from './track.js';
import { CHAIN_USAGE, ChainArgError, loadChainService } from './chain.js';
import { availableServices, isServiceName, loadService, SERVICE_PACKAGES } from './services.js';

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) return '';
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const USAGE = `mailgate — cloud-native email security gateway

Usage:
  mailgate dev [--config FILE] [--pretty] [--chain [STAGE,…]]
                                               everything embedded: kafka-lite, Redis/clamd/sink if needed, all services
                                               (--chain: the check stages as one stage chain process, dev.chain)
  mailgate <service> [--config FILE]           run one service (as in Kubernetes)
      services: ${SERVICE_NAMES.join(', ')}
  mailgate chain STAGE,STAGE,… [--config FILE] run consecutive check stages in one process (a stage chain)
  mailgate broker [--host H] [--port P] [--data-dir DIR] [--partitions N]   kafka-lite, the embedded broker
  mailgate config check [--config FILE]        validate the whole configuration document and exit
  mailgate hash-password                       read a password on stdin, print its scrypt hash (ingress.auth.users)
  mailgate queue list|show|retry|hold|release|delete [ID] [--dsn]   the deferred delivery queue (Redis of the config)
  mailgate trace <message-id>                  print a message's timeline (admin API)
  mailgate track --rcpt A | --from A | --ip IP | --message-id ID …   search message tracking (admin API)
  mailgate lists ls|add|rm [KIND VALUE]        live sender/IP allow and block lists (admin API, audited)
  mailgate spam not-spam|mark|stat [ID]        train rspamd: release as not spam / mark as spam (admin API, audited)
  mailgate help [COMMAND]                      this text, or a command's options (broker, chain, queue, trace, …)

The config file defaults to $MAILGATE_CONFIG. Environment overrides: MAILGATE__SECTION__KEY=value.
--pretty (or MAILGATE_LOG_FORMAT=pretty) writes human-readable logs instead of JSON; dev does on a terminal.
Admin API commands (trace, track, lists, spam) find the admin URL and a token in --url/--token, then
$MAILGATE_ADMIN_URL, $MAILGATE_ADMIN_TOKEN or $MAILGATE_ADMIN_TOKEN_FILE, then admin.http and admin.tokens of the
config file (--config, $MAILGATE_CONFIG, else /etc/mailgate/mailgate.yaml); listings take --limit/--offset and --json.
Exit codes: 0 ok, 1 runtime error, 64 usage error, 78 configuration error.`;

const OWN_HELP = new Set(['broker', 'queue', 'trace', 'track', 'lists', 'spam', 'chain']);

/** Exit codes from sysexits(3), so init systems and CI tell a config error from a crash. */
const EX_USAGE = 64;
const EX_CONFIG = 78;

function printConfigError(err: unknown): number {
  if (err instanceof ConfigErrors) {
    for (const e of err.errors) console.error(e.message);
    return EX_CONFIG;
  }
  throw err;
}

export async function main(argv: string[]): Promise<number | undefined> {
  // --pretty (anywhere, taking no value): human-readable logs for this process and, through the environment, every
  // service `dev` starts. Removed before parsing so `mailgate --pretty dev` does not read "dev" as its value.
  if (argv.includes('--pretty')) {
    argv = argv.filter((a) => a !== '--pretty');
    process.env['MAILGATE_LOG_FORMAT'] = 'pretty';
  }
  const args = parseArgs(argv);
  const [cmd, sub] = args.positional;
  const configFile = flagString(args, 'config');
  // Commands with options of their own print their own help (`mailgate broker --help`, `mailgate help queue`).
  if (cmd === 'help' && sub && OWN_HELP.has(sub)) return main([sub, '--help']);
  if (!cmd || cmd === 'help' || (args.flags['help'] && !OWN_HELP.has(cmd))) {
    console.log(USAGE);
    // Asking for help succeeds; no command at all is a usage error.
    return cmd || args.flags['help'] ? 0 : EX_USAGE;
  }
  if (cmd === 'broker') {
    const broker = await runBrokerCli(argv.slice(1));
    return broker ? undefined : 0; // keeps running until a signal; undefined broker = it printed its help
  }
  if (cmd === 'config' && sub === 'check') {
    const sections: Partial<Record<ServiceSection, ZodTypeAny>> = { dev: devSchema };
    const report: string[] = [];
    for (const s of await availableServices()) {
      if (!s.def) {
        report.push(`  ${s.name}: not installed (${s.error})`);
        continue;
      }
      Object.assign(sections, s.def.sections);
      report.push(`  ${s.name}: checked`);
    }
    try {
      loadConfig({ file: configFile, sections });
    } catch (e) {
      return printConfigError(e);
    }
    console.log(
      `configuration ${configFile ?? process.env['MAILGATE_CONFIG'] ?? '(defaults)'} is valid\n${report.join('\n')}`,
    );
    return 0;
  }
  if (cmd === 'trace' || cmd === 'track') return runTrack(argv);
  if (cmd === 'lists') return runLists(argv);
  if (cmd === 'spam') return runSpam(argv);
  if (cmd === 'queue') {
    try {
      return await runQueue(argv);
    } catch (e) {
      return printConfigError(e);
    }
  }
  if (cmd === 'hash-password') {
    const password = (await readStdin()).replace(/\r?\n$/, '');
    if (!password) {
      console.error('give the password on standard input, e.g.: printf %s "$PASSWORD" | mailgate hash-password');
      return EX_USAGE;
    }
    const ingress = (await import(SERVICE_PACKAGES['ingress-smtp'])) as {
      hashPassword(p: string): Promise<string> | string;
    };
    console.log(await ingress.hashPassword(password));
    return 0;
  }
  if (cmd === 'dev') {
    // --chain: the four check stages as one stage chain process; --chain a,b: those stages (dev.chain).
    const chain = args.flags['chain'];
    const env =
      chain === undefined
        ? process.env
        : { ...process.env, MAILGATE__DEV__CHAIN: `[${chain === true ? CHECK_STAGES.join(', ') : chain}]` };
    try {
      const dev = await runDev({ configFile, env });
      const stop = () => {
        void dev.stop().then(() => process.exit(0));
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      return undefined;
    } catch (e) {
      return printConfigError(e);
    }
  }
  if (cmd === 'chain') {
    if (args.flags['help']) {
      console.log(CHAIN_USAGE);
      return 0;
    }
    let def;
    try {
      def = await loadChainService(sub);
    } catch (e) {
      if (!(e instanceof ChainArgError)) throw e;
      console.error(e.message);
      return e.kind === 'usage' ? EX_USAGE : EX_CONFIG;
    }
    try {
      await startService(def, { configFile, signals: true });
    } catch (e) {
      return printConfigError(e);
    }
    return undefined;
  }
  if (isServiceName(cmd)) {
    const def = await loadService(cmd);
    try {
      await startService(def, { configFile, signals: true });
    } catch (e) {
      return printConfigError(e);
    }
    return undefined;
  }
  console.error(`unknown command: ${cmd}\n\n${USAGE}`);
  return EX_USAGE;
}

// Run directly from source: node --import tsx --conditions=mailgate-src packages/cli/src/main.ts <args>
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).then(
    (code) => {
      if (typeof code === 'number') process.exit(code);
    },
    (err: unknown) => {
      console.error(err instanceof Error ? (err.stack ?? err.message) : err);
      process.exit(1);
    },
  );
}
