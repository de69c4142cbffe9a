/**
 * Live media sessions by AGI session id (Node-RED clones msgs, so nodes carry only
 * `msg.call.sessionId` and find the call's media here, as they find its AGI session).
 */
import type { MediaSession } from './session';

const media = new Map<string, MediaSession>();

export function registerMedia(sessionId: string, m: MediaSession): void {
  media.set(sessionId, m);
  m.once('close', () => {
    if (media.get(sessionId) === m) media.delete(sessionId);
  });
}

/** The call's live media in stream mode, or undefined (record mode, or the media has ended). */
export function getMedia(sessionId: string | undefined): MediaSession | undefined {
  if (!sessionId) return undefined;
  const m = media.get(sessionId);
  return m && !m.closed ? m : undefined;
}

export function unregisterMedia(sessionId: string): void {
  media.delete(sessionId);
}

export function activeMediaCount(): number {
  return media.size;
}
