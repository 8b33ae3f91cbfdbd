import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../../src/main.ts';
import { dashboardExpressions, dashboardFiles, metricNames, ruleExpressions, ruleFiles, type Expression } from '../helpers/deploy-files.ts';
import { createFixtureResolver } from '../helpers/fixture-resolver.ts';
import { startTestDaemon } from '../helpers/in-process-daemon.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';

/*
 * Every metric name the dashboards and alerting rules under deploy/ read is one a running daemon
 * exports: a renamed metric or a typo in a panel would otherwise show as an empty graph, or an
 * alert that can never fire. A metric with no sample yet is still listed (# TYPE) once registered.
 */

const HISTOGRAM_SERIES = /_(bucket|sum|count)$/;

describe('metric names in deploy/', () => {
  let dir: TempDir;
  let sink: SmtpSink;
  let daemon: Daemon;
  /** Name -> type, from the # TYPE lines of a scrape. */
  let exported: Map<string, string>;

  beforeAll(async () => {
    dir = await createTempDir('rookery-deploy-metrics');
    sink = await startSmtpSink();
    daemon = await startTestDaemon({ dir, sink, resolver: createFixtureResolver(), config: { ips: [{ address: '127.0.0.2' }] } });
    const { host, port } = daemon.apiAddress();
    const text = await (await fetch(`http://${host}:${port}/metrics`)).text();
    exported = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
  });

  afterAll(async () => {
    await daemon?.stop();
    await sink?.close();
    await dir?.remove();
  });

  /** The names an expression reads that the daemon does not export; a histogram's series count as its name. */
  function unknown(expressions: Expression[]): string[] {
    return expressions.flatMap(({ where, expr }) =>
      metricNames(expr)
        .filter((name) => {
          if (exported.has(name)) return false;
          const base = name.replace(HISTOGRAM_SERIES, '');
          return base === name || !['histogram', 'summary'].includes(exported.get(base) ?? '');
        })
        .map((name) => `${where}: ${name}`),
    );
  }

  it('a scrape lists the metrics with their types', () => {
    expect(exported.get('rookery_recipients_final_total')).toBe('counter');
    expect(exported.get('rookery_delivery_latency_seconds')).toBe('histogram');
    // Absent from the names: only its series are.
    expect(exported.has('rookery_delivery_latency_seconds_bucket')).toBe(false);
  });

  it('every dashboard panel and variable reads metrics the daemon exports', () => {
    const expressions = dashboardFiles().flatMap(dashboardExpressions);
    expect(expressions.flatMap((e) => metricNames(e.expr)).length).toBeGreaterThan(0);
    expect(unknown(expressions)).toEqual([]);
  });

  it('every alerting rule reads metrics the daemon exports', () => {
    const expressions = ruleFiles().flatMap(ruleExpressions);
    expect(expressions.length).toBeGreaterThan(0);
    expect(unknown(expressions)).toEqual([]);
  });

  it('finds a name the daemon does not export', () => {
    expect(unknown([{ where: 'here', expr: 'rate(rookery_no_such_total[5m]) + rookery_delivery_latency_seconds_bucket + rookery_recipients_final_total_count' }])).toEqual([
      'here: rookery_no_such_total',
      'here: rookery_recipients_final_total_count',
    ]);
  });
});
