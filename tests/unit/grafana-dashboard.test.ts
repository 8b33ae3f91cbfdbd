import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, allPanels, dashboardExpressions, readDashboard } from '../helpers/deploy-files.ts';

/*
 * deploy/grafana/rookery-dashboard.json as Grafana imports it: one Prometheus datasource chosen
 * by a variable (no datasource of the author's own), the filter variables every query honours,
 * and a layout whose panels do not overlap.
 */

const PATH = 'deploy/grafana/rookery-dashboard.json';
const dashboard = readDashboard(PATH);
const DATASOURCE = { type: 'prometheus', uid: '${DS_PROMETHEUS}' };

interface GridPanel {
  id: number;
  type: string;
  title: string;
  datasource?: unknown;
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: Array<{ datasource?: unknown; expr?: string }>;
}

const panels = allPanels(dashboard) as unknown as GridPanel[];
const graphs = panels.filter((p) => p.type !== 'row');

describe('the Grafana dashboard', () => {
  it('is a current dashboard with a stable uid', () => {
    expect(dashboard.schemaVersion).toBe(39);
    expect(dashboard.uid).toBe('rookery-overview');
  });

  it('reads one Prometheus chosen by the DS_PROMETHEUS variable, in every panel and query', () => {
    const variable = dashboard.templating.list.find((v) => v.name === 'DS_PROMETHEUS');
    expect(variable).toMatchObject({ type: 'datasource', query: 'prometheus' });
    for (const panel of graphs) {
      expect(panel.datasource, panel.title).toEqual(DATASOURCE);
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      for (const target of panel.targets!) expect(target.datasource, panel.title).toEqual(DATASOURCE);
    }
    // No datasource of the machine it was made on.
    const uids = [...readFileSync(join(ROOT, PATH), 'utf8').matchAll(/"uid": "([^"]*)"/g)].map((m) => m[1]);
    expect(new Set(uids)).toEqual(new Set(['${DS_PROMETHEUS}', '-- Grafana --', 'rookery-overview']));
  });

  it('filters by instance, pool, egress IP and provider, with the label names the daemon exports', () => {
    const variables = Object.fromEntries(dashboard.templating.list.map((v) => [v.name, v.definition]));
    expect(variables).toMatchObject({
      instance: expect.stringContaining(', instance)'),
      pool: expect.stringContaining('rookery_ip_info'),
      ip: expect.stringContaining(', egress_ip)'),
      provider: expect.stringContaining(', provider)'),
    });
    const queries = dashboardExpressions(PATH).filter((e) => e.where.includes('panel'));
    expect(queries.filter((q) => !q.expr.includes('instance=~"$instance"')).map((q) => q.where)).toEqual([]);
    // Per-IP series follow the egress IP filter; those with a provider, the provider filter too.
    const perIp = queries.filter((q) => /rookery_(ip_|outbound_connections|paths_down)/.test(q.expr));
    expect(perIp.filter((q) => !q.expr.includes('egress_ip=~"$ip"')).map((q) => q.where)).toEqual([]);
    const perProvider = queries.filter((q) => /rookery_ip_(attempts|reputation|weight|warmup_usage)/.test(q.expr));
    expect(perProvider.filter((q) => !q.expr.includes('provider=~"$provider"') || !q.expr.includes('pool=~"$pool"')).map((q) => q.where)).toEqual([]);
  });

  it('has unique panel ids and a layout in 24 columns where no two panels overlap', () => {
    expect(new Set(panels.map((p) => p.id)).size).toBe(panels.length);
    const overlaps: string[] = [];
    panels.forEach((a, i) => {
      expect(a.gridPos.x + a.gridPos.w, a.title).toBeLessThanOrEqual(24);
      for (const b of panels.slice(i + 1)) {
        const apart = a.gridPos.x + a.gridPos.w <= b.gridPos.x || b.gridPos.x + b.gridPos.w <= a.gridPos.x || a.gridPos.y + a.gridPos.h <= b.gridPos.y || b.gridPos.y + b.gridPos.h <= a.gridPos.y;
        if (!apart) overlaps.push(`${a.title} / ${b.title}`);
      }
    });
    expect(overlaps).toEqual([]);
  });
});
