import { clean } from './text-table.ts';

/** The fields of an RFC 9457 problem document the command shows (src/control-api/problem.ts makes them). */
export interface ProblemDocument {
  status: number;
  code: string;
  detail: string;
  errors?: Array<{ path: string; message: string }>;
}

/** A problem document read from an error answer; null when the body is none (a proxy's page, say). */
export function readProblem(body: unknown): ProblemDocument | null {
  if (typeof body !== 'object' || body === null) return null;
  const { status, code, detail, title, errors } = body as Record<string, unknown>;
  if (typeof status !== 'number' || typeof code !== 'string') return null;
  const list = Array.isArray(errors)
    ? errors.filter((e): e is { path: string; message: string } => typeof e?.path === 'string' && typeof e?.message === 'string')
    : undefined;
  return { status, code, detail: typeof detail === 'string' ? detail : typeof title === 'string' ? title : '', ...(list?.length ? { errors: list } : {}) };
}

/**
 * The problem as one line: `404 NOT_FOUND: No egress IP 192.0.2.9 is configured (ips[].address)`,
 * then each `errors[]` entry the detail does not already spell out (a schema failure's detail
 * lists them all; one added by a route may not).
 */
export function describeProblem(problem: ProblemDocument): string {
  const extra = errorLines(problem).filter((entry) => !problem.detail.includes(entry));
  return headLine(problem, [problem.detail, ...extra].filter(Boolean).join('; '));
}

/** The problem's status, code and detail, then each `errors[]` entry on a line of its own (a configuration's many problems). */
export function problemLines(problem: ProblemDocument): string[] {
  return [headLine(problem, problem.detail), ...errorLines(problem).map(clean)];
}

const headLine = (problem: ProblemDocument, detail: string) => clean(`${problem.status} ${problem.code}${detail ? `: ${detail}` : ''}`);
const errorLines = (problem: ProblemDocument) => (problem.errors ?? []).map((e) => `${e.path}: ${e.message}`);
