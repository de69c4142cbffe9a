/**
 * Which database the store means: DATABASE_URL (PostgreSQL), else PGlite under DATA_DIR/db; and a
 * store config node's own choice. Shared by the runtime and the ai-dialer-store node.
 */
import path from 'path';

export function dataDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(env.DATA_DIR || 'data');
}

/** Store options from DATABASE_URL (PostgreSQL) or, when absent, PGlite under DATA_DIR/db. */
export function storeOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): {
  url?: string;
  dataDir?: string;
  poolSize?: number;
} {
  const url = env.DATABASE_URL?.trim();
  if (url) {
    const pool = Number(env.DATABASE_POOL_SIZE);
    return Number.isInteger(pool) && pool > 0 ? { url, poolSize: pool } : { url };
  }
  return { dataDir: path.join(dataDir(env), 'db') };
}

export type StoreMode = 'env' | 'embedded' | 'postgres';

/** Which database a store config node means: its own setting, or the environment's. */
export function resolveStoreOptions(
  mode: StoreMode,
  dir: string | undefined,
  url: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): { url?: string; dataDir?: string } {
  switch (mode) {
    case 'postgres':
      if (!url) throw new Error('store: mode "PostgreSQL server" needs a connection URL');
      return { url };
    case 'embedded':
      return { dataDir: path.resolve(dir || path.join(dataDir(env), 'db')) };
    default:
      return storeOptionsFromEnv(env);
  }
}
