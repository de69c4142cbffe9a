/**
 * Process-wide supervisor control bus.
 *
 * The `ai-dialer-bus` config node subscribes to the MQTT control topics
 * (`ai-dialer/v1/campaigns/<id>/control`, `ai-dialer/v1/calls/<callId>/control`), validates each
 * command and emits it here. Consumers (campaign queue, the lead's hangup wiring, llm-turn) listen
 * without knowing about MQTT.
 *
 *  - `controlBus.on('campaign', (c: CampaignControl) => ...)`  start | stop | pause | resume
 *  - `controlBus.on('call', (c: CallControl) => ...)`          hangup | say (text)
 *  - `queueSupervisorLine(callId, text)` / `takeSupervisorLine(callId)`: a line a supervisor asked to
 *    be said into the call at its next turn (llm-turn takes it).
 */
import { EventEmitter } from 'events';

export type CampaignAction = 'start' | 'stop' | 'pause' | 'resume';
export type CallAction = 'hangup' | 'say';

export interface CampaignControl {
  campaignId: string;
  action: CampaignAction;
}

export interface CallControl {
  callId: string;
  action: CallAction;
  text?: string;
}

export interface ControlBusEvents {
  campaign: (c: CampaignControl) => void;
  call: (c: CallControl) => void;
}

class ControlBus extends EventEmitter {
  override on<E extends keyof ControlBusEvents>(event: E, listener: ControlBusEvents[E]): this;
  override on(event: string | symbol, listener: (...args: never[]) => void): this;
  override on(event: string | symbol, listener: (...args: never[]) => void): this {
    return super.on(event, listener as (...args: unknown[]) => void);
  }
  override emit<E extends keyof ControlBusEvents>(event: E, ...args: Parameters<ControlBusEvents[E]>): boolean;
  override emit(event: string | symbol, ...args: unknown[]): boolean;
  override emit(event: string | symbol, ...args: unknown[]): boolean {
    return super.emit(event, ...args);
  }
}

/** The one control bus of this process. Many nodes listen; raise the listener cap accordingly. */
export const controlBus: ControlBus = new ControlBus();
controlBus.setMaxListeners(0);

/** Lines waiting per call, in the order supervisors sent them. Bounded so a flood cannot grow memory. */
const pendingLines = new Map<string, string[]>();
const MAX_LINES_PER_CALL = 10;
const MAX_CALLS = 10000;

/** Queue a line for a call; it is said at the call's next turn. */
export function queueSupervisorLine(callId: string, text: string): void {
  const id = String(callId);
  const t = String(text).trim();
  if (!id || !t) return;
  let q = pendingLines.get(id);
  if (!q) {
    if (pendingLines.size >= MAX_CALLS) {
      const oldest = pendingLines.keys().next().value;
      if (oldest !== undefined) pendingLines.delete(oldest);
    }
    q = [];
    pendingLines.set(id, q);
  }
  q.push(t);
  if (q.length > MAX_LINES_PER_CALL) q.shift();
}

/** Take (and remove) the next waiting supervisor line of a call, if any. */
export function takeSupervisorLine(callId: string): string | undefined {
  const id = String(callId);
  const q = pendingLines.get(id);
  if (!q) return undefined;
  const t = q.shift();
  if (q.length === 0) pendingLines.delete(id);
  return t;
}
