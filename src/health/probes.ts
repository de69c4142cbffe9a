/**
 * Process-wide health probes: parts of the runtime that hold live resources (the built-in Asterisk
 * simulator, ...) register a counter here, and `GET /api/v1/health` reports them beside the AGI
 * sessions and campaign slots it reads itself. No Node-RED import; probes must be cheap and sync.
 */
export type HealthProbe = () => number | Record<string, number>;

const probes = new Map<string, HealthProbe>();

/** Register (or replace) a probe under `name`; returns a function that removes it. */
export function registerHealthProbe(name: string, probe: HealthProbe): () => void {
  probes.set(name, probe);
  return () => {
    if (probes.get(name) === probe) probes.delete(name);
  };
}

/** Every probe's current value; a probe that throws reports `{error: 1}` instead of failing the route. */
export function readHealthProbes(): Record<string, number | Record<string, number>> {
  const out: Record<string, number | Record<string, number>> = {};
  for (const [name, probe] of probes) {
    try {
      out[name] = probe();
    } catch {
      out[name] = { error: 1 };
    }
  }
  return out;
}
