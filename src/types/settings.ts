/**
 * Runtime settings for the nodes: what `npm start` (src/runtime) hands to Node-RED as
 * `settings.aiDialer`, and nodes read as `RED.settings.aiDialer`. Under a stock Node-RED there is
 * no such object and the nodes fall back to the environment variables of the same meaning.
 */

/** A started simulator, as the ARI service needs it (the runtime's is src/sim's SimulatorHandle). */
export interface SimulatorLike {
  url: string;
  username: string;
  password: string;
  close(): Promise<void>;
}

export interface SimulatorStartOptions {
  port: number;
  app: string;
  speed?: number;
  agi: { host: string; port: number };
}

export type StartSimulator = (o: SimulatorStartOptions) => Promise<SimulatorLike>;

export interface DialerSettings {
  /** Where recordings, audio and the embedded database live (DATA_DIR). */
  dataDir?: string;
  /** The Asterisk the "from environment" mode uses (ARI_URL, ARI_USERNAME, ARI_PASSWORD, ARI_APP). */
  ari?: { url: string; username: string; password: string; app?: string };
  /** True when `ari` is the runtime's built-in simulator (AI_DIALER_SIMULATED=1). */
  simulated?: boolean;
  /** False: the embedded broker serves no MQTT over TCP (MQTT_TCP_DISABLED=1). */
  mqttTcp?: boolean;
  /** The ports the runtime chose when MQTT_PORT / AGI_PORT is 0 (the banner and the simulator use the same ones). */
  mqttPort?: number;
  agiPort?: number;
  /** Starts the built-in simulator for an ai-dialer-asterisk node in simulator mode. */
  startSimulator?: StartSimulator;
  /** The HTTP API's settings (apiToken, followAdminAuth, ...): src/api/host.ts `AiDialerSettings`. */
  followAdminAuth?: boolean;
  /** How conversations hear and speak when a fastagi-in leaves Media empty (MEDIA_MODE; `npm start`: auto). */
  mediaMode?: string;
}

/**
 * The environment as the nodes' "from environment" modes see it: `env` with the runtime's settings
 * laid over it (a copy; `env` is never written).
 */
export function settingsEnv(s: DialerSettings | undefined, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  if (!s) return env;
  const out: NodeJS.ProcessEnv = { ...env };
  if (s.dataDir) out.DATA_DIR = s.dataDir;
  if (s.ari) {
    out.ARI_URL = s.ari.url;
    out.ARI_USERNAME = s.ari.username;
    out.ARI_PASSWORD = s.ari.password;
    if (s.ari.app) out.ARI_APP = s.ari.app;
  }
  if (s.simulated) out.AI_DIALER_SIMULATED = '1';
  if (s.mqttTcp === false) out.MQTT_TCP_DISABLED = '1';
  if (s.mqttPort) out.MQTT_PORT = String(s.mqttPort);
  if (s.agiPort) out.AGI_PORT = String(s.agiPort);
  if (s.mediaMode) out.MEDIA_MODE = s.mediaMode;
  return out;
}
