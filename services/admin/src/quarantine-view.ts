import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ApiDeps } from './api.js';
import { ID_RE } from './api.js';
import { esc, html, page } from './console.js';
import { previewMessage, virusDetection, type MessagePreview } from './quarantine-preview.js';
import type { QuarantineEntry } from './quarantine-store.js';

/**
 * Looking inside a quarantined message: the preview (headers, text parts as text, attachment list) and the .eml
 * download, in the API and in the console. Both hand attacker-supplied content to a person, so both need the
 * admin role (a read token sees the list and the reason, not the content) and both are audited like a release.
 */

class ForbiddenError extends Error {
  readonly http = 403;
}

function requireAdmin(req: FastifyRequest, what: string): string {
  const p = req.principal!;
  if (p.role !== 'admin') throw new ForbiddenError(`token '${p.name}' is read-only: ${what} needs the admin role`);
  return p.name;
}

function idOf(req: FastifyRequest): string {
  const { id } = req.params as { id: string };
  if (!ID_RE.test(id)) throw Object.assign(new Error(`malformed id '${id.slice(0, 80)}'`), { http: 400 });
  return id;
}

/** The .eml answer: an attachment download, never displayed inline (nosniff and the CSP come from security.ts). */
function sendEml(reply: FastifyReply, id: string, raw: Buffer) {
  return reply
    .header('content-type', 'message/rfc822')
    .header('content-disposition', `attachment; filename="${id}.eml"`)
    .send(raw);
}

export function registerQuarantineView(app: FastifyInstance, d: Pick<ApiDeps, 'quarantine' | 'audit'>): void {
  const load = async (id: string) => {
    const [entry, msg] = await Promise.all([d.quarantine.get(id), d.quarantine.message(id)]);
    return entry && msg ? { entry, raw: msg.raw } : null;
  };

  app.get('/api/v1/quarantine/:id/preview', async (req, reply) => {
    const who = requireAdmin(req, 'previewing a quarantined message');
    const id = idOf(req);
    const m = await load(id);
    if (!m) return reply.code(404).send({ error: 'not-found', message: `no quarantined message ${id}` });
    await d.audit.record({ who, action: 'quarantine.preview', target: id });
    return { id, reason: m.entry.reason, stage: m.entry.stage, ...previewMessage(m.raw) };
  });

  app.get('/api/v1/quarantine/:id/raw', async (req, reply) => {
    const who = requireAdmin(req, 'downloading a quarantined message');
    const id = idOf(req);
    const m = await load(id);
    if (!m) return reply.code(404).send({ error: 'not-found', message: `no quarantined message ${id}` });
    await d.audit.record({ who, action: 'quarantine.download', target: id });
    return sendEml(reply, id, m.raw);
  });

  /** Console errors are pages, not JSON. */
  const consoleRoute =
    (fn: (req: FastifyRequest, reply: FastifyReply, id: string) => Promise<unknown>) =>
    async (req: FastifyRequest, reply: FastifyReply) => {
      const { id } = req.params as { id: string };
      try {
        if (!ID_RE.test(id)) throw Object.assign(new Error('malformed id'), { http: 400 });
        return await fn(req, reply, id);
      } catch (err) {
        const e = err as Error & { http?: number };
        if (!e.http) throw err;
        return html(
          reply,
          page(
            'Not allowed',
            `<p class="error" id="error">${esc(e.message)}</p><a href="/console/quarantine">Back</a>`,
          ),
          e.http,
        );
      }
    };

  app.get(
    '/console/quarantine/:id',
    consoleRoute(async (req, reply, id) => {
      const who = requireAdmin(req, 'previewing a quarantined message');
      const m = await load(id);
      if (!m) return html(reply, page('Not found', `<p>No quarantined message ${esc(id)}.</p>`), 404);
      await d.audit.record({ who, action: 'quarantine.preview', target: id, details: { via: 'console' } });
      return html(reply, page(`Quarantined message ${id}`, previewBody(m.entry, previewMessage(m.raw))));
    }),
  );

  app.get(
    '/console/quarantine/:id/download',
    consoleRoute(async (req, reply, id) => {
      const who = requireAdmin(req, 'downloading a quarantined message');
      const m = await load(id);
      if (!m) return html(reply, page('Not found', `<p>No quarantined message ${esc(id)}.</p>`), 404);
      await d.audit.record({ who, action: 'quarantine.download', target: id, details: { via: 'console' } });
      return sendEml(reply, id, m.raw);
    }),
  );
}

