/**
 * Freezes a value and everything reachable through its own properties, so a configuration can
 * be shared without anyone changing it. Left as they are: Buffers (they cannot be frozen), the
 * entries of a Map or Set (their readonly types guard those), and regular expressions, whose
 * only state is lastIndex, unused without the g or y flag: V8 takes a slower path for a frozen
 * one, and classification tests them for every failed delivery.
 */
export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value) && !ArrayBuffer.isView(value) && !(value instanceof RegExp)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
