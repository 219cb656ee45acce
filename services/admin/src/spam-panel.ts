import type { TrackingEvent } from '@mailgate/contracts';

/**
 * What the spam-check stage decided for a message, from its tracking events (issue 20): the `stage` event the runner
 * writes carries the stage's details (services/spam-check/src/stage.ts: result, score, scl, symbols, thresholds,
 * dry run). Pure: events in, summary/HTML out, so the tracking store is not involved. The API returns the summary
 * as `spam` on GET /api/v1/messages/:id; the console shows the panel on the message view.
 */

export interface SpamSymbolScore {
  readonly name: string;
  readonly score: number;
}

export interface SpamSummary {
  /** pass | tag | quarantine | reject | skipped | unchecked (rspamd unavailable: held, or passed fail-open). */
  readonly result: string;
  readonly score?: number;
  /** Exchange-style 0–9 (-1: skipped, not checked). */
  readonly scl?: number;
  /** The top symbols, largest contribution first. */
  readonly symbols: readonly SpamSymbolScore[];
  readonly thresholds?: { readonly tag: number; readonly quarantine: number; readonly reject: number };
  /** Dry run: `result` is what was decided, `wouldBe` what would have been done (the message was passed). */
  readonly dryRun?: boolean;
  readonly wouldBe?: string;
  /** Why the check was skipped or not done (allow-listed sender, rspamd unavailable…). */
  readonly reason?: string;
  /** When the stage decided (the latest check: a release with re-check runs it again). */
  readonly at: string;
  /** How many spam-check decisions the message has (re-checks, holds while rspamd was down). */
  readonly checks: number;
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** The latest spam-check decision of a message, or undefined when the stage has not (yet) seen it. */
export function spamSummary(events: readonly TrackingEvent[]): SpamSummary | undefined {
  const checks = events.filter(
    (e) => e.type === 'stage' && e.details?.['stage'] === 'spam-check' && typeof e.details['result'] === 'string',
  );
  const last = [...checks].sort((a, b) => a.at.localeCompare(b.at)).at(-1);
  if (!last) return undefined;
  const d = last.details!;
  const symbols = Array.isArray(d['symbols'])
    ? (d['symbols'] as unknown[]).flatMap((s) => {
        const o = (s ?? {}) as Record<string, unknown>;
        const name = str(o['name']);
        return name ? [{ name, score: num(o['score']) ?? 0 }] : [];
      })
    : [];
  const t = (d['thresholds'] ?? undefined) as Record<string, unknown> | undefined;
  const thresholds =
    t && num(t['tag']) !== undefined && num(t['quarantine']) !== undefined && num(t['reject']) !== undefined
      ? { tag: num(t['tag'])!, quarantine: num(t['quarantine'])!, reject: num(t['reject'])! }
      : undefined;
  const reason = str(d['reason']) ?? str(d['failOpenReason']) ?? str(d['error']);
  return {
    result: d['result'] as string,
    ...(num(d['score']) !== undefined ? { score: num(d['score'])! } : {}),
    ...(num(d['scl']) !== undefined ? { scl: num(d['scl'])! } : {}),
    symbols,
    ...(thresholds ? { thresholds } : {}),
    ...(d['dryRun'] === true ? { dryRun: true, ...(str(d['wouldBe']) ? { wouldBe: str(d['wouldBe'])! } : {}) } : {}),
    ...(reason ? { reason } : {}),
    at: last.at,
    checks: checks.length,
  };
}

/** The console's status colours (its hashed stylesheet has no spam classes; these keep their meaning). */
const CLASS: Record<string, string> = {
  pass: 's-delivered',
  tag: 's-deferred',
  quarantine: 's-quarantined',
  reject: 's-quarantined',
  unchecked: 's-held',
};

type Esc = (v: unknown) => string;

/** `<section id="spam-check">…` for the console's message view, or '' when spam-check has not seen the message. */
export function spamPanel(events: readonly TrackingEvent[], esc: Esc): string {
  const s = spamSummary(events);
  if (!s) return '';
  const score = s.score === undefined ? '—' : s.score.toFixed(1);
  const t = s.thresholds;
  const symbols = s.symbols.length
    ? s.symbols.map((x) => `<code>${esc(x.name)}</code> ${esc(x.score.toFixed(1))}`).join(' · ')
    : '<span class="muted">—</span>';
  const notes: string[] = [];
  if (s.dryRun)
    notes.push(`<span id="spam-dry-run">dry run: would have been <b>${esc(s.wouldBe ?? s.result)}</b></span>`);
  if (s.reason) notes.push(`<span id="spam-reason">${esc(s.reason)}</span>`);
  if (s.checks > 1) notes.push(`checked ${s.checks} times; the latest at ${esc(s.at)}`);
  return `<section id="spam-check"><h3>Spam check</h3>
<table id="spam-result"><tr><th>Result</th><th>Score</th><th>SCL</th><th>Thresholds (tag / quarantine / reject)</th></tr>
<tr><td data-field="result" class="${CLASS[s.result] ?? ''}"><b>${esc(s.result)}</b></td><td data-field="score">${esc(score)}</td><td data-field="scl">${esc(s.scl ?? '—')}</td><td>${t ? `${esc(t.tag)} / ${esc(t.quarantine)} / ${esc(t.reject)}` : '—'}</td></tr></table>
<p id="spam-symbols"><b>Top symbols</b> ${symbols}</p>${notes.length ? `<p class="muted">${notes.join(' · ')}</p>` : ''}</section>`;
}
