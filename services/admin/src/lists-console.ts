import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { LIST_KINDS, type ListEntry } from '@mailgate/lists';
import { callApiAs } from './console-api.js';
import { esc, html, page } from './console.js';

/** Expiry choices of the add form (seconds; 0 = permanent). An attacker block is usually temporary. */
export const EXPIRY_CHOICES: readonly (readonly [string, number])[] = [
  ['1 hour', 3600],
  ['24 hours', 86_400],
  ['7 days', 7 * 86_400],
  ['30 days', 30 * 86_400],
  ['15 minutes', 900],
  ['never', 0],
];

const KIND_LABELS: Record<string, string> = {
  'ip-block': 'Blocked IPs (554 at connect)',
  'ip-allow': 'Allowed IPs (skip DNSBL)',
  'sender-block': 'Blocked senders',
};

/**
 * /console/lists: the live sender/IP lists. Every read and change goes through /api/v1/lists (in-process, with the
 * signed-in user's own cookie), so validation, the admin-role check and the audit record are the API's, not a copy.
 */
export function registerListsConsole(app: FastifyInstance): void {
  const call = (req: FastifyRequest, method: 'GET' | 'POST' | 'DELETE', url: string, payload?: unknown) =>
    callApiAs(app, req, method, url, payload ? { type: 'application/json', data: JSON.stringify(payload) } : undefined);

  const failed = (reply: FastifyReply, status: number, body: string) => {
    let message = body;
    try {
      message = (JSON.parse(body) as { message?: string }).message ?? body;
    } catch {
      /* not JSON: show as is */
    }
    return html(
      reply,
      page(
        'Action failed',
        `<p class="error" id="error">${esc(message)}</p><a href="/console/lists">Back to the lists</a>`,
      ),
      status,
    );
  };

  app.get('/console/lists', async (req, reply) => {
    const q = req.query as Record<string, string | undefined>;
    const kind = LIST_KINDS.includes(q['kind'] as never) ? q['kind']! : '';
    const search = q['search']?.trim() ?? '';
    const params = new URLSearchParams({ ...(kind ? { kind } : {}), ...(search ? { search } : {}) });
    const res = await call(req, 'GET', `/api/v1/lists${params.size ? `?${params}` : ''}`);
    if (res.statusCode !== 200) return failed(reply, res.statusCode, res.body);
    const entries = (res.json() as { results: ListEntry[] }).results;
    const option = (v: string, label: string, sel: string) =>
      `<option value="${esc(v)}"${v === sel ? ' selected' : ''}>${esc(label)}</option>`;
    const kinds = (sel: string, any: boolean) =>
      (any ? option('', 'all lists', sel) : '') + LIST_KINDS.map((k) => option(k, k, sel)).join('');
    const rows = entries
      .map(
        (
          e,
        ) => `<tr data-kind="${esc(e.kind)}" data-value="${esc(e.value)}"><td>${esc(e.kind)}</td><td><code>${esc(e.value)}</code></td>
<td>${esc(e.reason)}</td><td>${esc(e.createdBy)}</td><td>${esc(e.createdAt)}</td><td>${e.expiresAt ? esc(e.expiresAt) : '<span class="muted">never</span>'}</td>
<td><form class="inline" method="post" action="/console/lists/remove"><input type="hidden" name="kind" value="${esc(e.kind)}"><input type="hidden" name="value" value="${esc(e.value)}"><button>Remove</button></form></td></tr>`,
      )
      .join('');
    const add = `<form id="add-entry" method="post" action="/console/lists/add"><b>Add</b>
<select name="kind">${kinds('ip-block', false)}</select>
<input name="value" placeholder="198.51.100.7, 2001:db8::/48, *@spam.example" size="30" required>
<input name="reason" placeholder="reason (ticket, incident)" size="30">
<label>expires after <select name="ttl">${EXPIRY_CHOICES.map(([l, s]) => option(String(s), l, '3600')).join('')}</select></label>
<button id="add">Add</button></form>`;
    const filter = `<form method="get"><select name="kind">${kinds(kind, true)}</select>
<input name="search" value="${esc(search)}" placeholder="value, reason or creator" size="30"> <button id="filter">Search</button></form>`;
    const legend = LIST_KINDS.map((k) => `<code>${k}</code>: ${esc(KIND_LABELS[k] ?? k)}`).join(' · ');
    return html(
      reply,
      page(
        'Sender and IP lists',
        `${add}<p class="muted">${legend}. Changes reach every ingress replica within seconds; entries seeded in the
config file are not shown.</p>${filter}<br>${
          entries.length
            ? `<table id="lists"><tr><th>List</th><th>Value</th><th>Reason</th><th>By</th><th>Added</th><th>Expires</th><th></th></tr>${rows}</table>`
            : '<p class="muted" id="no-entries">No entries.</p>'
        }`,
      ),
    );
  });

  app.post('/console/lists/add', async (req, reply) => {
    const b = (req.body ?? {}) as Record<string, unknown>;
    const ttl = Number(b['ttl'] ?? 0);
    const res = await call(req, 'POST', '/api/v1/lists', {
      kind: String(b['kind'] ?? ''),
      value: String(b['value'] ?? '').trim(),
      reason: String(b['reason'] ?? ''),
      ...(Number.isFinite(ttl) && ttl > 0 ? { ttlSeconds: ttl } : {}),
    });
    if (res.statusCode !== 201) return failed(reply, res.statusCode, res.body);
    return reply.redirect('/console/lists');
  });

  app.post('/console/lists/remove', async (req, reply) => {
    const b = (req.body ?? {}) as Record<string, unknown>;
    const params = new URLSearchParams({ kind: String(b['kind'] ?? ''), value: String(b['value'] ?? '') });
    const res = await call(req, 'DELETE', `/api/v1/lists?${params}`);
    if (res.statusCode !== 200) return failed(reply, res.statusCode, res.body);
    return reply.redirect('/console/lists');
  });
}
