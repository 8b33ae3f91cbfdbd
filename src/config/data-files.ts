import { fileURLToPath } from 'node:url';

/**
 * The data files shipped in the repository's config/ folder: the egress pool's plans, providers
 * and shaping limits, and the rule tables that interpret remote replies. The operator's config
 * adds to or overrides each of them.
 */

/** The repository's config/ folder, where the shipped data files live. */
export const DEFAULT_CONFIG_DIR = fileURLToPath(new URL('../../config/', import.meta.url));

export const DATA_FILES = {
  plans: 'warmup-plans.yaml',
  providers: 'providers.yaml',
  shaping: 'shaping.yaml',
  reactionRules: 'reaction-rules.yaml',
  bounceRules: 'bounce-rules.yaml',
  suppressionRules: 'suppression-rules.yaml',
} as const;
