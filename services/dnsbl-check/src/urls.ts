import { bodyTexts as walkBodyTexts, DEFAULT_MIME_LIMITS, walkMime } from '@mailgate/mail';
import { normalizeDomain, normalizeIp } from '@mailgate/dnsbl';

/**
 * The hosts of links in a message body (text and HTML parts, transfer-decoded by the @mailgate/mail walk — every
 * reading the attachment policy judges, so a link in a part only a lenient client shows is checked too), in order of
 * appearance, for URI block lists (SURBL / URIBL / Spamhaus DBL style).
 */

const URL_RE = /\bhttps?:\/\/[^\s<>"'`)\]]+/gi;
const WWW_RE = /(?<![\w.@/-])www\.[a-z0-9-]+(?:\.[a-z0-9-]+)+/gi;
const ENTITY_RE = /&(?:#(\d+)|#x([0-9a-f]+)|(amp|colon|sol|period|dot));?/gi;

function decodeEntities(s: string): string {
  return s.replace(ENTITY_RE, (m, dec: string, hex: string, named: string) => {
    if (dec) return String.fromCodePoint(Number(dec));
    if (hex) return String.fromCodePoint(parseInt(hex, 16));
    return (
      ({ amp: '&', colon: ':', sol: '/', period: '.', dot: '.' } as Record<string, string>)[named.toLowerCase()] ?? m
    );
  });
}

function hostOf(url: string): string | null {
  try {
    const u = new URL(url.startsWith('www.') || url.startsWith('WWW.') ? `http://${url}` : url);
    const h = u.hostname.replace(/^\[|\]$/g, '');
    return normalizeIp(h) ?? normalizeDomain(h);
  } catch {
    return null;
  }
}

/** Hosts (domains or IPs) of URLs in `texts`, distinct, at most `max`, minus `skip` domains (suffix match). */
export function urlHosts(texts: readonly string[], max: number, skip: readonly string[] = []): string[] {
  const out = new Set<string>();
  const skipL = skip.map((s) => s.toLowerCase().replace(/^\.|\.$/g, ''));
  for (const raw of texts) {
    const text = decodeEntities(raw);
    for (const re of [URL_RE, WWW_RE]) {
      for (const m of text.matchAll(re)) {
        if (out.size >= max) return [...out];
        const h = hostOf(m[0]);
        if (!h || skipL.some((s) => h === s || h.endsWith(`.${s}`))) continue;
        out.add(h);
      }
    }
  }
  return [...out];
}

/** Text and HTML bodies of a message (every reading). Throws MalformedMimeError on a structure the walk refuses. */
export async function bodyTexts(raw: Buffer): Promise<string[]> {
  return walkBodyTexts(walkMime(raw, DEFAULT_MIME_LIMITS));
}
