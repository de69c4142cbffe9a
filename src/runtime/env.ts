/**
 * Environment settings shared by the runtime and the config nodes' "from environment" mode.
 * One place for names and defaults (documented in the table of docs/guide/configuration.md).
 */
export { dataDir, storeOptionsFromEnv, resolveStoreOptions, type StoreMode } from '../store/options';

/** Parse a port number; throws a clear error naming the variable. */
export function portFrom(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new Error(`${name} must be a port number between 0 and 65535 (got "${raw}")`);
  return n;
}
