/**
 * The versioned MQTT topic tree (v1). Every topic is built here and nowhere else.
 *
 *   <root>/calls/<callId>/events          call lifecycle events (QoS 1, not retained)
 *   <root>/calls/<callId>/control         supervisor commands for one call (hangup, say)
 *   <root>/campaigns/<campaignId>/status  campaign_progress (QoS 1, retained)
 *   <root>/campaigns/<campaignId>/control supervisor commands for a campaign (start, stop, pause, resume)
 *
 * `<root>` is `ai-dialer/v1` unless a deployment (or a test) chooses another prefix.
 */
import { DialerError } from '../util/errors';

export const TOPIC_VERSION = 'v1';
export const DEFAULT_ROOT = `ai-dialer/${TOPIC_VERSION}`;

/** Ids become topic levels: no '/', '+', '#', NUL, spaces or other surprises. */
const ID_RE = /^[A-Za-z0-9_.:@-]{1,128}$/;
/** A root is one or more safe levels separated by '/'. */
const ROOT_RE = /^[A-Za-z0-9_.:@-]{1,64}(\/[A-Za-z0-9_.:@-]{1,64}){0,7}$/;

export function isTopicId(id: unknown): boolean {
  return (typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id))) && ID_RE.test(String(id));
}

function level(kind: string, id: unknown): string {
  if (!isTopicId(id)) {
    throw new DialerError(
      'mqtt_bad_id',
      `${kind} ${JSON.stringify(id)} cannot be used in an MQTT topic (allowed: letters, digits, _ . : @ -, at most 128)`,
    );
  }
  return String(id);
}

export function checkRoot(root: string): string {
  if (!ROOT_RE.test(root))
    throw new DialerError(
      'mqtt_bad_root',
      `MQTT topic root ${JSON.stringify(root)} is not valid (levels of letters, digits, _ . : @ -)`,
    );
  return root;
}

export class Topics {
  readonly root: string;
  constructor(root: string = DEFAULT_ROOT) {
    this.root = checkRoot(root);
  }
  /** Recent calls' event topics: a call publishes several events, each would rebuild and recheck its topic. */
  private readonly eventTopics = new Map<string | number, string>();
  callEvents(callId: string | number): string {
    let t = this.eventTopics.get(callId);
    if (t === undefined) {
      t = `${this.root}/calls/${level('call id', callId)}/events`;
      if (this.eventTopics.size >= 4096) this.eventTopics.clear();
      this.eventTopics.set(callId, t);
    }
    return t;
  }
  callControl(callId: string | number): string {
    return `${this.root}/calls/${level('call id', callId)}/control`;
  }
  campaignStatus(campaignId: string | number): string {
    return `${this.root}/campaigns/${level('campaign id', campaignId)}/status`;
  }
  campaignControl(campaignId: string | number): string {
    return `${this.root}/campaigns/${level('campaign id', campaignId)}/control`;
  }
  /** Filters a dashboard subscribes to. */
  get allCallEvents(): string {
    return `${this.root}/calls/+/events`;
  }
  get allCampaignStatus(): string {
    return `${this.root}/campaigns/+/status`;
  }
  get allCallControls(): string {
    return `${this.root}/calls/+/control`;
  }
  get allCampaignControls(): string {
    return `${this.root}/campaigns/+/control`;
  }
  get everything(): string {
    return `${this.root}/#`;
  }

  /** Recognise a topic of this tree. */
  parse(
    topic: string,
  ): { kind: 'call_events' | 'call_control' | 'campaign_status' | 'campaign_control'; id: string } | undefined {
    if (!topic.startsWith(this.root + '/')) return undefined;
    const rest = topic.slice(this.root.length + 1).split('/');
    if (rest.length !== 3 || !ID_RE.test(rest[1])) return undefined;
    const [coll, id, leaf] = rest;
    if (coll === 'calls' && leaf === 'events') return { kind: 'call_events', id };
    if (coll === 'calls' && leaf === 'control') return { kind: 'call_control', id };
    if (coll === 'campaigns' && leaf === 'status') return { kind: 'campaign_status', id };
    if (coll === 'campaigns' && leaf === 'control') return { kind: 'campaign_control', id };
    return undefined;
  }

  /** True when the topic is one of the control topics (writers only). */
  isControl(topic: string): boolean {
    const p = this.parse(topic);
    return !!p && (p.kind === 'call_control' || p.kind === 'campaign_control');
  }
}

export const topics = new Topics();
