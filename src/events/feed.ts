/**
 * The in-process feed of published events. Every event a Publisher sends (after the progress rate
 * limit, before the broker, whether or not the broker is reachable) is offered here with the exact
 * JSON it publishes, so the plain WebSocket monitor (/api/v1/live, src/api/live.ts) pushes the same
 * bytes as MQTT with no second schema and no broker round trip. The last campaign_progress of each
 * campaign is kept, as the broker keeps the retained status, for a client that joins later.
 *
 * One feed per process (kept on globalThis under a Symbol.for key), so the API plugin and the nodes
 * share it even when two copies of this module are loaded.
 */
import type { DialerEvent } from './builders';

export interface FeedItem {
  type: DialerEvent['type'];
  /** String form of the event's campaignId, or null. */
  campaignId: string | null;
  /** The JSON text published on MQTT, byte for byte. */
  payload: string;
}

export type FeedListener = (item: FeedItem) => void;

/** Campaigns whose last progress is kept (oldest forgotten first). */
export const MAX_RETAINED = 1000;

export class EventFeed {
  private readonly listeners = new Set<FeedListener>();
  private readonly progress = new Map<string, FeedItem>();

  /** Listen to every event from now on; returns the function that stops it. */
  subscribe(l: FeedListener): () => void {
    this.listeners.add(l);
    return () => {
      this.listeners.delete(l);
    };
  }

  get listenerCount(): number {
    return this.listeners.size;
  }

  /** Offer an event (its published JSON): listeners get it in order; a throwing listener harms no other. */
  publish(event: DialerEvent, payload: string): void {
    const campaignId = event.campaignId === null || event.campaignId === undefined ? null : String(event.campaignId);
    const item: FeedItem = { type: event.type, campaignId, payload };
    if (event.type === 'campaign_progress' && campaignId !== null) {
      this.progress.delete(campaignId);
      this.progress.set(campaignId, item);
      if (this.progress.size > MAX_RETAINED) this.progress.delete(this.progress.keys().next().value as string);
    }
    for (const l of this.listeners) {
      try {
        l(item);
      } catch {
        // a listener's failure is its own (the live monitor closes its client)
      }
    }
  }

  /** The last campaign_progress of each campaign, oldest first (what MQTT's retained status holds). */
  retained(): FeedItem[] {
    return [...this.progress.values()];
  }

  /** Forget the retained progress (tests). */
  clearRetained(): void {
    this.progress.clear();
  }
}

const KEY = Symbol.for('node-red-contrib-ai-dialer.event-feed');

/** The process's feed. */
export function eventFeed(): EventFeed {
  const g = globalThis as unknown as Record<symbol, EventFeed | undefined>;
  return (g[KEY] ??= new EventFeed());
}
