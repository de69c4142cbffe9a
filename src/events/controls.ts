/**
 * Supervisor control commands received over MQTT: parse and validate, then emit on the control bus.
 *
 *   <root>/campaigns/<id>/control   {"action":"start"|"stop"|"pause"|"resume"}   (or the bare word)
 *   <root>/calls/<callId>/control   {"action":"hangup"} | {"action":"say","text":"..."}
 *
 * Who may publish them is the broker's job (embedded broker ACL: writer accounts only; Mosquitto: the
 * ACL file in docs/mosquitto/acl).
 */
import { DialerError } from '../util/errors';
import { CallControl, CampaignControl, controlBus, queueSupervisorLine } from './control-bus';
import { Topics } from './topics';

const CAMPAIGN_ACTIONS = ['start', 'stop', 'pause', 'resume'] as const;
const CALL_ACTIONS = ['hangup', 'say'] as const;
export const MAX_SAY_LENGTH = 1000;

function bad(message: string): DialerError {
  return new DialerError('control_invalid', message);
}

function body(payload: Buffer | string): { action?: unknown; text?: unknown } {
  const s = payload.toString().trim();
  if (s.length > 8192) throw bad('control payload larger than 8 KiB');
  if (s.startsWith('{') || s.startsWith('[')) {
    try {
      const o = JSON.parse(s);
      if (o && typeof o === 'object' && !Array.isArray(o)) return o;
    } catch {
      throw bad('control payload is not valid JSON');
    }
    throw bad('control payload must be a JSON object');
  }
  return { action: s };
}

/** Parse a control message from its topic and payload; throws DialerError('control_invalid') on bad input. */
export function parseControl(
  topics: Topics,
  topic: string,
  payload: Buffer | string,
): { kind: 'campaign'; control: CampaignControl } | { kind: 'call'; control: CallControl } {
  const t = topics.parse(topic);
  if (!t || (t.kind !== 'campaign_control' && t.kind !== 'call_control')) throw bad(`${topic} is not a control topic`);
  const b = body(payload);
  if (t.kind === 'campaign_control') {
    if (!CAMPAIGN_ACTIONS.includes(b.action as never))
      throw bad(`campaign control action must be one of ${CAMPAIGN_ACTIONS.join(', ')}`);
    return { kind: 'campaign', control: { campaignId: t.id, action: b.action as CampaignControl['action'] } };
  }
  if (!CALL_ACTIONS.includes(b.action as never))
    throw bad(`call control action must be one of ${CALL_ACTIONS.join(', ')}`);
  if (b.action === 'say') {
    if (typeof b.text !== 'string' || !b.text.trim()) throw bad('call control "say" needs a non-empty "text"');
    // One line of speech: control characters (newlines included) become spaces.
    const text = b.text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
    if (text.length > MAX_SAY_LENGTH) throw bad(`call control "say" text is longer than ${MAX_SAY_LENGTH} characters`);
    return { kind: 'call', control: { callId: t.id, action: 'say', text } };
  }
  return { kind: 'call', control: { callId: t.id, action: 'hangup' } };
}

/** Handle one control message: validate, queue a "say" line, emit on controlBus. Returns the error if invalid. */
export function dispatchControl(topics: Topics, topic: string, payload: Buffer | string): DialerError | undefined {
  let parsed;
  try {
    parsed = parseControl(topics, topic, payload);
  } catch (err) {
    return err as DialerError;
  }
  if (parsed.kind === 'campaign') controlBus.emit('campaign', parsed.control);
  else {
    if (parsed.control.action === 'say') queueSupervisorLine(parsed.control.callId, parsed.control.text!);
    controlBus.emit('call', parsed.control);
  }
  return undefined;
}
