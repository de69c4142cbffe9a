/**
 * The optional dependencies (package.json `optionalDependencies`): what only the embedded parts need.
 * npm installs them by default (`npm install`, Node-RED's palette manager); an install with
 * `--omit=optional` (or one whose optional install failed) leaves them out, and the feature that needs
 * one then fails with a MissingPackageError naming the package and the command that installs it.
 * docs/contributing/design.md#dependencies.
 */
import { DialerError } from './errors';

/** Each optional package and the feature that needs it (as the error says it). */
export const OPTIONAL_PACKAGES = {
  '@electric-sql/pglite': 'The embedded database (PGlite, used when no PostgreSQL URL is set)',
  aedes: 'The embedded MQTT broker (used when no MQTT_URL / external broker is set)',
  '@echogarden/fvad-wasm': 'Stream mode (voice activity detection on the live audio)',
} as const;

export type OptionalPackage = keyof typeof OPTIONAL_PACKAGES;

export class MissingPackageError extends DialerError {
  readonly packageName: string;
  constructor(name: string, feature: string, cause?: unknown) {
    super(
      'missing_package',
      `${feature} needs the package ${name}, which is not installed (an optional dependency of ` +
        `node-red-contrib-ai-dialer, left out by npm --omit=optional or a failed install). Install it where ` +
        `the package is installed (for Node-RED: cd ~/.node-red && npm install ${name}), then restart.`,
      { cause },
    );
    this.name = 'MissingPackageError';
    this.packageName = name;
  }
}

/** True when `err` says that `request` itself (not something it requires) cannot be found. */
function isMissing(err: unknown, request: string): boolean {
  const e = err as NodeJS.ErrnoException;
  return (
    !!e &&
    (e.code === 'MODULE_NOT_FOUND' || e.code === 'ERR_MODULE_NOT_FOUND') &&
    typeof e.message === 'string' &&
    e.message.includes(`'${request}'`)
  );
}

type Resolver = { resolve(request: string): string };

/**
 * require.resolve(`request`) (the package `name` or a file in it, e.g. `name/file.wasm`), or a
 * MissingPackageError naming `name` when it is not installed. `req`: the require to resolve with.
 */
export function resolveOptional(
  name: string,
  request: string = name,
  req: Resolver = require,
  feature?: string,
): string {
  try {
    return req.resolve(request);
  } catch (err) {
    if (isMissing(err, request)) throw new MissingPackageError(name, feature ?? featureOf(name), err);
    throw err;
  }
}

/** require(`name`), or a MissingPackageError naming it when it is not installed. */
export function requireOptional<T>(name: string, req: NodeRequire = require, feature?: string): T {
  try {
    return req(name) as T;
  } catch (err) {
    if (isMissing(err, name)) throw new MissingPackageError(name, feature ?? featureOf(name), err);
    throw err;
  }
}

function featureOf(name: string): string {
  return (OPTIONAL_PACKAGES as Record<string, string>)[name] ?? 'This feature';
}
