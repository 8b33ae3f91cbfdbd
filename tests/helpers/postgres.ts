import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { postgresUrl } from './services.ts';

export interface TestSchema {
  url: string;
  /** A fresh schema name, unique per call; the store's migrate() creates it. */
  schema: string;
  /** Drops the schema and everything in it. Safe to call twice. */
  drop(): Promise<void>;
}

/**
 * A schema of its own for a test file or test, so files run in parallel against one database
 * without seeing each other's rows. `label` (e.g. the file's name) makes leftovers traceable.
 */
export async function createTestSchema(label = 'test'): Promise<TestSchema> {
  const slug = label.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_+|_+$/g, '').slice(0, 30) || 'test';
  const schema = `t_${slug}_${process.pid}_${randomBytes(4).toString('hex')}`;
  const url = postgresUrl();
  return {
    url,
    schema,
    async drop() {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await client.end();
      }
    },
  };
}

export interface ScratchDatabase {
  /** Connection URL of the new database. */
  url: string;
  /** Drops the database, disconnecting anyone still on it. Safe to call twice. */
  drop(): Promise<void>;
}

/**
 * A whole database of its own, for a daemon process whose configuration names only a URL (its
 * migrations and claims then see nothing else).
 */
export async function createScratchDatabase(serverUrl = postgresUrl(), label = 'scratch'): Promise<ScratchDatabase> {
  const name = `rookery_${label}_${process.pid}_${randomBytes(4).toString('hex')}`;
  const admin = async (sql: string) => {
    const client = new pg.Client({ connectionString: serverUrl });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };
  await admin(`CREATE DATABASE ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}
