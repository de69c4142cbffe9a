/**
 * The campaign benches' server: DATABASE_URL (default the local test database), one admin connection per
 * statement (create / drop / checkpoint), and the URL of another database on the same server.
 */
import { Client } from 'pg';

export const BASE = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';

/** Run `fn` on a fresh connection to BASE, closed afterwards. */
export async function withAdmin<T>(fn: (c: Client) => Promise<T>): Promise<T> {
  const c = new Client({ connectionString: BASE });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** BASE with another database name. */
export function dbUrl(name: string): string {
  const url = new URL(BASE);
  url.pathname = `/${name}`;
  return url.toString();
}
