import { createHash } from 'node:crypto';

/**
 * The pages of the unsubscribe listener: a confirmation with one button (GET never unsubscribes:
 * mail scanners and link previews fetch every link), and a short result page. Self-contained:
 * no script, no image, no font, no external resource; the only style is inline and allowed by
 * its hash. The form has no action, so it posts to the URL the page was fetched from, whatever
 * path prefix the operator's proxy puts in front.
 */

const STYLE =
  'body{font:16px/1.5 system-ui,sans-serif;margin:0;padding:3rem 1rem;background:#f6f6f6;color:#222}' +
  'main{max-width:28rem;margin:auto;background:#fff;padding:2rem;border-radius:8px}' +
  'h1{font-size:1.4rem;margin-top:0}button{font:inherit;padding:.6rem 1.4rem;border:0;border-radius:6px;background:#222;color:#fff;cursor:pointer}';

/**
 * Security headers of every answer: nothing may load (the inline style aside), frame the page or
 * learn the URL (it carries the token) from a Referer; no cache keeps it.
 */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': `default-src 'none'; style-src 'sha256-${createHash('sha256').update(STYLE).digest('base64')}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`,
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-store',
};

export const HTML_TYPE = 'text/html; charset=utf-8';

/** Text made safe for HTML element content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title: string, body: string): string {
  return (
    '<!doctype html><html lang="en"><head><meta charset="utf-8">' +
    '<meta name="viewport" content="width=device-width,initial-scale=1"><meta name="robots" content="noindex,nofollow">' +
    `<title>${escapeHtml(title)}</title><style>${STYLE}</style></head><body><main><h1>${escapeHtml(title)}</h1>${body}</main></body></html>`
  );
}

/** GET: asks before doing anything; the button sends what a one-click client sends (RFC 8058). */
export function confirmPage(): string {
  return page(
    'Unsubscribe',
    '<p>Stop receiving these emails at this address?</p>' +
      '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click"><button type="submit">Unsubscribe</button></form>',
  );
}

/** The outcome of a request, for a person: a title and one sentence. */
export function resultPage(title: string, text: string): string {
  return page(title, `<p>${escapeHtml(text)}</p>`);
}
