import { join } from 'node:path';
import type { z } from 'zod';
import { ConfigError } from '../config/config-error.ts';
import { DATA_FILES, DEFAULT_CONFIG_DIR } from '../config/data-files.ts';
import {
  providersConfigSchema,
  providersFileSchema,
  shapingConfigSchema,
  shapingFileSchema,
  warmupConfigSchema,
  warmupPlansSchema,
  type ProvidersConfig,
  type ProvidersFile,
  type ShapingConfig,
  type WarmupConfig,
} from '../config/pool-schemas.ts';
import { parseWith, readYamlFile } from '../config/yaml-config.ts';
import type { ProviderName } from './contracts.ts';
import { FALLBACK_PROVIDER, ProviderCatalog, type ProviderGroup } from './providers.ts';
import { ShapingTable } from './shaping.ts';

/**
 * The egress pool's data: warm-up plans, destination providers and shaping limits, read from
 * config/ and combined with the operator's `warmup:`, `providers:` and `shaping:` settings.
 * Loaded once, by the config resolution (src/resolved-config.ts); a problem in any of them is a
 * configuration problem.
 */

/** The operator's settings, as the config schema parsed them (`config.warmup` etc.). */
export interface PoolDataOverrides {
  warmup?: WarmupConfig;
  providers?: ProvidersConfig;
  shaping?: ShapingConfig;
}

export interface LoadPoolDataOptions {
  /** Folder holding the three data files; default: the repository's config/. */
  configDir?: string;
  overrides?: PoolDataOverrides;
  /** Names the operator's config in errors about the overrides (e.g. its file path). */
  source?: string;
}

export interface PoolData {
  /** Plan name -> daily caps, day 0 first. */
  readonly plans: ReadonlyMap<string, readonly number[]>;
  readonly providers: ProviderCatalog;
  readonly shaping: ShapingTable;
  readonly warmup: { readonly activeHours: number; readonly idleRestartMs: number };
}

/** Reads, validates and combines the data. Throws ConfigError naming the file and the path in it. */
export function loadPoolData(options: LoadPoolDataOptions = {}): PoolData {
  const dir = options.configDir ?? DEFAULT_CONFIG_DIR;
  const source = options.source ?? 'config';
  const warmup = options.overrides?.warmup ?? warmupConfigSchema.parse(undefined);
  const providerOverrides = options.overrides?.providers ?? providersConfigSchema.parse(undefined);
  const shapingOverrides = options.overrides?.shaping ?? shapingConfigSchema.parse(undefined);

  const planFile = readDataFile(join(dir, DATA_FILES.plans), warmupPlansSchema);
  const providerFile = readDataFile(join(dir, DATA_FILES.providers), providersFileSchema);
  const shapingFile = readDataFile(join(dir, DATA_FILES.shaping), shapingFileSchema);

  const providerFilePath = join(dir, DATA_FILES.providers);
  const fileProblems = providerFileProblems(providerFile);
  if (fileProblems.length) throw new ConfigError(providerFilePath, fileProblems);
  const unknownInFile = unknownProviderProblems(Object.keys(shapingFile.providers), new Set(Object.keys(providerFile)), 'providers');
  if (unknownInFile.length) throw new ConfigError(join(dir, DATA_FILES.shaping), unknownInFile);

  const overrideProblems = providerOverrideProblems(providerFile, providerOverrides);
  const groups = mergeProviders(providerFile, providerOverrides);
  overrideProblems.push(...unknownProviderProblems(Object.keys(shapingOverrides.providers), new Set(groups.map((g) => g.name)), 'shaping.providers'));
  if (overrideProblems.length) throw new ConfigError(source, overrideProblems);

  const plans = new Map<string, readonly number[]>();
  for (const [name, caps] of [...Object.entries(planFile), ...Object.entries(warmup.plans)]) plans.set(name, Object.freeze([...caps]));

  return Object.freeze({
    plans,
    providers: new ProviderCatalog(groups),
    shaping: new ShapingTable(shapingFile, shapingOverrides),
    warmup: Object.freeze({ activeHours: warmup.activeHours, idleRestartMs: warmup.idleRestart }),
  });
}

/**
 * Problems with the plans that `ips[].warmup` name, in config-path form:
 * `ips[1].warmup.plan: unknown warm-up plan "x"`. Empty when every plan exists.
 */
export function unknownPlans(
  ips: ReadonlyArray<{ warmup?: { plan: string } | null | undefined }>,
  data: Pick<PoolData, 'plans'>,
): string[] {
  const problems: string[] = [];
  ips.forEach((ip, i) => {
    if (ip.warmup && !data.plans.has(ip.warmup.plan)) {
      problems.push(`ips[${i}].warmup.plan: unknown warm-up plan ${JSON.stringify(ip.warmup.plan)}`);
    }
  });
  return problems;
}

function readDataFile<S extends z.ZodType>(path: string, schema: S): z.output<S> {
  return parseWith(schema, readYamlFile(path), path);
}

function providerFileProblems(file: ProvidersFile): string[] {
  const problems: string[] = [];
  if (!Object.hasOwn(file, FALLBACK_PROVIDER)) {
    problems.push(`${FALLBACK_PROVIDER}: missing: the group of every MX host no other group matches`);
  }
  for (const [name, group] of Object.entries(file)) {
    if (name === FALLBACK_PROVIDER && group.mx.length) problems.push(`${name}.mx: "${FALLBACK_PROVIDER}" matches every MX host no other group matches; it takes no patterns`);
    if (name !== FALLBACK_PROVIDER && !group.mx.length) problems.push(`${name}.mx: a provider needs at least one MX host pattern`);
  }
  return problems;
}

function providerOverrideProblems(file: ProvidersFile, overrides: ProvidersConfig): string[] {
  const problems: string[] = [];
  for (const [name, group] of Object.entries(overrides)) {
    if (name === FALLBACK_PROVIDER && group.mx) problems.push(`providers.${name}.mx: "${FALLBACK_PROVIDER}" matches every MX host no other group matches; it takes no patterns`);
    if (!Object.hasOwn(file, name) && !group.mx) problems.push(`providers.${name}.mx: required for a provider that ${DATA_FILES.providers} does not define`);
  }
  return problems;
}

function unknownProviderProblems(names: readonly string[], known: ReadonlySet<ProviderName>, prefix: string): string[] {
  const list = [...known].join(', ');
  return names.filter((name) => !known.has(name)).map((name) => `${prefix}.${name}: unknown provider ${JSON.stringify(name)} (known: ${list})`);
}

/**
 * The groups in match order: the operator's new groups first (an operator adding a group usually
 * wants it to win over a broader one shipped here), then the shipped groups with the operator's
 * changes, `other` last.
 */
function mergeProviders(file: ProvidersFile, overrides: ProvidersConfig): ProviderGroup[] {
  const added = Object.entries(overrides)
    .filter(([name]) => !Object.hasOwn(file, name))
    .map(([name, group]) => ({ name, mx: group.mx ?? [], warmupScale: group.warmupScale ?? 1 }));
  const shipped = Object.entries(file).map(([name, group]) => {
    const change = Object.hasOwn(overrides, name) ? overrides[name] : undefined;
    return { name, mx: change?.mx ?? group.mx, warmupScale: change?.warmupScale ?? group.warmupScale };
  });
  return [...added, ...shipped];
}
