/**
 * Argument checks shared by both PoolState implementations, so every backend refuses the same
 * calls. NUL is refused because PostgreSQL text cannot hold it.
 */

export function checkStateKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0) throw new TypeError('pool state key must be a non-empty string');
  if (key.includes('\u0000')) throw new TypeError('pool state key must not contain NUL');
}

export function checkStateEntry(value: string, expiresAt: number | null): void {
  if (typeof value !== 'string') throw new TypeError('pool state value must be a string');
  if (value.includes('\u0000')) throw new TypeError('pool state value must not contain NUL');
  if (expiresAt !== null && !Number.isSafeInteger(expiresAt)) throw new RangeError(`expiresAt must be an integer (ms) or null, got ${expiresAt}`);
}
