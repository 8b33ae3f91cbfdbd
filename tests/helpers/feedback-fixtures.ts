import { readFileSync } from 'node:fs';

/** The secret the VERP addresses of tests/fixtures/feedback/ are tagged with. */
export const FIXTURE_VERP_SECRET = 'feedback-fixture-secret-0123456789abcdef';
/** The queue id those VERP addresses name (recipients 7 to 10). */
export const FIXTURE_MESSAGE_ID = '0190a4c2e6f1a3b5c7d9e1';

/** A message of tests/fixtures/feedback/, as it arrived. */
export function feedbackFixture(name: string): Buffer {
  return readFileSync(new URL(`../fixtures/feedback/${name}`, import.meta.url));
}