/** The preview's sections (headers, text parts as text, attachments): every string escaped, nothing rendered. */
export function previewSections(p: MessagePreview): string {
  const headers = p.headers.map((h) => `<tr><th>${esc(h.name)}</th><td>${esc(h.value)}</td></tr>`).join('');
  const texts = p.texts.length
    ? p.texts
        .map(
          (t, i) =>
            `<h3>${esc(t.contentType)} <span class="muted">(part ${esc(t.part)}, shown as text)</span></h3><pre class="mail" id="text-${i + 1}" data-type="${esc(t.contentType)}">${esc(t.text)}</pre>${t.truncated ? '<p class="muted">… cut here (download the message for the rest)</p>' : ''}`,
        )
        .join('')
    : '<p class="muted">No text part.</p>';
  const attachments = p.attachments.length
    ? `<table id="preview-attachments"><tr><th>Name</th><th>Type</th><th>Size (bytes)</th><th>Part</th></tr>${p.attachments
        .map(
          (a) =>
            `<tr><td>${esc(a.name)}</td><td><code>${esc(a.contentType)}</code></td><td>${a.size}</td><td>${esc(a.part)}</td></tr>`,
        )
        .join('')}</table>`
    : '<p class="muted" id="preview-attachments">No attachments.</p>';
  const problems = p.problems.length
    ? `<p class="error" id="preview-problems">${p.problems.map((x) => esc(x)).join('<br>')}</p>`
    : '';
  return `${problems}<h3>Headers</h3><table id="preview-headers">${headers}</table><h3>Text</h3><div id="preview-texts">${texts}</div><h3>Attachments</h3>${attachments}`;
}

function previewBody(e: QuarantineEntry, p: MessagePreview): string {
  const id = esc(e.id);
  const virus = virusDetection(e);
  return `<p class="error">Held by ${esc(e.stage)}: ${esc(e.reason)}${virus ? ` — detection <b id="detection">${esc(virus)}</b>` : ''}</p>
<p><b>From</b> ${esc(e.envelope.mailFrom || '<>')} · <b>To</b> ${esc(e.envelope.rcptTo.join(', '))} · <b>Size</b> ${e.size} bytes · <a href="/console/messages/${id}">Timeline</a></p>
<p><a id="download" href="/console/quarantine/${id}/download">Download .eml</a>
<form class="inline" method="post" action="/console/quarantine/${id}/release"><button id="release" name="recheck" value="false">Release</button> <button id="release-recheck" name="recheck" value="true">Release &amp; re-check</button></form>
<form class="inline" method="post" action="/console/quarantine/${id}/delete"><button id="delete">Delete</button></form></p>
${previewSections(p)}`;
}

/**
 * Releasing a message virus-scan quarantined, as is, delivers the detected content: the console asks first and
 * names the detection. Returns the confirmation page's body while the form does not carry the confirmation, else
 * null (release). A release with re-check runs the scan again, so it needs no confirmation.
 */
export async function virusReleaseConfirmation(
  d: Pick<ApiDeps, 'quarantine'>,
  id: string,
  form: { recheck: boolean; confirm: unknown },
): Promise<string | null> {
  if (form.recheck || !ID_RE.test(id)) return null;
  const entry = await d.quarantine.get(id);
  const detection = entry ? virusDetection(entry) : null;
  if (!detection || form.confirm === detection) return null;
  const eid = esc(id);
  return `<p class="error" id="virus-warning">Message <code>${eid}</code> was quarantined because virus-scan found <b id="detection">${esc(detection)}</b>. Releasing it as is delivers the infected content to ${esc(entry!.envelope.rcptTo.join(', '))}.</p>
<form method="post" action="/console/quarantine/${eid}/release"><input type="hidden" name="recheck" value="false"><input type="hidden" name="confirm" value="${esc(detection)}">
<button id="confirm-release">Release anyway</button></form>
<p><a id="cancel" href="/console/quarantine">Cancel</a> · <a href="/console/quarantine/${eid}">Preview</a></p>`;
}
