import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { parseDuration } from '../../src/config/duration.ts';
import { loadConfigFile, parseConfig } from '../../src/config/load.ts';
import { configSchema } from '../../src/config/schema.ts';

const ROOT = new URL('../../', import.meta.url);
const EXAMPLE = new URL('config/rookery.example.yaml', ROOT).pathname;
const LOCAL = new URL('config/rookery.local.yaml', ROOT).pathname;
const README = new URL('README.md', ROOT).pathname;

type JsonSchema = { type?: string; properties?: Record<string, JsonSchema>; items?: JsonSchema };

/** Every key path the schema accepts, list items written as `[]`: `smtp.listeners[].host`. */
function schemaPaths(): string[] {
  const root = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  const paths: string[] = [];
  const walk = (node: JsonSchema, prefix: string) => {
    if (node.properties) {
      for (const [key, child] of Object.entries(node.properties)) {
        const path = prefix ? `${prefix}.${key}` : key;
        paths.push(path);
        walk(child, path);
      }
    } else if (node.items) {
      walk(node.items, `${prefix}[]`);
    }
  };
  walk(root, '');
  return paths;
}

/** Key paths present in a parsed YAML document, written like schemaPaths(). */
function documentPaths(value: unknown, prefix = '', out = new Set<string>()): Set<string> {
  if (Array.isArray(value)) {
    for (const item of value) documentPaths(item, `${prefix}[]`, out);
  } else if (value && typeof value === 'object') {
    for (const [key, child] of Object.entries(value)) {
      const path = prefix ? `${prefix}.${key}` : key;
      out.add(path);
      documentPaths(child, path, out);
    }
  }
  return out;
}

/**
 * The example with every left-out setting switched on. A left-out setting is a line "#key: ..."
 * (no space after the #); the lines right below it with their # in the same column belong to it
 * ("#  url: ..."). Removing those # gives the YAML. Explanations ("# text") stay comments.
 */
function exampleWithEverySetting(): unknown {
  let blockColumn = -1;
  const lines = readFileSync(EXAMPLE, 'utf8')
    .split('\n')
    .map((line) => {
      const start = /^(\s*)#[^\s#]/.exec(line);
      const continues = blockColumn >= 0 && line.length > blockColumn && line[blockColumn] === '#' && line.slice(0, blockColumn).trim() === '';
      if (start) blockColumn = start[1]!.length;
      else if (!continues) blockColumn = -1;
      return blockColumn >= 0 ? line.slice(0, blockColumn) + line.slice(blockColumn + 1) : line;
    });
  // An alternative given after the active default replaces it.
  return parseYaml(lines.join('\n'), { uniqueKeys: false });
}

describe('config/rookery.example.yaml', () => {
  it('passes validation, and its active settings are exactly the defaults', () => {
    const config = loadConfigFile(EXAMPLE, {});
    expect(config).toEqual(parseConfig({}, 'defaults', {}));
  });

  it('is still valid with every left-out setting switched on', () => {
    const config = parseConfig(exampleWithEverySetting(), EXAMPLE, {});
    expect(config.storage.url).toMatch(/^postgres:\/\//);
    expect(config.redis?.url).toMatch(/^redis:\/\//);
    expect(config.smtp.listeners).toHaveLength(2);
    expect(config.smtp.users.map((u) => u.username)).toEqual(['app', 'legacy-app']);
    expect(config.ips).toHaveLength(3);
  });

  it('mentions every key of the schema', () => {
    const present = documentPaths(exampleWithEverySetting());
    const missing = schemaPaths().filter((path) => !present.has(path));
    expect(missing).toEqual([]);
  });
});

describe('config/rookery.local.yaml (npm start)', () => {
  it('is the embedded single-node setup that accepts mail from this machine', () => {
    const config = loadConfigFile(LOCAL, {});
    expect(config.storage).toMatchObject({ driver: 'sqlite', path: './data/rookery.db' });
    expect(config.dataDir).toBe('./data');
    expect(config.smtp.listeners).toEqual([{ host: '127.0.0.1', port: 2525, tls: 'none', greetingDelay: 0 }]);
    expect(config.smtp.trustedNetworks).toEqual(['127.0.0.1/32']);
    expect(config.api.listen).toEqual({ host: '127.0.0.1', port: 8025 });
    expect(config.delivery.routes).toEqual({ '*': 'mx' });
    expect(config.redis).toBeUndefined();
  });
});

describe('README.md configuration reference', () => {
  it('documents every key of the schema', () => {
    const readme = readFileSync(README, 'utf8');
    const missing = schemaPaths().filter((path) => !readme.includes(`\`${path}\``));
    expect(missing).toEqual([]);
  });
});

describe('systemd/rookery.service', () => {
  const unit = readFileSync(new URL('systemd/rookery.service', ROOT), 'utf8');
  const setting = (name: string) => [...unit.matchAll(new RegExp(`^${name}=(.*)$`, 'gm'))].map((m) => m[1]!);

  it('gives a graceful stop more time than the daemon takes to drain', () => {
    const [stopTimeout] = setting('TimeoutStopSec');
    const stopMs = parseDuration(stopTimeout!);
    expect(stopMs).not.toBeNull();
    // Draining deliveries takes up to shutdownTimeout; closing listeners and storage comes on top.
    expect(stopMs!).toBeGreaterThanOrEqual(parseConfig({}, 'defaults', {}).delivery.shutdownTimeout + 10_000);
    expect(setting('KillSignal')).toEqual(['SIGTERM']);
  });

  it('validates the same configuration file before starting the daemon', () => {
    const [pre] = setting('ExecStartPre');
    const [start] = setting('ExecStart');
    expect(pre).toMatch(/\/bin\/rookery check-config --config (\S+)$/);
    expect(start).toMatch(/\/bin\/rookery run --config (\S+)$/);
    expect(pre!.split(' ').at(-1)).toBe(start!.split(' ').at(-1));
  });
});
