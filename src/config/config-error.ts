import { OPERATOR_ERRORS, type OperatorErrorCode } from '../errors.ts';

/** Raised for any problem with the configuration; `problems` each name the exact path. */
export class ConfigError extends Error {
  readonly code: OperatorErrorCode = 'CONFIG_INVALID';

  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`${source}: ${OPERATOR_ERRORS.CONFIG_INVALID.message}\n${problems.map((p) => `  ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Formats a path as it would be written in YAML-ish dotted form: `ips[2].address`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out || '(root)';
}
