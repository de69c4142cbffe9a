/** Moved to src/health/probes.ts (nodes and the API must not import the runtime); kept for old imports. */
export { registerHealthProbe, readHealthProbes, type HealthProbe } from '../health/probes';
