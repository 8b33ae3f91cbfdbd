/** What a secret field's value is written as. */
export const CENSOR = '[redacted]';

/** Fields that hold a secret wherever they stand. */
const SECRET_FIELDS = new Set(['password', 'pass', 'passwordHash', 'credentials', 'secret', 'previousSecrets']);

/**
 * Fields that hold a secret under a field of the given name (or in an array under it): the
 * connection strings of the config (`storage.url`, `redis.url`), the API tokens' hashes
 * (`api.tokens[].hash`), a request's `headers.authorization`, and the arguments of a failed
 * ioredis command (`command.args`: AUTH and HELLO carry the password).
 */
const SECRET_UNDER = new Map([
  ['url', new Set(['storage', 'redis'])],
  ['hash', new Set(['tokens'])],
  ['authorization', new Set(['headers'])],
  ['args', new Set(['command'])],
]);

/** Deeper than any field above sits in a log line's object. */
const MAX_DEPTH = 8;
/**
 * Objects and arrays looked into per line, at most: an object that refers back to itself through
 * several fields would otherwise be walked once per path, which grows exponentially with the depth.
 */
const MAX_VISITS = 2000;
/** What is left of MAX_VISITS for the line being walked (the walk is synchronous). */
let visitsLeft = 0;

function isSecret(field: string, parent: string | undefined): boolean {
  return SECRET_FIELDS.has(field) || (parent !== undefined && SECRET_UNDER.get(field)?.has(parent) === true);
}

/** Plain objects and errors are looked into; anything else (a Buffer, a Date, a socket) is left alone. */
function walkable(value: object): boolean {
  const prototype = Object.getPrototypeOf(value) as object | null;
  return prototype === Object.prototype || prototype === null || value instanceof Error;
}

/** A copy of `value` that keeps its prototype and every own property, an error's message and stack too. */
function copyOf<T extends object>(value: T): T {
  const copy = Object.create(Object.getPrototypeOf(value) as object | null, Object.getOwnPropertyDescriptors(value)) as T;
  // V8 gives an error's stack as an accessor that only works on the error itself.
  if (value instanceof Error) Object.defineProperty(copy, 'stack', { value: value.stack, writable: true, configurable: true });
  return copy;
}

/**
 * `value` with every secret field (above) replaced by CENSOR, at any depth of its plain objects,
 * arrays and errors. Returns `value` itself when nothing in it is secret, and copies only the
 * objects on the way to a secret otherwise: a log line's object is read, never changed. It runs
 * for every log line, so it looks only at own enumerable fields (what the line is written from),
 * and allocates nothing for the common flat object of strings and numbers.
 */
export function redactSecrets<T>(value: T, parent?: string, depth = 0): T {
  if (value === null || typeof value !== 'object' || depth > MAX_DEPTH) return value;
  if (depth === 0) visitsLeft = MAX_VISITS;
  if (visitsLeft-- <= 0) return value;
  if (Array.isArray(value)) {
    let copy: unknown[] | null = null;
    for (let i = 0; i < value.length; i++) {
      const redacted = redactSecrets(value[i] as unknown, parent, depth + 1);
      if (redacted !== value[i]) (copy ??= value.slice())[i] = redacted;
    }
    return (copy ?? value) as T;
  }
  if (!walkable(value)) return value;
  const fields = value as Record<string, unknown>;
  let copy: Record<string, unknown> | null = null;
  for (const field of Object.keys(fields)) {
    const item = fields[field];
    if (item === undefined) continue;
    const redacted = isSecret(field, parent) ? CENSOR : redactSecrets(item, field, depth + 1);
    if (redacted !== item) (copy ??= copyOf(fields))[field] = redacted;
  }
  return (copy ?? value) as T;
}
