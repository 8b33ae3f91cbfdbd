import { DatabaseSync } from 'node:sqlite';
import pg from 'pg';

/** A place a text was found: the table and column, and how many rows hold it there. */
export interface Occurrence {
  table: string;
  column: string;
  rows: number;
}

/**
 * Every table and column of a SQLite database holding `text`, compared without regard to ASCII
 * case, in text and blob columns alike (a message body is a blob): the check that an erasure left
 * nothing behind, whatever tables later versions add.
 */
export function findInSqlite(path: string, text: string): Occurrence[] {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const found: Occurrence[] = [];
    const tables = db.prepare(`SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`).all() as { name: string }[];
    for (const { name: table } of tables) {
      const columns = db.prepare(`SELECT name FROM pragma_table_info(?)`).all(table) as { name: string }[];
      for (const { name: column } of columns) {
        const q = (id: string) => `"${id.replaceAll('"', '""')}"`;
        // CAST(... AS TEXT) reads a blob's bytes as text; instr on lower() finds it in any case.
        const row = db.prepare(`SELECT count(*) AS n FROM ${q(table)} WHERE instr(lower(CAST(${q(column)} AS TEXT)), lower(?)) > 0`).get(text) as { n: number };
        if (row.n > 0) found.push({ table, column, rows: row.n });
      }
    }
    return found;
  } finally {
    db.close();
  }
}

/** The same over every table of one PostgreSQL schema: text-like columns by ILIKE, bytea by its bytes. */
export async function findInPostgres(url: string, schema: string, text: string): Promise<Occurrence[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const found: Occurrence[] = [];
    const { rows: columns } = await client.query<{ table_name: string; column_name: string; data_type: string }>(
      `SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c
       JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
       WHERE c.table_schema = $1 AND t.table_type = 'BASE TABLE'`,
      [schema],
    );
    const q = (id: string) => `"${id.replaceAll('"', '""')}"`;
    for (const { table_name: table, column_name: column, data_type: type } of columns) {
      // Every type as its text form (arrays, json, numbers included); bytea through its bytes, read as UTF-8 where valid.
      const value = type === 'bytea' ? `encode(${q(column)}, 'escape')` : `${q(column)}::text`;
      const { rows } = await client.query<{ n: string }>(
        `SELECT count(*) AS n FROM ${q(schema)}.${q(table)} WHERE position(lower($1) IN lower(${value})) > 0`,
        [text],
      );
      const n = Number(rows[0]!.n);
      if (n > 0) found.push({ table, column, rows: n });
    }
    return found;
  } finally {
    await client.end();
  }
}
