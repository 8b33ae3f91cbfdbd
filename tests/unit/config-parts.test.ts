import { afterAll, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.ts';
import { makeConfigParts, type ConfigParts } from '../../src/config-parts.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { resolveConfig, type ResolvedConfig } from '../../src/resolved-config.ts';
import { createDkimKeyStore } from '../../src/sender-domains/key-store.ts';
import { copyDataFiles } from '../helpers/data-files.ts';
import { createFixtureResolver } from '../helpers/fixture-resolver.ts';
import { manualClock } from '../helpers/manual-clock.ts';
import { createTempDir } from '../helpers/temp-dir.ts';

/** The parts a reload makes, over real resolutions of a config and a copy of the shipped data files. */

const temp = await createTempDir('rookery-config-parts');
const data = copyDataFiles(temp.file('data-files'));
const resolve = (input: ConfigInput) => resolveConfig(input, { source: 'rookery.yaml', env: {}, configDir: data.configDir });

const clock = manualClock();
const logger = createLogger('silent');
const dns = createFixtureResolver();
const deps = { dns, clock, logger, dkimKeys: createDkimKeyStore({ keys: [], resolver: dns, clock, logger }), signingPool: undefined, onUnsigned: () => {} };

/** The parts of `next` made by a reload from `running` and its parts, as the daemon does (src/main.ts). */
function reloaded(running: { resolved: ResolvedConfig; parts: ConfigParts }, next: ResolvedConfig, changed: string[]): ConfigParts {
  return makeConfigParts(next, deps, { ...running, changed: (path) => changed.some((p) => p === path || p.startsWith(`${path}.`)) });
}

describe('config parts', () => {
  afterAll(() => temp.remove());

  it('keep the reaction rules (and their counts) only while the rules, config and shipped file alike, are the same', () => {
    const config: ConfigInput = { ips: [{ address: '203.0.113.7' }] };
    const first = resolve(config);
    const parts = makeConfigParts(first, deps);

    const again = reloaded({ resolved: first, parts }, resolve({ ips: [{ address: '203.0.113.7', weight: 5 }] }), ['ips']);
    expect(again.pool.reactions).toBe(parts.pool.reactions);

    // The config's rules are unchanged: only config/reaction-rules.yaml was edited.
    data.edit('reactionRules', (text) => text.replace('duration: 24h', 'duration: 12h'));
    const edited = resolve(config);
    const afterEdit = reloaded({ resolved: first, parts }, edited, ['config/reaction-rules.yaml']);
    expect(afterEdit.pool.reactions).not.toBe(parts.pool.reactions);

    const operator: ConfigInput = { ...config, reactionRules: [{ name: 'local', match: '^421 local', trigger: 'immediate', action: 'suspend-ip', duration: '1h' }] };
    const withRule = reloaded({ resolved: edited, parts: afterEdit }, resolve(operator), ['reactionRules']);
    expect(withRule.pool.reactions).not.toBe(afterEdit.pool.reactions);
  });
});
