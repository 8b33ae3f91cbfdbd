// Reads vitest's JSON report and prints, as its last line, "N passed, N failed, N skipped".
// A test file that fails before its tests run (import error, failing hook) counts as one failure.
// Exit status: 0 only when the report exists, holds at least one test, and nothing failed.
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

const reportPath = process.argv[2] ?? '.cache/vitest.json';

let report;
try {
  report = JSON.parse(readFileSync(reportPath, 'utf8'));
} catch (err) {
  console.log(`test report unusable: ${reportPath}: ${err.message}`);
  console.log('0 passed, 0 failed, 0 skipped');
  process.exit(1);
}

const files = Array.isArray(report.testResults) ? report.testResults : [];
const failedTests = [];
const failedFiles = [];
for (const file of files) {
  const name = relative(process.cwd(), file.name ?? '?');
  const assertions = Array.isArray(file.assertionResults) ? file.assertionResults : [];
  const failing = assertions.filter((a) => a.status === 'failed');
  for (const a of failing) failedTests.push(`${name} > ${a.fullName ?? a.title}`);
  if (file.status === 'failed' && failing.length === 0) {
    failedFiles.push(`${name}: ${(file.message || 'failed outside any test').split('\n')[0]}`);
  }
}

const passed = report.numPassedTests ?? 0;
const failed = (report.numFailedTests ?? 0) + failedFiles.length;
const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
const total = report.numTotalTests ?? 0;

if (failedTests.length || failedFiles.length) {
  console.log('failures:');
  for (const line of [...failedFiles, ...failedTests]) console.log(`  ${line}`);
}
if (total === 0) console.log(`test report holds no tests: ${reportPath}`);
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(total > 0 && failed === 0 && report.success !== false ? 0 : 1);
