import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ResolvedToken } from './config.js';
import { callApiAs } from './console-api.js';
import { esc, html, page } from './console.js';

/**
 * The console's spam-learning actions (issue 20): "Release as not spam" on a message spam-check quarantined, and
 * "Mark as spam" on a tracked message. Each button leads to a confirmation page (the console runs no script, so no
 * confirm() dialog: CSP allows none); the confirmation posts here, and the work is done by the spam-learning API
 * (/api/v1/quarantine/:id/not-spam, /api/v1/messages/:id/mark-spam) called in-process with the signed-in user's own
 * cookie, so the admin-role check, the rspamd call, the release and the audit records are the API's, not a copy.
 */

/** Only admin tokens may train (the auth hook refuses their POSTs anyway; read-only users are not offered it). */
export const canTrain = (principal: ResolvedToken | undefined, learning: boolean | undefined): boolean =>
  Boolean(learning) && principal?.role === 'admin';

/** The quarantine list's extra button for a row (empty unless spam-check held it and the user may train). */
export function notSpamRowButton(
  e: { id: string; stage: string },
  principal: ResolvedToken | undefined,
  learning: boolean | undefined,
): string {
  if (e.stage !== 'spam-check' || !canTrain(principal, learning)) return '';
  return `<form class="inline" method="get" action="/console/quarantine/${esc(e.id)}/not-spam"><button class="not-spam">Release as not spam</button></form>`;
}

/** The message view's learning buttons: not spam (held by spam-check) and mark as spam. */
export function spamMessageActions(
  id: string,
  held: { stage: string } | null,
  principal: ResolvedToken | undefined,
  learning: boolean | undefined,
): string {
  if (!canTrain(principal, learning)) return '';
  const notSpam =
    held?.stage === 'spam-check'
      ? `<form class="inline" method="get" action="/console/quarantine/${esc(id)}/not-spam"><button id="not-spam">Release as not spam</button></form> `
      : '';
  // A <div>, not a <p>: a form may not sit inside a paragraph.
  return `<div id="spam-actions">${notSpam}<form class="inline" method="get" action="/console/messages/${esc(id)}/mark-spam"><button id="mark-spam">Mark as spam</button></form></div><br>`;
}

const ID_RE = /^[0-9A-Za-z._-]{1,64}$/;

