/**
 * Freezes a value and everything reachable through its own properties, so a configuration can
 * be shared without anyone changing it. Buffers cannot be frozen, and the entries of a Map or
 * Set stay changeable: their readonly types guard those.
 */
export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value) && !ArrayBuffer.isView(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
