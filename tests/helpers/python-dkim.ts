import { execFile, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Debian's python3-dkim (dkimpy, the library behind `dkimverify`) as an independent DKIM
 * verifier: a signature that only mailauth accepts could share a mistake with mailauth's signer.
 */

const PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('./verify-dkim.py', import.meta.url));

export interface PythonDkimVerdict {
  index: number;
  domain: string | null;
  selector: string | null;
  valid: boolean;
  error: string | null;
  /** What dkimpy logged while verifying (why it failed). */
  log: string[];
}

export interface PythonDkimAvailability {
  available: boolean;
  /** Why not, for the skip message or the CI failure. */
  reason: string;
}

/**
 * Whether python3-dkim and python3-nacl (Ed25519) can be imported. Under CI=true a missing
 * verifier must fail the tests that need it; elsewhere they may skip with this reason.
 */
export function pythonDkimAvailability(): PythonDkimAvailability {
  const probe = spawnSync(PYTHON, ['-c', 'import dkim, nacl'], { encoding: 'utf8', timeout: 30_000 });
  if (probe.error) return { available: false, reason: `${PYTHON} not runnable: ${probe.error.message}` };
  if (probe.status !== 0) {
    return { available: false, reason: `python3-dkim / python3-nacl missing (apt-get install python3-dkim python3-nacl): ${probe.stderr.trim().split('\n').pop()}` };
  }
  return { available: true, reason: '' };
}

/** True when tests must fail rather than skip for a missing verifier. */
export const inCi = process.env.CI === 'true';

/** Verifies every DKIM-Signature of the message; `records` maps DNS names to TXT records. */
export function verifyWithPythonDkim(message: Buffer, records: Record<string, string>): Promise<PythonDkimVerdict[]> {
  return new Promise((resolve, reject) => {
    const child = execFile(PYTHON, [SCRIPT, JSON.stringify(records)], { timeout: 30_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`verify-dkim.py failed: ${err.message}\n${stderr}`));
      try {
        resolve((JSON.parse(stdout) as { results: PythonDkimVerdict[] }).results);
      } catch (parseErr) {
        reject(new Error(`verify-dkim.py printed no JSON: ${(parseErr as Error).message}\n${stdout}\n${stderr}`));
      }
    });
    child.stdin!.end(message);
  });
}
