import { randomBytes } from 'node:crypto';
import { link, mkdir, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from '@mailgate/runtime';
import type { Sink, SinkMessage } from '@mailgate/devstack';
import type { DevConfig } from './dev-config.js';

/**
 * The dev sink's mailbox: `mailgate dev` delivers "internal" mail to a local SMTP sink; every message it accepts is
 * saved as `<X-Mailgate-Id>.eml` in `dev.sink.mailboxDir`, so a developer can open what would have been delivered
 * (any mail reader opens .eml) — and the admin console lists and previews that directory (its "Dev mailbox" page,
 * enabled by `admin.devMailboxDir`, which dev sets for the admin child process).
 */

/** Where the mailbox is when the config does not say: under the OS temporary directory, outside the work tree. */
export const DEFAULT_MAILBOX_DIR = path.join(os.tmpdir(), 'mailgate-dev', 'mailbox');

const ID_RE = /^[0-9A-Za-z._-]{1,64}$/;

/** The mailgate tracking id from the message's header block (delivery adds X-Mailgate-Id), if any. */
export function mailgateIdOf(data: Buffer): string | undefined {
  const head = data.subarray(0, 256 * 1024).toString('latin1');
  const end = head.search(/\r?\n\r?\n/);
  const m = /^x-mailgate-id:[ \t]*(\S+)[ \t]*\r?$/im.exec(end >= 0 ? head.slice(0, end) : head);
  return m && ID_RE.test(m[1]!) ? m[1]! : undefined;
}

/**
 * Saves one accepted message; returns the file name. The envelope goes in front as a local delivery agent writes
 * it (Return-Path, one Delivered-To per recipient): Bcc recipients are visible nowhere else. A second delivery of
 * the same message (one per recipient domain, or a retry) gets `<id>-2.eml`, … The file appears whole or not at
 * all: it is written under a temporary name, then hard-linked to its final name (which fails if that exists).
 */
export async function saveToMailbox(dir: string, m: SinkMessage): Promise<string> {
  await mkdir(dir, { recursive: true });
  const id = mailgateIdOf(m.data) ?? `no-id-${m.receivedAt.getTime()}`;
  const envelope = [`Return-Path: <${m.mailFrom}>`, ...m.rcptTo.map((r) => `Delivered-To: ${r}`)].join('\r\n');
  const tmp = path.join(dir, `.tmp-${randomBytes(6).toString('hex')}`);
  await writeFile(tmp, Buffer.concat([Buffer.from(`${envelope}\r\n`, 'latin1'), m.data]));
  try {
    for (let n = 1; ; n++) {
      const name = n === 1 ? `${id}.eml` : `${id}-${n}.eml`;
      try {
        await link(tmp, path.join(dir, name));
        return name;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || n >= 1000) throw err;
      }
    }
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

/**
 * Starts the dev SMTP sink with its mailbox; returns its cleanup. Sets `admin.devMailboxDir` for the services
 * (`childEnv`), so the console shows the mailbox. A message is saved before its 250 is written: "delivered" means
 * "on disk". A failed save is logged (the sink still answers 250, as a full disk at a real mail server would not).
 */
export async function startDevSink(
  cfg: DevConfig['sink'],
  opts: { log: Logger; childEnv: NodeJS.ProcessEnv },
): Promise<{ sink: Sink; mailboxDir: string | null; close: () => Promise<void> }> {
  const { startSmtpSink } = await import('@mailgate/devstack');
  const dir = cfg.mailboxDir === null ? null : path.resolve(cfg.mailboxDir);
  if (dir) {
    await mkdir(dir, { recursive: true });
    opts.childEnv['MAILGATE__ADMIN__DEV_MAILBOX_DIR'] ??= dir;
  }
  const sink = await startSmtpSink({
    host: cfg.host,
    port: cfg.port,
    name: 'internal-mail.dev',
    beforeDataReply: async (m) => {
      let file: string | undefined;
      if (dir) {
        try {
          file = await saveToMailbox(dir, m);
        } catch (err) {
          opts.log.error({ err: (err as Error).message, dir }, 'sink: could not save the message to the dev mailbox');
        }
      }
      opts.log.info(
        { from: m.mailFrom, to: m.rcptTo, bytes: m.data.length, ...(file ? { file: path.join(dir!, file) } : {}) },
        'sink: message delivered to the internal mail server',
      );
    },
  });
  opts.log.info(
    { host: sink.host, port: sink.port, mailbox: dir ?? 'off' },
    'SMTP sink (stand-in internal mail server) started',
  );
  return { sink, mailboxDir: dir, close: () => sink.close() };
}
