import { join } from 'node:path';
import { DATA_FILES, DEFAULT_CONFIG_DIR } from '../../src/config/data-files.ts';
import { loadBounceRules } from '../../src/engine/bounce-rules.ts';

/** The shipped bounce rules (config/bounce-rules.yaml), as the daemon uses them without operator rules. */
export const BOUNCE_RULES = loadBounceRules(join(DEFAULT_CONFIG_DIR, DATA_FILES.bounceRules));
