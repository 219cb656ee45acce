// One file (~345 lines): the console's shell (page frame, style, escaping, sign-in) and its core pages (messages,
// quarantine, deferred queue, audit, stats), each a short route; lists, spam and the dev mailbox have modules of
// their own.
import { parse as parseQuery } from 'node:querystring';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ApiDeps } from './api.js';
import { COOKIE, findToken } from './auth.js';
import type { ResolvedToken } from './config.js';
import { senderAuthPanel } from './console-auth.js';
import type { AuthThrottle } from './throttle.js';
import { deleteFromQuarantine, releaseFromQuarantine } from './release.js';
import { virusReleaseConfirmation } from './quarantine-view.js';
import { ID_RE } from './api.js';
import { AUTH_CLASSES } from './tracking-store.js';
import { notSpamRowButton, spamMessageActions } from './spam-console.js';
import { spamPanel } from './spam-panel.js';

/** HTML-escape everything that came from a message or a client: subjects and addresses are attacker-controlled. */
export function esc(v: unknown): string {
  return String(v ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The console's one inline stylesheet; security.ts allows exactly this text by its hash (CSP). */
export const CONSOLE_STYLE = `body{font:14px system-ui,sans-serif;margin:0;color:#1d2330}header{background:#1d2330;color:#fff;padding:10px 20px;display:flex;gap:20px;align-items:center}
header a{color:#cfe0ff;text-decoration:none}header b{font-size:16px}main{padding:16px 20px}table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #e3e6ec;padding:6px 8px;text-align:left;vertical-align:top}th{background:#f4f6f9}
.s-delivered{color:#127a3a}.s-quarantined,.s-bounced,.s-dead-lettered,.s-refused,.a-fail{color:#b3261e}.s-deferred,.s-held{color:#9a6700}
form.inline{display:inline}button{cursor:pointer}input,select{padding:4px}code{font-size:12px}.muted{color:#667}.error{color:#b3261e;background:#fdecea;padding:8px 12px;border-radius:4px}
.auth-pass{color:#127a3a}.auth-fail,.auth-permerror,.auth-action-reject,.auth-action-quarantine{color:#b3261e}.auth-softfail,.auth-temperror,.auth-policy,.auth-action-tag,.auth-action-tempfail{color:#9a6700}#sender-auth table{width:auto;margin-bottom:12px}.grow{flex:1}
pre.mail{white-space:pre-wrap;word-break:break-word;background:#f4f6f9;padding:8px 12px;max-height:60vh;overflow:auto}`;

export function page(title: string, body: string, opts: { refresh?: number } = {}): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(title)} · mailgate</title>
${opts.refresh ? `<meta http-equiv="refresh" content="${opts.refresh}">` : ''}<style>${CONSOLE_STYLE}</style></head>
<body><header><b>mailgate</b><a href="/console/dashboard">Dashboard</a><a href="/console/messages">Messages</a><a href="/console/quarantine">Quarantine</a>
<a href="/console/deferred">Deferred</a><a href="/console/lists">Lists</a><a href="/console/stats">Pipeline</a><a href="/console/audit">Audit</a>
<span class="grow"></span><form class="inline" method="post" action="/console/logout"><button id="logout">Sign out</button></form></header><main><h2>${esc(title)}</h2>${body}</main></body></html>`;
}

export function html(reply: FastifyReply, s: string, code = 200) {
  return reply.code(code).header('content-type', 'text/html; charset=utf-8').header('x-frame-options', 'DENY').send(s);
}

/**
 * The console: server-rendered pages over the same stores as the API (no client bundle to build or ship).
 * Login sets an HttpOnly, SameSite=Strict cookie holding the token, so forms cannot be posted cross-site.
 */
export function registerConsole(
  app: FastifyInstance,
  d: ApiDeps,
  tokens: readonly ResolvedToken[],
  throttle?: AuthThrottle,
): void {
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    done(null, parseQuery(body as string));
  });

  app.get('/console', async (_req, reply) => reply.redirect('/console/messages'));

  app.get('/console/login', async (_req, reply) =>
    html(
      reply,
      page(
        'Sign in',
        `<form method="post" action="/console/login"><label>API token <input type="password" name="token" autofocus></label> <button>Sign in</button></form>`,
      ),
    ),
  );
  app.post('/console/login', async (req, reply) => {
    const token = String((req.body as Record<string, unknown>)?.['token'] ?? '');
    const ip = throttle?.clientIp(req) ?? '';
    const d = throttle ? await throttle.check(ip) : ({ ok: true } as const);
    if (!d.ok) {
      return html(
        reply.header('retry-after', String(d.retryAfter)),
        page('Sign in', `<p class="error">${esc(d.message)}.</p>`),
        d.status,
      );
    }
    if (!findToken(tokens, token)) {
      await throttle?.failed(ip, '/console/login');
      return html(reply, page('Sign in', '<p>Invalid token.</p><a href="/console/login">Try again</a>'), 401);
    }
    return reply
      .header('set-cookie', `${COOKIE}=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/console`)
      .redirect('/console/messages');
  });
  app.post('/console/logout', async (_req, reply) =>
    reply
      .header('set-cookie', `${COOKIE}=; HttpOnly; SameSite=Strict; Path=/console; Max-Age=0`)
      .redirect('/console/login'),
  );

  /** Run a console action; a failure (not found, conflict, Kafka down) is shown as a page, not as JSON. */
  const act = async (reply: FastifyReply, back: string, id: string, fn: () => Promise<unknown>) => {
    try {
      if (!ID_RE.test(id)) throw Object.assign(new Error('malformed id'), { http: 400 });
      await fn();
      return reply.redirect(back);
    } catch (err) {
      const e = err as Error & { http?: number };
      const code = e.http && e.http < 600 ? e.http : 500;
      return html(
        reply,
        page('Action failed', `<p class="error" id="error">${esc(e.message)}</p><a href="${esc(back)}">Back</a>`),
        code,
      );
    }
  };
  const by = (req: { principal?: ResolvedToken }) => ({
    by: req.principal!.name,
    host: d.host,
    ...(d.tracer ? { tracer: d.tracer } : {}),
  });

  app.get('/console/messages', async (req, reply) => {
    const q = req.query as Record<string, string | undefined>;
    const FIELDS = { rcpt: 'recipient', from: 'sender', ip: 'client IP', messageId: 'Message-ID', subject: 'subject' };
    const field = (Object.keys(FIELDS) as (keyof typeof FIELDS)[]).find((f) => f === q['field']) ?? 'rcpt';
    const value = q['q']?.trim() || undefined;
    const refusedOnly = q['refused'] === '1';
    const auth = AUTH_CLASSES.find((a) => a === q['auth']);
    let found: Awaited<ReturnType<typeof d.tracking.page>>;
    try {
      found = await d.tracking.page(
        {
          [field]: value,
          ...(refusedOnly ? { status: 'refused' as const } : {}),
          ...(auth ? { auth } : {}),
          limit: 100,
          cursor: q['cursor'] || undefined,
        },
        d.maxResults,
      );
    } catch (err) {
      return html(reply, page('Messages', `<p class="error">${esc((err as Error).message)}</p>`), 400);
    }
    const results = found.results;
    const next = found.nextCursor
      ? `<p><a id="next-page" href="/console/messages?${esc(
          new URLSearchParams({
            field,
            q: value ?? '',
            ...(refusedOnly ? { refused: '1' } : {}),
            ...(auth ? { auth } : {}),
            cursor: found.nextCursor,
          }).toString(),
        )}">Next page →</a></p>`
      : '';
    const rows = results
      .map(
        (
          m,
        ) => `<tr><td><a href="/console/messages/${esc(m.id)}"><code>${esc(m.id)}</code></a></td><td>${esc(m.firstSeen)}</td>
<td>${esc(m.mailFrom || '<>')}</td><td>${esc(m.rcptTo.join(', '))}</td><td>${esc(m.subject)}</td><td>${esc(m.clientIp)}</td><td class="s-${esc(m.status)}">${esc(m.status)}</td><td class="a-${esc(m.auth ?? '')}">${esc(m.auth ?? '')}</td></tr>`,
      )
      .join('');
    const form = `<form method="get"><select name="field">${Object.entries(FIELDS)
      .map(([f, label]) => `<option value="${f}"${f === field ? ' selected' : ''}>${label}</option>`)
      .join(
        '',
      )}</select> <input name="q" value="${esc(value ?? '')}" size="40"> <label><input type="checkbox" name="refused" value="1"${refusedOnly ? ' checked' : ''}> refused during SMTP only</label> <label>sender auth <select name="auth"><option value="">any</option>${AUTH_CLASSES.map(
      (a) => `<option value="${a}"${a === auth ? ' selected' : ''}>${a}</option>`,
    ).join('')}</select></label> <button>Search</button></form><br>`;
    return html(
      reply,
      page(
        'Messages',
        `${form}<table id="messages"><tr><th>Id</th><th>Received</th><th>From</th><th>To</th><th>Subject</th><th>Client</th><th>Status</th><th>Auth</th></tr>${rows}</table>${next}`,
      ),
    );
  });

  app.get('/console/messages/:id', async (req, reply) => {
    const { id } = req.params as { id: string };
    const m = await d.tracking.get(id);
    if (!m) return html(reply, page('Not found', `<p>No message ${esc(id)}.</p>`), 404);
    const s = m.summary;
    const trace = s.traceId
      ? d.traceUiUrl
        ? `<a id="trace-link" href="${esc(d.traceUiUrl.replace(/\/$/, ''))}/trace/${esc(s.traceId)}">${esc(s.traceId)}</a>`
        : `<code id="trace-id">${esc(s.traceId)}</code>`
      : '—';
    const rows = m.events
      .map((e) => {
        const det = e.details ? JSON.stringify(e.details) : '';
        return `<tr><td>${esc(e.at)}</td><td>${esc(e.service)}</td><td>${esc(e.host)}</td><td class="s-${esc(e.type)}"><b>${esc(e.type)}</b></td><td><code>${esc(det.length > 600 ? det.slice(0, 600) + '…' : det)}</code></td></tr>`;
      })
      .join('');
    const q = await d.quarantine.get(id);
    const actions = q
      ? `<p class="error">In quarantine (${esc(q.stage)}): ${esc(q.reason)}</p><form class="inline" method="post" action="/console/quarantine/${esc(id)}/release">
<button id="release" name="recheck" value="false">Release</button> <button id="release-recheck" name="recheck" value="true">Release &amp; re-check</button></form>
<form class="inline" method="post" action="/console/quarantine/${esc(id)}/delete"><button id="delete">Delete</button></form> <a id="preview" href="/console/quarantine/${esc(id)}">Preview</a>`
      : '';
    const spamActions = spamMessageActions(id, q, req.principal, d.spamLearning);
    const recipients = s.recipients
      .map(
        (r) =>
          `<tr data-rcpt="${esc(r.rcpt)}"><td>${esc(r.rcpt)}</td><td class="s-${esc(r.status)}">${esc(r.status)}</td><td>${esc(r.at)}</td><td><code>${esc(r.reply ?? '')}</code>${r.remoteHost ? ` <span class="muted">(${esc(r.remoteHost)})</span>` : ''}${r.nextAttemptAt ? ` <span class="muted">next attempt ${esc(r.nextAttemptAt)}</span>` : ''}</td></tr>`,
      )
      .join('');
    const body = `${actions}${spamActions}<p><b>Subject</b> ${esc(s.subject || '—')} · <b>Message-ID</b> <code>${esc(s.messageIdHeader || '—')}</code></p>
<p><b>From</b> ${esc(s.mailFrom || '<>')} · <b>Client</b> ${esc(s.clientIp)}
 · <b>Status</b> <span class="s-${esc(s.status)}">${esc(s.status)}</span> · <b>Trace</b> ${trace}</p>
${senderAuthPanel(m.events, esc)}
${spamPanel(m.events, esc)}
<table id="recipients"><tr><th>Recipient</th><th>Status</th><th>Since</th><th>Last reply</th></tr>${recipients}</table><br>
<table id="timeline"><tr><th>Time</th><th>Service</th><th>Instance</th><th>Event</th><th>Details</th></tr>${rows}</table>`;
    return html(reply, page(`Message ${id}`, body));
  });

  app.get('/console/quarantine', async (req, reply) => {
    const list = await d.quarantine.list(200);
    const rows = list
      .map(
        (
          e,
        ) => `<tr data-id="${esc(e.id)}"><td><a href="/console/messages/${esc(e.id)}"><code>${esc(e.id)}</code></a></td><td>${esc(e.at)}</td>
<td>${esc(e.envelope.mailFrom || '<>')}</td><td>${esc(e.envelope.rcptTo.join(', '))}</td><td>${esc(e.stage)}</td><td>${esc(e.reason)}</td>
<td><a class="preview" href="/console/quarantine/${esc(e.id)}">Preview</a> <form class="inline" method="post" action="/console/quarantine/${esc(e.id)}/release"><button name="recheck" value="false">Release</button>
<button name="recheck" value="true">Release &amp; re-check</button></form>
<form class="inline" method="post" action="/console/quarantine/${esc(e.id)}/delete"><button>Delete</button></form>
${notSpamRowButton(e, req.principal, d.spamLearning)}</td></tr>`,
      )
      .join('');
    return html(
      reply,
      page(
        'Quarantine',
        list.length
          ? `<table id="quarantine"><tr><th>Id</th><th>Quarantined</th><th>From</th><th>To</th><th>Stage</th><th>Reason</th><th></th></tr>${rows}</table>`
          : '<p class="muted">Nothing in quarantine.</p>',
      ),
    );
  });

  app.post('/console/quarantine/:id/release', async (req, reply) => {
    const { id } = req.params as { id: string };
    const form = (req.body ?? {}) as Record<string, unknown>;
    const recheck = String(form['recheck'] ?? 'false') === 'true';
    const confirm = await virusReleaseConfirmation(d, id, { recheck, confirm: form['confirm'] });
    if (confirm) return html(reply, page('Release an infected message?', confirm));
    return act(reply, '/console/quarantine', id, async () => {
      const r = await releaseFromQuarantine(d.quarantine, d.producer, id, { recheck, ...by(req) });
      await d.audit.record({
        who: req.principal!.name,
        action: recheck ? 'quarantine.release-recheck' : 'quarantine.release',
        target: id,
        details: { topic: r.topic, via: 'console' },
      });
    });
  });
  app.post('/console/quarantine/:id/delete', async (req, reply) => {
    const { id } = req.params as { id: string };
    return act(reply, '/console/quarantine', id, async () => {
      await deleteFromQuarantine(d.quarantine, d.producer, id, by(req));
      await d.audit.record({
        who: req.principal!.name,
        action: 'quarantine.delete',
        target: id,
        details: { via: 'console' },
      });
    });
  });

  app.get('/console/deferred', async (_req, reply) => {
    if (!d.deferred)
      return html(reply, page('Deferred', '<p class="muted">The delivery queue is not available here.</p>'));
    const { total, items } = await d.deferred.list({ limit: 200 });
    const rows = items
      .map(
        (
          e,
        ) => `<tr data-id="${esc(e.id)}"><td><a href="/console/messages/${esc(e.id)}"><code>${esc(e.id)}</code></a></td><td>${esc(e.mailFrom || '<>')}</td>
<td>${e.recipients.map((r) => `${esc(r.rcpt)}<br><span class="muted">${esc(r.lastReply)}</span>`).join('<br>')}</td><td>${e.attempts}</td>
<td>${e.held ? '<b>held</b>' : esc(e.nextAttemptAt ?? '')}</td><td>${esc(e.lastError)}</td>
<td>${['retry', e.held ? 'release' : 'hold'].map((a) => `<form class="inline" method="post" action="/console/deferred/${esc(e.id)}/${a}"><button>${a === 'retry' ? 'Retry now' : a === 'hold' ? 'Hold' : 'Release'}</button></form>`).join(' ')}
<form class="inline" method="post" action="/console/deferred/${esc(e.id)}/delete"><button name="dsn" value="false">Delete</button><button name="dsn" value="true">Delete &amp; bounce</button></form></td></tr>`,
      )
      .join('');
    return html(
      reply,
      page(
        'Deferred',
        `<p>${total} message(s) waiting for another delivery attempt.</p><table id="deferred"><tr><th>Id</th><th>From</th><th>Pending recipients (last reply)</th><th>Attempts</th><th>Next attempt</th><th>Last error</th><th></th></tr>${rows}</table>`,
      ),
    );
  });
  for (const action of ['retry', 'hold', 'release', 'delete'] as const) {
    app.post(`/console/deferred/:id/${action}`, async (req, reply) => {
      const { id } = req.params as { id: string };
      const dsn = String((req.body as Record<string, unknown>)?.['dsn'] ?? 'false') === 'true';
      return act(reply, '/console/deferred', id, async () => {
        const q = d.deferred;
        if (!q) throw Object.assign(new Error('the deferred queue is not available here'), { http: 503 });
        if (action === 'retry') await q.retryNow(id);
        else if (action === 'hold') await q.hold(id);
        else if (action === 'release') await q.release(id);
        else await q.delete(id, { dsn, by: req.principal!.name });
        await d.audit.record({
          who: req.principal!.name,
          action: `deferred.${action}`,
          target: id,
          details: { via: 'console', ...(action === 'delete' ? { dsn } : {}) },
        });
      });
    });
  }

  app.get('/console/audit', async (_req, reply) => {
    const rows = (await d.audit.list(200))
      .map(
        (a) =>
          `<tr><td>${esc(a.at)}</td><td>${esc(a.who)}</td><td>${esc(a.action)}</td><td><code>${esc(a.target)}</code></td><td><code>${esc(a.details ? JSON.stringify(a.details) : '')}</code></td></tr>`,
      )
      .join('');
    return html(
      reply,
      page(
        'Audit log',
        `<table id="audit"><tr><th>Time</th><th>Who</th><th>Action</th><th>Target</th><th>Details</th></tr>${rows}</table>`,
      ),
    );
  });

  app.get('/console/stats', async (_req, reply) => {
    const [stages, quarantined] = await Promise.all([d.stats.sample(), d.quarantine.count()]);
    const rows = stages
      .map((s) => {
        const lagging = s.partitions
          .filter((p) => p.lag > 0)
          .map((p) => `p${p.partition}: ${p.lag}`)
          .join(', ');
        return `<tr><td>${esc(s.stage)}</td><td><code>${esc(s.topic)}</code></td><td>${s.produced}</td><td>${s.committed}</td><td><b>${s.lag}</b></td><td>${s.ratePerSec === null ? '…' : s.ratePerSec.toFixed(1)}</td><td>${s.partitions.length}${lagging ? ` <span class="muted">(${esc(lagging)})</span>` : ''}</td></tr>`;
      })
      .join('');
    return html(
      reply,
      page(
        'Pipeline',
        `<table id="stats"><tr><th>Consumer</th><th>Input topic</th><th>Produced</th><th>Done</th><th>Lag</th><th>msg/s</th><th>Partitions (lagging)</th></tr>${rows}</table>
<p>In quarantine: <b id="quarantine-depth">${quarantined}</b></p><p class="muted">Refreshes every 5 s.</p>`,
        { refresh: 5 },
      ),
    );
  });
}
