import { z } from 'zod';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses "500ms", "25s", "10m", "1h", "5d" (or a plain number of milliseconds) into milliseconds. */
export function parseDuration(value: string | number): number | null {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : null;
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/.exec(value);
  if (!match) return null;
  return Math.round(Number(match[1]) * UNITS[match[2]!]!);
}

const EXAMPLES = '500ms, 25s, 10m, 1h, 5d';

function durationSchemaWith(minimum: 0 | 'above-zero') {
  return z.union([z.string(), z.number()]).transform((value, ctx) => {
    const ms = parseDuration(value);
    if (ms === null || (minimum === 'above-zero' && ms <= 0)) {
      const what = minimum === 'above-zero' ? 'not a duration above zero' : 'not a duration';
      ctx.addIssue({ code: 'custom', message: `${what} (use e.g. ${EXAMPLES}): ${JSON.stringify(value)}` });
      return z.NEVER;
    }
    return ms;
  });
}

/** A config duration ("25s", "5d", or milliseconds), resolved to milliseconds. */
export const durationSchema = durationSchemaWith(0);
/** The same, where zero makes no sense (windows, periods, idle times). */
export const positiveDurationSchema = durationSchemaWith('above-zero');
