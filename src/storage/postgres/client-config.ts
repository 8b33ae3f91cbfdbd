import pg from 'pg';

/** The connection settings of every connection a store opens, pooled or listening. */
export function postgresClientConfig(options: { url: string; schema: string; connectionTimeoutMs?: number }): pg.ClientConfig {
  return {
    connectionString: options.url,
    // Table names resolve in the store's schema; a commit returns only once it is durable (the
    // server's or the role's default may say otherwise).
    options: `-c search_path=${options.schema} -c synchronous_commit=on`,
    application_name: 'rookery',
    types: { getTypeParser: bigintAsNumber } as pg.CustomTypesConfig,
    connectionTimeoutMillis: options.connectionTimeoutMs ?? 10_000,
  };
}

/** int8 (ids, counts, times in ms) as a JS number; every value Rookery stores fits exactly. */
function bigintAsNumber(oid: number, format?: string): (value: string) => unknown {
  if (oid === pg.types.builtins.INT8 && format !== 'binary') {
    return (value: string) => {
      const n = Number(value);
      if (!Number.isSafeInteger(n)) throw new Error(`bigint ${value} exceeds the safe integer range`);
      return n;
    };
  }
  return pg.types.getTypeParser(oid, format as 'text') as (value: string) => unknown;
}
