import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { ROOT, asPromql, dashboardExpressions, dashboardFiles, readYaml, ruleFiles, ruleTestFiles, rulesOf } from '../helpers/deploy-files.ts';
import { promtoolProblem, runPromtool } from '../helpers/promtool.ts';
import { requireCapability } from '../helpers/services.ts';

/*
 * The alerting rules and dashboards under deploy/, as Prometheus and Grafana will read them:
 * promtool checks every rule file and runs every rule test file (all found by glob, so a file
 * added later is checked too), and parses every dashboard query.
 */

// Locally the promtool cases skip without it; under CI=true this throws and the file fails.
const withPromtool = it.skipIf(!requireCapability(promtoolProblem()));

interface RuleTest {
  rule_files: string[];
  tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts?: unknown[] }> }>;
}

/** GitHub's anchor for a Markdown heading. */
function slug(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
}

const alerts = ruleFiles().flatMap((file) => rulesOf(file).filter((r) => r.alert).map((rule) => ({ file, rule })));

describe('deploy/prometheus', () => {
  it('has rule files and rule tests to check', () => {
    expect(ruleFiles()).toContain('deploy/prometheus/rookery-alerts.yml');
    expect(ruleTestFiles().length).toBeGreaterThan(0);
    expect(alerts.length).toBeGreaterThan(0);
  });

  withPromtool('every rule file passes promtool check rules', () => {
    const run = runPromtool(['check', 'rules', ...ruleFiles()], ROOT);
    expect(run.output).not.toMatch(/FAILED/);
    expect(run.status, run.output).toBe(0);
  });

  withPromtool('every rule test file passes promtool test rules', () => {
    const run = runPromtool(['test', 'rules', ...ruleTestFiles()], ROOT);
    expect(run.status, run.output).toBe(0);
  });

  it('tests every rule file, and every alert both firing and not firing', () => {
    const tests = ruleTestFiles().map((path) => ({ path, file: readYaml<RuleTest>(path) }));
    const loaded = new Set(tests.flatMap(({ file }) => file.rule_files.map((f) => join('deploy/prometheus/tests', f).replace(/^deploy\/prometheus\/tests\/\.\.\//, 'deploy/prometheus/'))));
    expect(ruleFiles().filter((f) => !loaded.has(f)), 'rule files no test file loads').toEqual([]);
    const cases = tests.flatMap(({ file }) => file.tests.flatMap((t) => t.alert_rule_test ?? []));
    const untested = [...new Set(alerts.map((a) => a.rule.alert!))].flatMap((name) => {
      const mine = cases.filter((c) => c.alertname === name);
      const missing = [];
      if (!mine.some((c) => (c.exp_alerts ?? []).length > 0)) missing.push(`${name}: no case where it fires`);
      if (!mine.some((c) => (c.exp_alerts ?? []).length === 0)) missing.push(`${name}: no case where it does not fire`);
      return missing;
    });
    expect(untested).toEqual([]);
  });

  it('gives every alert a severity, a summary and a runbook that is a section of the README', () => {
    const anchors = new Set([...readFileSync(join(ROOT, 'README.md'), 'utf8').matchAll(/^#{1,6} (.+)$/gm)].map((m) => slug(m[1]!)));
    const problems = alerts.flatMap(({ file, rule }) => {
      const where = `${file}: ${rule.alert}`;
      const found = [];
      if (!['warning', 'critical'].includes(rule.labels?.severity ?? '')) found.push(`${where}: severity is not warning or critical`);
      if (!rule.annotations?.summary) found.push(`${where}: no summary`);
      const runbook = rule.annotations?.runbook ?? '';
      const anchor = /^README\.md#([a-z0-9_-]+)$/.exec(runbook)?.[1];
      if (!anchor) found.push(`${where}: runbook "${runbook}" is not README.md#<section>`);
      else if (!anchors.has(anchor)) found.push(`${where}: the README has no section #${anchor}`);
      return found;
    });
    expect(problems).toEqual([]);
  });
});

describe('deploy/grafana', () => {
  withPromtool('every dashboard query is PromQL that Prometheus parses', () => {
    const expressions = dashboardFiles().flatMap(dashboardExpressions);
    expect(expressions.length).toBeGreaterThan(0);
    // promtool parses expressions in rule files: each query becomes a recording rule.
    const dir = mkdtempSync(join(tmpdir(), 'rookery-dashboard-'));
    try {
      const file = join(dir, 'queries.yml');
      writeFileSync(file, stringify({ groups: [{ name: 'dashboard', rules: expressions.map((e, i) => ({ record: `dashboard_query_${i}`, expr: asPromql(e.expr) })) }] }));
      const run = runPromtool(['check', 'rules', file], dir);
      const failed = run.status === 0 ? [] : expressions.filter((_, i) => run.output.includes(`dashboard_query_${i}`)).map((e) => `${e.where}: ${e.expr}`);
      expect(run.status, `${run.output}\n${failed.join('\n')}`).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