export function registerSpamConsole(app: FastifyInstance, opts: { learning: boolean }): void {
  const call = (req: FastifyRequest, method: 'GET' | 'POST', url: string, body?: { type: string; data: Buffer }) =>
    callApiAs(app, req, method, url, body);

  const failed = (reply: FastifyReply, status: number, message: string, back: string) =>
    html(
      reply,
      page('Action failed', `<p class="error" id="error">${esc(message)}</p><a href="${esc(back)}">Back</a>`),
      status,
    );
  const apiError = (body: string): string => {
    try {
      return (JSON.parse(body) as { message?: string }).message ?? body;
    } catch {
      return body;
    }
  };
  /** The id parameter, or an error page (ids end up in URLs of the in-process calls). */
  const idOf = (req: FastifyRequest): string | undefined => {
    const { id } = req.params as { id: string };
    return ID_RE.test(id) ? id : undefined;
  };
  /** Why this user cannot train here, or null. */
  const refusal = (req: FastifyRequest): string | null =>
    !opts.learning
      ? 'Spam learning is not configured (admin.rspamd.controllerUrl).'
      : req.principal?.role !== 'admin'
        ? `Token '${req.principal?.name ?? ''}' is read-only: only administrators can train the spam filter.`
        : null;

  app.get('/console/quarantine/:id/not-spam', async (req, reply) => {
    const id = idOf(req);
    if (!id) return failed(reply, 400, 'malformed id', '/console/quarantine');
    const res = await call(req, 'GET', `/api/v1/quarantine/${id}`);
    if (res.statusCode !== 200) return failed(reply, res.statusCode, apiError(res.body), '/console/quarantine');
    const e = res.json() as { stage: string; reason: string; envelope: { mailFrom: string; rcptTo: string[] } };
    const no = refusal(req);
    const body = `<p>From <b>${esc(e.envelope.mailFrom || '<>')}</b> to <b>${esc(e.envelope.rcptTo.join(', '))}</b>,
held by <b>${esc(e.stage)}</b>: ${esc(e.reason)}</p>${
      e.stage !== 'spam-check'
        ? `<p class="error" id="error">Held by ${esc(e.stage)}, not by spam-check: release it without "not spam".</p>`
        : no
          ? `<p class="error" id="error">${esc(no)}</p>`
          : `<p>rspamd will learn this message as <b>ham</b> (not spam), then it is released to delivery. The training is
recorded in the audit log.</p>
<form method="post" action="/console/quarantine/${esc(id)}/not-spam"><button id="confirm-not-spam">Release as not spam</button>
<a href="/console/quarantine">Cancel</a></form>`
    }`;
    return html(reply, page(`Release ${id} as not spam?`, body));
  });

  app.post('/console/quarantine/:id/not-spam', async (req, reply) => {
    const id = idOf(req);
    if (!id) return failed(reply, 400, 'malformed id', '/console/quarantine');
    const res = await call(req, 'POST', `/api/v1/quarantine/${id}/not-spam`, {
      type: 'application/json',
      data: Buffer.from('{}'),
    });
    if (res.statusCode !== 200) return failed(reply, res.statusCode, apiError(res.body), '/console/quarantine');
    const r = res.json() as { released: { topic: string }; learned: { alreadyLearned: boolean } };
    return html(
      reply,
      page(
        'Released as not spam',
        `<p id="done">Message <a href="/console/messages/${esc(id)}"><code>${esc(id)}</code></a> was released to
<code>${esc(r.released.topic)}</code>; rspamd ${r.learned.alreadyLearned ? 'had already learned it' : 'learned it'} as ham.</p>
<a href="/console/quarantine">Back to the quarantine</a>`,
      ),
    );
  });

  app.get('/console/messages/:id/mark-spam', async (req, reply) => {
    const id = idOf(req);
    if (!id) return failed(reply, 400, 'malformed id', '/console/messages');
    const back = `/console/messages/${id}`;
    const tracked = await call(req, 'GET', `/api/v1/messages/${id}`);
    if (tracked.statusCode !== 200) return failed(reply, tracked.statusCode, apiError(tracked.body), back);
    const s = (tracked.json() as { summary: { mailFrom: string; subject: string } }).summary;
    const held = (await call(req, 'GET', `/api/v1/quarantine/${id}`)).statusCode === 200;
    const no = refusal(req);
    const source = held
      ? '<p>The message is held in quarantine: rspamd learns it from there (it stays in quarantine).</p>'
      : `<p>mailgate keeps no copy of delivered mail: paste the message source (headers and body, as saved from the
mail client or the .eml the user reported).</p><textarea name="eml" rows="14" cols="100" required></textarea><br>`;
    const body = `<p>From <b>${esc(s.mailFrom || '<>')}</b>, subject <b>${esc(s.subject || '—')}</b></p>${
      no
        ? `<p class="error" id="error">${esc(no)}</p>`
        : `<form method="post" action="/console/messages/${esc(id)}/mark-spam">${source}<p>rspamd will learn this
message as <b>spam</b>; the training is recorded in the audit log.</p><button id="confirm-mark-spam">Mark as spam</button>
<a href="${esc(back)}">Cancel</a></form>`
    }`;
    return html(reply, page(`Mark ${id} as spam?`, body));
  });

  app.post('/console/messages/:id/mark-spam', async (req, reply) => {
    const id = idOf(req);
    if (!id) return failed(reply, 400, 'malformed id', '/console/messages');
    const back = `/console/messages/${id}`;
    const eml = String((req.body as Record<string, unknown> | undefined)?.['eml'] ?? '');
    const res = await call(
      req,
      'POST',
      `/api/v1/messages/${id}/mark-spam`,
      eml.trim() ? { type: 'message/rfc822', data: Buffer.from(eml, 'utf8') } : undefined,
    );
    if (res.statusCode !== 200) return failed(reply, res.statusCode, apiError(res.body), back);
    const r = res.json() as { learned: { source: string; alreadyLearned: boolean } };
    return html(
      reply,
      page(
        'Marked as spam',
        `<p id="done">rspamd ${r.learned.alreadyLearned ? 'had already learned' : 'learned'} message
<a href="${esc(back)}"><code>${esc(id)}</code></a> as spam (from the ${r.learned.source === 'quarantine' ? 'quarantined copy' : 'pasted source'}).</p>
<a href="${esc(back)}">Back to the message</a>`,
      ),
    );
  });
}
