import pg from 'pg';
import { DataRefusedError } from '../store.ts';

/**
 * COMMIT was sent but no answer came back (the connection was lost): the transaction may or may
 * not have committed. Only the database can tell, on another connection.
 */
export class UncertainCommitError extends Error {
  constructor(cause: unknown) {
    super(`connection lost during COMMIT; the transaction may have committed: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    this.name = 'UncertainCommitError';
  }
}

/**
 * Runs `work` inside BEGIN ... COMMIT on a client of its own, rolling back on error. A client
 * that failed mid-transaction is destroyed rather than returned to the pool. A COMMIT that the
 * server did not answer rejects with UncertainCommitError; one it refused, with its error.
 */
export async function withTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  // A checked-out client has no pool error handler; an 'error' event between two queries
  // would otherwise crash the process.
  const onError = (err: Error) => {
    broken = err;
  };
  client.on('error', onError);
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT').catch((err: unknown) => {
      if (err instanceof pg.DatabaseError) throw err;
      broken = err as Error;
      throw new UncertainCommitError(err);
    });
    return result;
  } catch (err) {
    if (!broken) {
      try {
        await client.query('ROLLBACK');
      } catch (rollbackErr) {
        broken = rollbackErr as Error;
      }
    }
    throw err;
  } finally {
    client.off('error', onError);
    client.release(broken);
  }
}

/**
 * An error of the data itself (SQLSTATE class 22, data exception, such as a NUL in text; class
 * 23, integrity constraint violation) as DataRefusedError: repeating the statement cannot help.
 * Other errors are returned as they are.
 */
export function asRefusal(err: unknown): unknown {
  return err instanceof pg.DatabaseError && /^2[23]/.test(err.code ?? '') ? new DataRefusedError(err.message, { cause: err }) : err;
}
