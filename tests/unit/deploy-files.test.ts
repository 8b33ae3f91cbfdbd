import { existsSync, readFileSync } from 'node:fs';
import { matchesGlob } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseConfig } from '../../src/config/load.ts';

/**
 * deploy/: the compose trial of two nodes, its image and its Prometheus and Grafana files. Docker
 * is not run here; what is checked is that the files agree with each other and with Rookery:
 * every name one file gives another (service, port, path, credential) exists there, and the
 * nodes' configuration is one Rookery accepts with the environment compose gives it.
 */

const ROOT = new URL('../../', import.meta.url).pathname;
const read = (path: string) => readFileSync(`${ROOT}${path}`, 'utf8');
const yaml = (path: string) => parse(read(path), { merge: true }) as Record<string, any>;

interface Service {
  image?: string;
  build?: { context: string; dockerfile: string };
  hostname?: string;
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  command?: string[];
  depends_on?: Record<string, unknown> | string[];
}

const compose = yaml('deploy/compose.yaml') as { services: Record<string, Service>; networks: { default: { ipam: { config: Array<{ subnet: string }> } } } };
const services = compose.services;
const nodes = Object.entries(services).filter(([name]) => name.startsWith('rookery-'));

/** The host path of the volume mounted at `target` in `service`, relative to the repository. */
function mountSource(service: Service, target: string): string {
  const volume = service.volumes?.find((v) => v.split(':')[1] === target);
  if (!volume) throw new Error(`nothing is mounted at ${target}`);
  return `deploy/${volume.split(':')[0]!.replace(/^\.\//, '')}`;
}

describe('deploy/compose.yaml', () => {
  it('runs two nodes of the image built from deploy/Dockerfile, each with its own host name', () => {
    expect(nodes.map(([name]) => name)).toEqual(['rookery-1', 'rookery-2']);
    const hostnames = nodes.map(([, node]) => node.hostname);
    expect(new Set(hostnames).size).toBe(2);
    for (const [, node] of nodes) {
      expect(node.build).toEqual({ context: '..', dockerfile: 'deploy/Dockerfile' });
      expect(existsSync(`${ROOT}deploy/Dockerfile`)).toBe(true);
      expect(Object.keys(node.depends_on ?? {})).toEqual(expect.arrayContaining(['postgres', 'redis', 'mailpit']));
    }
  });

  it('publishes every port on the loopback address only', () => {
    const ports = Object.values(services).flatMap((service) => service.ports ?? []);
    expect(ports.length).toBeGreaterThan(0);
    for (const port of ports) expect(port).toMatch(/^127\.0\.0\.1:\d+:\d+$/);
    expect(new Set(ports.map((port) => port.split(':')[1])).size).toBe(ports.length);
  });

  it('gives the nodes the database and Redis that compose runs, with its credentials', () => {
    const pg = services.postgres!.environment!;
    for (const [, node] of nodes) {
      const db = new URL(node.environment!.DATABASE_URL!);
      expect([db.hostname, db.username, db.password, db.pathname]).toEqual(['postgres', pg.POSTGRES_USER, pg.POSTGRES_PASSWORD, `/${pg.POSTGRES_DB}`]);
      expect(new URL(node.environment!.REDIS_URL!).hostname).toBe('redis');
    }
    expect(services.redis).toBeDefined();
  });
});

describe('deploy/rookery/rookery.yaml', () => {
  const node = services['rookery-1']!;
  const path = mountSource(node, '/etc/rookery/rookery.yaml');
  const config = parseConfig(parse(read(path)), path, { DATABASE_URL: node.environment!.DATABASE_URL!, REDIS_URL: node.environment!.REDIS_URL! });

  it('is a valid configuration on the shared PostgreSQL and Redis, leaving the node name to the container', () => {
    expect(config.storage).toMatchObject({ driver: 'postgres', url: node.environment!.DATABASE_URL });
    expect(config.redis?.url).toBe(node.environment!.REDIS_URL);
    expect(parse(read(path))).not.toHaveProperty('hostname');
  });

  it('delivers to the sink container, trusts the compose network, and listens where compose and Prometheus look', () => {
    const [host, port] = config.delivery.routes['*']!.split(':');
    expect(services[host!]).toBeDefined();
    expect(port).toBe('1025');
    expect(config.smtp.trustedNetworks).toContain(compose.networks.default.ipam.config[0]!.subnet);
    const smtpPort = config.smtp.listeners[0]!.port;
    const apiPort = config.api.listen.port;
    for (const [, n] of nodes) expect(n.ports!.map((p) => Number(p.split(':')[2]))).toEqual([smtpPort, apiPort]);
    expect(read('deploy/Dockerfile')).toContain(`http://127.0.0.1:${apiPort}/readyz`);
    expect(read('deploy/Dockerfile')).toContain(`EXPOSE ${smtpPort} ${apiPort}`);
  });
});

describe('Prometheus and Grafana', () => {
  const prometheus = services.prometheus!;
  const configFlag = prometheus.command!.find((arg) => arg.startsWith('--config.file='))!.slice('--config.file='.length);
  const rulesDir = '/etc/prometheus/rookery';

  it('scrapes both nodes at their control API and loads the rule files mounted beside its configuration', () => {
    expect(configFlag).toBe(`${rulesDir}/prometheus.yaml`);
    const source = mountSource(prometheus, rulesDir);
    const config = yaml(`${source}/prometheus.yaml`);
    expect(config.rule_files).toEqual([`${rulesDir}/*.yml`]);
    // The scrape configuration is no rule file: the glob must not take it for one.
    expect(matchesGlob(configFlag, config.rule_files[0])).toBe(false);
    expect(matchesGlob(`${rulesDir}/rookery-alerts.yml`, config.rule_files[0])).toBe(true);
    const targets = config.scrape_configs.flatMap((job: { static_configs: Array<{ targets: string[] }> }) => job.static_configs.flatMap((s) => s.targets));
    expect(targets).toEqual(nodes.map(([name]) => `${name}:8025`));
  });

  it('gives Grafana the Prometheus container as its default data source and the dashboards of deploy/grafana', () => {
    const grafana = services.grafana!;
    const provisioning = mountSource(grafana, '/etc/grafana/provisioning');
    const datasource = yaml(`${provisioning}/datasources/prometheus.yaml`).datasources[0];
    expect(datasource).toMatchObject({ type: 'prometheus', url: 'http://prometheus:9090', isDefault: true });
    const provider = yaml(`${provisioning}/dashboards/rookery.yaml`).providers[0];
    expect(mountSource(grafana, provider.options.path)).toBe('deploy/grafana');
  });
});

describe('deploy/Dockerfile', () => {
  it('builds on Node 24 from the files its ignore list lets into the context', () => {
    const dockerfile = read('deploy/Dockerfile');
    expect(dockerfile).toMatch(/^FROM node:24-slim$/m);
    const copied = [...dockerfile.matchAll(/^COPY (.+) \S+$/gm)].flatMap((m) => m[1]!.split(' '));
    expect(copied).toEqual(['package.json', 'package-lock.json', 'bin', 'config', 'src']);
    const allowed = read('deploy/Dockerfile.dockerignore').split('\n').filter((line) => line.startsWith('!')).map((line) => line.slice(1).replace(/\/$/, ''));
    expect(allowed.sort()).toEqual([...copied].sort());
    for (const path of copied) expect(existsSync(`${ROOT}${path}`)).toBe(true);
    expect(dockerfile).toMatch(/^CMD \["run", "--config", "\/etc\/rookery\/rookery\.yaml"\]$/m);
  });
});
