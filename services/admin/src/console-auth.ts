import type { TrackingEvent } from '@mailgate/contracts';

/**
 * The sender-authentication panel of the console's message view (issue 18): the result words ingress recorded on
 * the `received` event (`details.auth`, written by services/ingress-smtp/src/sender-auth-phase.ts `authSummary`)
 * and what the policy did with them. Pure: events in, HTML out (escaped with the console's `esc`), so the tracking
 * store is not involved.
 */

const METHODS = [
  ['spf', 'SPF'],
  ['dkim', 'DKIM'],
  ['dmarc', 'DMARC'],
  ['arc', 'ARC'],
] as const;

/** Result words the CSS colours (RFC 8601 §2.7); anything else is shown uncoloured. */
const KNOWN = new Set(['pass', 'fail', 'softfail', 'neutral', 'none', 'temperror', 'permerror', 'policy']);

type Esc = (v: unknown) => string;

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

function word(w: string, esc: Esc): string {
  const cls = KNOWN.has(w) ? ` class="auth-${w}"` : '';
  return `<span${cls}>${esc(w)}</span>`;
}

/** `<section id="sender-auth">…` for the message view, or '' when the message has no `received` event. */
export function senderAuthPanel(events: readonly TrackingEvent[], esc: Esc): string {
  const received = events.find((e) => e.type === 'received' && e.service === 'ingress-smtp');
  if (!received) return '';
  const raw = received.details?.['auth'];
  if (!raw || typeof raw !== 'object') {
    return `<section id="sender-auth"><h3>Sender authentication</h3><p class="muted" id="auth-not-checked">Not checked (sender authentication was off when this message arrived).</p></section>`;
  }
  const a = raw as Record<string, unknown>;
  const dkimDomains = Array.isArray(a['dkimDomains']) ? a['dkimDomains'].map(String) : [];
  const cell = (m: string): string => {
    const v = str(a[m]);
    if (!v) return '<span class="muted">—</span>';
    const words = v
      .split(',')
      .map((w) => word(w.trim(), esc))
      .join(', ');
    const dom =
      m === 'dkim' && dkimDomains.length ? dkimDomains.join(', ') : m === 'dmarc' ? str(a['dmarcDomain']) : undefined;
    return dom ? `${words} <span class="muted">(${esc(dom)})</span>` : words;
  };
  const action = str(a['action']) ?? 'accept';
  const head = METHODS.map(([, label]) => `<th>${label}</th>`).join('');
  const cells = METHODS.map(([m]) => `<td data-method="${m}">${cell(m)}</td>`).join('');
  const notes: string[] = [];
  const reason = str(a['reason']);
  if (reason) notes.push(`<span id="auth-reason">${esc(reason)}</span>`);
  if (a['dryRun'] === true) {
    notes.push(
      `<span id="auth-dry-run">dry run: would have been <b>${esc(a['wouldBe'])}</b>${
        str(a['wouldBeReason']) ? ` (${esc(a['wouldBeReason'])})` : ''
      }</span>`,
    );
  }
  if (Array.isArray(a['failedOpen']) && a['failedOpen'].length) {
    notes.push(`<span id="auth-failed-open">failed open: ${esc(a['failedOpen'].map(String).join(', '))}</span>`);
  }
  return `<section id="sender-auth"><h3>Sender authentication</h3>
<table id="auth-results"><tr>${head}<th>Action</th></tr><tr>${cells}<td data-method="action" class="auth-action-${esc(action)}"><b>${esc(action)}</b></td></tr></table>
${notes.length ? `<p class="muted">${notes.join(' · ')}</p>` : ''}</section>`;
}
