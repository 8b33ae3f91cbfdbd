import { globSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';

/*
 * The files under deploy/ that operators load into Grafana and Prometheus, read as those tools
 * would: every rule file and rule test file by glob (so files added later are checked too), and
 * every PromQL expression they and the dashboards hold, with where it is.
 */

export const ROOT = new URL('../..', import.meta.url).pathname;

/** Paths relative to the repository root, sorted. */
export const ruleFiles = (): string[] => globSync('deploy/prometheus/*.yml', { cwd: ROOT }).sort();
export const ruleTestFiles = (): string[] => globSync('deploy/prometheus/tests/*.yml', { cwd: ROOT }).sort();
export const dashboardFiles = (): string[] => globSync('deploy/grafana/*.json', { cwd: ROOT }).sort();

export interface Expression {
  /** File and panel, variable or rule, for the failure message. */
  where: string;
  expr: string;
}

export interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export function readYaml<T>(path: string): T {
  return parse(readFileSync(join(ROOT, path), 'utf8')) as T;
}

export function rulesOf(path: string): Rule[] {
  const file = readYaml<{ groups: Array<{ name: string; rules: Rule[] }> }>(path);
  return file.groups.flatMap((g) => g.rules);
}

export function ruleExpressions(path: string): Expression[] {
  return rulesOf(path).map((rule) => ({ where: `${path}: ${rule.alert ?? rule.record}`, expr: rule.expr }));
}

interface Panel {
  title?: string;
  type: string;
  targets?: Array<{ expr?: string }>;
  panels?: Panel[];
}

interface Variable {
  name: string;
  type: string;
  query?: string | { query?: string };
  definition?: string;
}

export interface Dashboard {
  schemaVersion: number;
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: Variable[] };
}

export function readDashboard(path: string): Dashboard {
  return JSON.parse(readFileSync(join(ROOT, path), 'utf8')) as Dashboard;
}

/** Every panel, those inside rows (a collapsed row holds its panels) included. */
export function allPanels(dashboard: Dashboard): Panel[] {
  return dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

/** The panels' queries and the query variables' queries. */
export function dashboardExpressions(path: string): Expression[] {
  const dashboard = readDashboard(path);
  const panels = allPanels(dashboard).flatMap((p) => (p.targets ?? []).filter((t) => t.expr).map((t) => ({ where: `${path}: panel "${p.title}"`, expr: t.expr! })));
  const variables = dashboard.templating.list
    .filter((v) => v.type === 'query')
    .map((v) => ({ where: `${path}: variable ${v.name}`, expr: typeof v.query === 'string' ? v.query : (v.query?.query ?? v.definition ?? '') }));
  return [...panels, ...variables];
}

/** The Rookery metric names an expression reads (series names as written, _bucket and all). */
export function metricNames(expr: string): string[] {
  return [...new Set(expr.match(/\brookery_[a-z0-9_]+/g) ?? [])];
}

/**
 * A dashboard expression as plain PromQL, for promtool to parse: Grafana's variables replaced by
 * values of their kind (a label_values() query is Grafana's, not PromQL: its selector is kept).
 */
export function asPromql(expr: string): string {
  const plain = expr.replaceAll('$__rate_interval', '5m').replaceAll('$__interval', '1m').replace(/\$\{?[A-Za-z_]+\}?/g, '.*');
  const labelValues = /^label_values\((.*),\s*[a-z_]+\)$/.exec(plain);
  return labelValues ? labelValues[1]! : plain;
}
