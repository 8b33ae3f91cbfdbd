/**
 * MTA-STS (RFC 8461) as data: the `_mta-sts` TXT record, the policy file served at
 * https://mta-sts.<domain>/.well-known/mta-sts.txt, and the MX patterns a policy allows. Pure:
 * the lookups and the fetch are done by mta-sts-resolver.ts.
 */

export type StsMode = 'enforce' | 'testing' | 'none';

export interface StsPolicy {
  mode: StsMode;
  /** MX patterns, lower case without a trailing dot: "mx.example.com" or "*.example.com". */
  mx: string[];
  /** Seconds the policy may be cached (RFC 8461 3.2: at most 31557600). */
  maxAge: number;
  /** The policy's lines as served (for TLS-RPT's policy-string). */
  lines: string[];
}

/** RFC 8461 3.2: max_age is at most one year. */
export const STS_MAX_AGE_LIMIT = 31_557_600;
/** RFC 8461 3.3: a policy body larger than 64 KiB is not a policy. */
export const STS_MAX_POLICY_BYTES = 65_536;

/**
 * The policy id of the `_mta-sts` TXT answer (each record a list of strings, as
 * node:dns resolveTxt gives). RFC 8461 3.1: records that do not start with "v=STSv1" are
 * ignored; not exactly one left, or an invalid one, means no policy is available (null).
 */
export function parseStsRecord(records: readonly (readonly string[])[]): { id: string } | null {
  const sts = records.map((strings) => strings.join('')).filter((text) => /^v=STSv1\s*(;|$)/.test(text));
  if (sts.length !== 1) return null;
  const fields = recordFields(sts[0]!);
  const id = fields.get('id');
  return id && /^[A-Za-z0-9]{1,32}$/.test(id) ? { id } : null;
}

/** "k=v; k=v" fields of a TXT record (TLSRPT's too); the first of a repeated key counts. */
export function recordFields(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const part of text.split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const key = part.slice(0, eq).trim();
    if (!fields.has(key)) fields.set(key, part.slice(eq + 1).trim());
  }
  return fields;
}

/**
 * Parses a policy body (RFC 8461 3.2): "key: value" lines split by LF or CRLF; version STSv1,
 * mode, max_age and (unless mode is none) at least one mx are required; unknown keys are ignored.
 * Returns the policy or the reason it is not one.
 */
export function parseStsPolicy(text: string): { ok: true; policy: StsPolicy } | { ok: false; reason: string } {
  const lines = text.split(/\r?\n/).map((line) => line.trim()).filter((line) => line !== '');
  let version: string | undefined;
  let mode: string | undefined;
  let maxAge: string | undefined;
  const mx: string[] = [];
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0) return { ok: false, reason: `not a "key: value" line: ${JSON.stringify(line.slice(0, 80))}` };
    const key = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (key === 'version') version ??= value;
    else if (key === 'mode') mode ??= value;
    else if (key === 'max_age') maxAge ??= value;
    else if (key === 'mx') mx.push(value.toLowerCase().replace(/\.$/, ''));
  }
  if (version !== 'STSv1') return { ok: false, reason: `version is ${version === undefined ? 'missing' : JSON.stringify(version)}, not STSv1` };
  if (mode !== 'enforce' && mode !== 'testing' && mode !== 'none') return { ok: false, reason: `mode is ${mode === undefined ? 'missing' : JSON.stringify(mode)}` };
  if (maxAge === undefined || !/^\d{1,10}$/.test(maxAge) || Number(maxAge) > STS_MAX_AGE_LIMIT) {
    return { ok: false, reason: `max_age is ${maxAge === undefined ? 'missing' : `${JSON.stringify(maxAge)}, not 0 to ${STS_MAX_AGE_LIMIT}`}` };
  }
  const bad = mx.find((pattern) => !isMxPattern(pattern));
  if (bad !== undefined) return { ok: false, reason: `mx ${JSON.stringify(bad)} is not a host name or *.domain` };
  if (mode !== 'none' && mx.length === 0) return { ok: false, reason: 'no mx line' };
  return { ok: true, policy: { mode, mx, maxAge: Number(maxAge), lines } };
}

function isMxPattern(pattern: string): boolean {
  const name = pattern.startsWith('*.') ? pattern.slice(2) : pattern;
  return /^[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*$/.test(name) && name.includes('.');
}

/**
 * Whether an MX host name matches one of the policy's patterns (RFC 8461 4.1): a name matches
 * itself, and "*.example.com" matches exactly one more leftmost label ("mx.example.com", not
 * "a.mx.example.com" nor "example.com"). Case and a trailing dot do not matter.
 */
export function mxMatches(patterns: readonly string[], host: string): boolean {
  const name = host.toLowerCase().replace(/\.$/, '');
  return patterns.some((pattern) => {
    if (!pattern.startsWith('*.')) return pattern === name;
    const dot = name.indexOf('.');
    return dot > 0 && name.slice(dot + 1) === pattern.slice(2);
  });
}
