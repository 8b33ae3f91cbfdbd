import { maskCredentials } from '../observability/mask-credentials.ts';

/** A dependency check: resolves when the dependency answers, throws with the reason otherwise. */
export type ReadinessCheck = () => Promise<void>;

export interface ReadinessChecks {
  storage: ReadinessCheck;
  redis?: ReadinessCheck;
  [name: string]: ReadinessCheck | undefined;
}

export type CheckResult = { ok: true } | { ok: false; error: string };

export interface ReadinessReport {
  ready: boolean;
  checks: Record<string, CheckResult>;
}

const DEFAULT_CHECK_TIMEOUT_MS = 5_000;
const MAX_ERROR_LENGTH = 300;
const MIN_FREE_FLOOR = 8 << 20;

/**
 * The free space beside the queue below which a node is not ready: room for one and a half
 * messages of the largest size it accepts (the margin Postfix keeps, its queue_minfree rule: a
 * message is written to the WAL, then copied into the database file), and never under 8 MiB. A node
 * this close to full is about to refuse mail, which is when a load balancer should move clients.
 */
export function minFreeBytesFor(maxMessageBytes: number): number {
  return Math.max(MIN_FREE_FLOOR, Math.ceil(maxMessageBytes * 1.5));
}

/** Runs every check at once, each bounded by `timeoutMs` so a hung dependency cannot hang the probe. */
export async function runReadinessChecks(checks: ReadinessChecks, timeoutMs = DEFAULT_CHECK_TIMEOUT_MS): Promise<ReadinessReport> {
  const entries = Object.entries(checks).filter((entry): entry is [string, ReadinessCheck] => entry[1] !== undefined);
  const results = await Promise.all(entries.map(async ([name, check]) => [name, await runCheck(check, timeoutMs)] as const));
  return { ready: results.every(([, result]) => result.ok), checks: Object.fromEntries(results) };
}

async function runCheck(check: ReadinessCheck, timeoutMs: number): Promise<CheckResult> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs}ms`)), timeoutMs);
  });
  try {
    await Promise.race([check(), timeout]);
    return { ok: true };
  } catch (err) {
    return { ok: false, error: sanitizeErrorMessage(err) };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The reason shown to whoever can reach the API. Drivers sometimes echo connection strings in
 * their errors, so credentials in any URL are masked; the text is also kept to one short line.
 */
export function sanitizeErrorMessage(err: unknown): string {
  const raw = err instanceof Error ? err.message || err.name : String(err);
  const masked = maskCredentials(raw).replace(/\s+/g, ' ').trim();
  return masked.length > MAX_ERROR_LENGTH ? `${masked.slice(0, MAX_ERROR_LENGTH)}...` : masked || 'check failed';
}
