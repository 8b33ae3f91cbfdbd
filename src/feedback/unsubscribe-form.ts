/**
 * The body of a one-click POST (RFC 8058 3.1): `List-Unsubscribe=One-Click`, sent as
 * application/x-www-form-urlencoded or as multipart/form-data. Nothing else is read from it,
 * and it is tiny, so a body over MAX_FORM_BYTES is refused before it is parsed.
 */

export const MAX_FORM_BYTES = 2048;

export const FORM_TYPES = ['application/x-www-form-urlencoded', 'multipart/form-data'] as const;

const FIELD = 'List-Unsubscribe';
const VALUE = 'One-Click';

/** Whether the body (read as latin1) carries List-Unsubscribe=One-Click in the form its Content-Type names. */
export function isOneClick(contentType: string | undefined, body: string): boolean {
  const [type = '', ...params] = (contentType ?? '').split(';').map((part) => part.trim());
  switch (type.toLowerCase()) {
    case 'application/x-www-form-urlencoded':
      return new URLSearchParams(body).getAll(FIELD).includes(VALUE);
    case 'multipart/form-data': {
      const boundary = params.map((p) => /^boundary=(?:"([^"]+)"|(\S+))$/i.exec(p)).find((m) => m !== null);
      return boundary ? multipartValues(body, boundary[1] ?? boundary[2]!).includes(VALUE) : false;
    }
    default:
      return false;
  }
}

/** The values of the List-Unsubscribe parts of a multipart/form-data body (RFC 7578). */
function multipartValues(body: string, boundary: string): string[] {
  const values: string[] = [];
  // The preamble before the first delimiter and the epilogue after the closing one are not parts.
  for (const part of body.split(`--${boundary}`).slice(1)) {
    if (part.startsWith('--')) break;
    const end = part.indexOf('\r\n\r\n');
    if (!part.startsWith('\r\n') || end < 0) continue;
    const headers = part.slice(2, end).split('\r\n');
    const disposition = headers.find((h) => /^content-disposition\s*:/i.test(h)) ?? '';
    if (!/^content-disposition\s*:\s*form-data\s*;(.*;)?\s*name="List-Unsubscribe"\s*(;|$)/i.test(disposition)) continue;
    // The part's content ends with the CRLF that comes before the next delimiter.
    values.push(part.slice(end + 4).replace(/\r\n$/, ''));
  }
  return values;
}
