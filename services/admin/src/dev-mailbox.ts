import { open, readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { decodeWordsSafe, field, messageHeaders } from '@mailgate/mail';
import { ID_RE } from './api.js';
import { esc, html, page } from './console.js';
import { previewMessage } from './quarantine-preview.js';
import { previewSections } from './quarantine-view.js';

/**
 * The dev mailbox (like Mailpit): what `mailgate dev`'s SMTP sink accepted, one `<X-Mailgate-Id>.eml` file per
 * message in `admin.devMailboxDir` (written by packages/cli/src/dev-mailbox.ts). Listed and previewed — as text,
 * never rendered — in the API and the console, only when that directory is configured; a production admin has
 * no such key and these routes answer 404.
 */
export interface DevMailboxItem {
  /** The file name without `.eml`: the mailgate id (`-2`, `-3` for further deliveries of the same message). */
  readonly id: string;
  readonly file: string;
  readonly size: number;
  readonly savedAt: string;
  readonly from: string;
  readonly to: string;
  readonly subject: string;
  /** Envelope recipients (the Delivered-To fields the sink wrote). */
  readonly deliveredTo: string[];
}

/** How much of a file is read for the list (the header block). */
const HEAD_BYTES = 64 * 1024;

export class DevMailbox {
  constructor(readonly dir: string) {}

  /** Newest first. */
  async list(limit = 200): Promise<DevMailboxItem[]> {
    let names: string[];
    try {
      names = (await readdir(this.dir)).filter((n) => n.endsWith('.eml') && ID_RE.test(n.slice(0, -4)));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const stats = await Promise.all(
      names.map(async (n) => ({ n, s: await stat(path.join(this.dir, n)).catch(() => null) })),
    );
    const newest = stats
      .filter((x) => x.s?.isFile())
      .sort((a, b) => b.s!.mtimeMs - a.s!.mtimeMs || (a.n < b.n ? 1 : -1))
      .slice(0, limit);
    return Promise.all(newest.map(({ n, s }) => this.item(n, s!.size, s!.mtime)));
  }

  /** The message bytes, or null (unknown or malformed id: never a path outside the directory). */
  async raw(id: string): Promise<Buffer | null> {
    if (!ID_RE.test(id)) return null;
    return readFile(path.join(this.dir, `${id}.eml`)).catch(() => null);
  }

  private async item(file: string, size: number, mtime: Date): Promise<DevMailboxItem> {
    const fh = await open(path.join(this.dir, file), 'r');
    let head: Buffer;
    try {
      const buf = Buffer.alloc(Math.min(size, HEAD_BYTES));
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      head = buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
    let fields: ReturnType<typeof messageHeaders>['fields'] = [];
    try {
      fields = messageHeaders(head).fields;
    } catch {
      /* an unreadable header block still lists the file */
    }
    const h = { fields };
    return {
      id: file.slice(0, -4),
      file,
      size,
      savedAt: mtime.toISOString(),
      from: decodeWordsSafe(field(h, 'from') ?? ''),
      to: decodeWordsSafe(field(h, 'to') ?? ''),
      subject: decodeWordsSafe(field(h, 'subject') ?? ''),
      deliveredTo: fields.filter((f) => f.name === 'delivered-to').map((f) => f.value),
    };
  }
}

/** `http` for the admin's error handler (api.ts), `statusCode` for fastify's own. */
class HttpError extends Error {
  readonly statusCode: number;
  constructor(
    message: string,
    readonly http: number,
  ) {
    super(message);
    this.statusCode = http;
  }
}

const NOT_CONFIGURED = 'the dev mailbox is not configured (admin.devMailboxDir, set by `mailgate dev`)';

/**
 * Registers the API (`/api/v1/dev/mailbox…`) and console (`/console/dev-mailbox…`) routes. Reading mail needs the
 * admin role, as for the quarantine. Unconfigured (`dir` undefined), the routes exist and answer 404, and the
 * console has no "Dev mailbox" link.
 */
export function registerDevMailbox(app: FastifyInstance, d: { dir?: string | undefined }): void {
  const box = d.dir ? new DevMailbox(d.dir) : null;
  const need = (req: FastifyRequest): DevMailbox => {
    if (!box) throw new HttpError(NOT_CONFIGURED, 404);
    const p = req.principal!;
    if (p.role !== 'admin')
      throw new HttpError(`token '${p.name}' is read-only: reading mail needs the admin role`, 403);
    return box;
  };
  const idOf = (req: FastifyRequest): string => {
    const { id } = req.params as { id: string };
    if (!ID_RE.test(id)) throw new HttpError(`malformed id '${id.slice(0, 80)}'`, 400);
    return id;
  };
  /** The message named by the route's id, or a 404. */
  const messageOf = async (req: FastifyRequest, b: DevMailbox): Promise<{ id: string; raw: Buffer }> => {
    const id = idOf(req);
    const raw = await b.raw(id);
    if (!raw) throw new HttpError(`no message ${id} in the dev mailbox`, 404);
    return { id, raw };
  };
  /** The message as a download (`<id>.eml`). */
  const sendRaw = async (req: FastifyRequest, reply: FastifyReply, b: DevMailbox) => {
    const { id, raw } = await messageOf(req, b);
    return reply
      .header('content-type', 'message/rfc822')
      .header('content-disposition', `attachment; filename="${id}.eml"`)
      .send(raw);
  };

  app.get('/api/v1/dev/mailbox', async (req) => {
    const b = need(req);
    const limit = Number((req.query as Record<string, string>)['limit'] ?? 200);
    return { dir: b.dir, results: await b.list(Number.isInteger(limit) && limit > 0 ? Math.min(limit, 1000) : 200) };
  });
  app.get('/api/v1/dev/mailbox/:id', async (req) => {
    const { id, raw } = await messageOf(req, need(req));
    return { id, size: raw.length, ...previewMessage(raw) };
  });
  app.get('/api/v1/dev/mailbox/:id/raw', async (req, reply) => sendRaw(req, reply, need(req)));

  const consolePage =
    (fn: (req: FastifyRequest, reply: FastifyReply, b: DevMailbox) => Promise<unknown>) =>
    async (req: FastifyRequest, reply: FastifyReply) => {
      try {
        return await fn(req, reply, need(req));
      } catch (err) {
        if (!(err instanceof HttpError)) throw err;
        return html(reply, page('Dev mailbox', `<p class="error" id="error">${esc(err.message)}</p>`), err.http);
      }
    };

  app.get(
    '/console/dev-mailbox',
    consolePage(async (_req, reply, b) => {
      const items = await b.list(200);
      const rows = items
        .map(
          (m) =>
            `<tr data-id="${esc(m.id)}"><td><a href="/console/dev-mailbox/${esc(m.id)}"><code>${esc(m.id)}</code></a></td><td>${esc(m.savedAt)}</td><td>${esc(m.from)}</td><td>${esc(m.deliveredTo.join(', ') || m.to)}</td><td>${esc(m.subject)}</td><td>${m.size}</td></tr>`,
        )
        .join('');
      return html(
        reply,
        page(
          'Dev mailbox',
          `<p class="muted">What <code>mailgate dev</code>'s SMTP sink (the stand-in internal mail server) accepted, saved in <code>${esc(b.dir)}</code>.</p>` +
            (items.length
              ? `<table id="dev-mailbox"><tr><th>Id</th><th>Delivered</th><th>From</th><th>To (envelope)</th><th>Subject</th><th>Bytes</th></tr>${rows}</table>`
              : '<p class="muted" id="dev-mailbox-empty">No mail delivered yet.</p>'),
          { refresh: 10 },
        ),
      );
    }),
  );
  app.get(
    '/console/dev-mailbox/:id',
    consolePage(async (req, reply, b) => {
      const { id, raw } = await messageOf(req, b);
      return html(
        reply,
        page(
          `Delivered message ${id}`,
          `<p><a href="/console/dev-mailbox">← Dev mailbox</a> · <a href="/console/messages/${esc(id.replace(/-\d+$/, ''))}">Timeline</a> · <a id="download" href="/console/dev-mailbox/${esc(id)}/raw">Download .eml</a></p>${previewSections(previewMessage(raw))}`,
        ),
      );
    }),
  );
  app.get('/console/dev-mailbox/:id/raw', consolePage(sendRaw));

  // The console's header gets a "Dev mailbox" link only where there is one (page() in console.ts is shared by
  // every console page; adding the link here keeps the dev-only page out of production consoles).
  if (box) {
    const NAV_END = '<span class="grow"></span>';
    const LINK = '<a href="/console/dev-mailbox" id="nav-dev-mailbox">Dev mailbox</a>';
    app.addHook('onSend', async (req, reply, payload) => {
      if (typeof payload !== 'string' || !req.url.startsWith('/console')) return payload;
      if (!String(reply.getHeader('content-type') ?? '').startsWith('text/html')) return payload;
      return payload.replace(NAV_END, `${LINK}${NAV_END}`);
    });
  }
}
