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

/** What a reference back to an object that contains it is written as (as the line's serializer would). */
const CIRCULAR = '[Circular]';

function isSecret(field: string, parent: string | undefined): boolean {
  return SECRET_FIELDS.has(field) || (parent !== undefined && SECRET_UNDER.get(field)?.has(parent) === true);
}

/** Values whose fields are not written as such, or hold no field of ours: left alone. */
function opaque(value: object): boolean {
  return ArrayBuffer.isView(value) || value instanceof ArrayBuffer || value instanceof Date || value instanceof RegExp || value instanceof Map || value instanceof Set || value instanceof Promise;
}

/** An error of any realm: the line's `err` serializer reads more of it than its own enumerable fields. */
function isError(value: object): boolean {
  return value instanceof Error || Object.prototype.toString.call(value) === '[object Error]';
}

/**
 * The fields a line is written from: own enumerable ones (JSON), and of an error also those it
 * inherits (pino's error serializer reads them with for...in), its `cause` and the `errors` of an
 * AggregateError.
 */
function fieldsOf(value: object): string[] {
  if (!isError(value)) return Object.keys(value);
  const fields: string[] = [];
  for (const field in value) fields.push(field);
  for (const field of ['cause', 'errors']) if (Object.hasOwn(value, field) && !fields.includes(field)) fields.push(field);
  return fields;
}

/**
 * A copy of `value` with its prototype and every own field as a plain writable value (a frozen
 * object or a getter cannot refuse the censored value); an error keeps its message and stack.
 */
function copyOf(value: object): Record<string, unknown> {
  const copy = Object.create(Object.getPrototypeOf(value) as object | null) as Record<string, unknown>;
  for (const field of Object.getOwnPropertyNames(value)) {
    const { enumerable } = Object.getOwnPropertyDescriptor(value, field)!;
    Object.defineProperty(copy, field, { value: (value as Record<string, unknown>)[field], enumerable, writable: true, configurable: true });
  }
  return copy;
}

/** One line's walk: objects on the current path (to cut cycles) and what each (object, parent) came out as. */
interface Walk {
  onPath: Set<object>;
  done: Map<object, Map<string | undefined, unknown>>;
}

function walk(value: unknown, parent: string | undefined, depth: number, state: Walk): unknown {
  if (value === null || typeof value !== 'object' || depth > MAX_DEPTH || opaque(value)) return value;
  if (state.onPath.has(value)) return CIRCULAR;
  // An object reached again by another path (shared, not a cycle) is walked once per parent name.
  const known = state.done.get(value);
  if (known?.has(parent)) return known.get(parent);
  state.onPath.add(value);
  let result: unknown;
  if (Array.isArray(value)) {
    let copy: unknown[] | null = null;
    for (let i = 0; i < value.length; i++) {
      const redacted = walk(value[i], parent, depth + 1, state);
      if (redacted !== value[i]) (copy ??= value.slice())[i] = redacted;
    }
    result = copy ?? value;
  } else {
    const fields = value as Record<string, unknown>;
    let copy: Record<string, unknown> | null = null;
    for (const field of fieldsOf(value)) {
      const item = fields[field];
      if (item === undefined) continue;
      const redacted = isSecret(field, parent) ? CENSOR : walk(item, field, depth + 1, state);
      if (redacted !== item) {
        copy ??= copyOf(value);
        // Defined, not assigned: a field the error only inherits becomes the copy's own.
        Object.defineProperty(copy, field, { value: redacted, enumerable: Object.getOwnPropertyDescriptor(value, field)?.enumerable ?? true, writable: true, configurable: true });
      }
    }
    result = copy ?? value;
  }
  state.onPath.delete(value);
  if (known) known.set(parent, result);
  else state.done.set(value, new Map([[parent, result]]));
  return result;
}

/**
 * `value` with every secret field (above) replaced by CENSOR, at any depth of its objects, arrays
 * and errors (up to MAX_DEPTH), each object walked once per line. Returns `value` itself when
 * nothing in it is secret, and copies only the objects on the way to a secret otherwise: a log
 * line's object is read, never changed. It runs for every log line, so a flat object of strings
 * and numbers, the common line, is looked at once without allocating anything.
 */
export function redactSecrets<T>(value: T): T {
  if (value === null || typeof value !== 'object') return value;
  if (flatAndClean(value)) return value;
  return walk(value, undefined, 0, { onPath: new Set(), done: new Map() }) as T;
}

/** The common line: a plain object of strings and numbers, none of them secret. */
function flatAndClean(value: object): boolean {
  if (Object.getPrototypeOf(value) !== Object.prototype) return false;
  const fields = value as Record<string, unknown>;
  for (const field in fields) {
    const item = fields[field];
    if ((item !== null && typeof item === 'object') || (item !== undefined && isSecret(field, undefined))) return false;
  }
  return true;
}
