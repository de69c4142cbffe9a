/**
 * Crash reconciliation against Asterisk: is a call still live there? ari-originate names every
 * channel `aid-<call id>-<random>`, so a call is live when a channel with that prefix (or the
 * channel id stored on the call) exists. The channel list is fetched once per burst of checks.
 */
export interface ChannelLike {
  id: string;
}

export function ariLivenessChecker(
  listChannels: () => Promise<ChannelLike[]>,
  cacheMs = 2000,
): (call: { id: number; channelId: string | null }) => Promise<boolean> {
  let cached: { at: number; ids: string[] } | undefined;
  return async (call) => {
    if (!cached || Date.now() - cached.at > cacheMs) {
      const list = await listChannels(); // throws when Asterisk is unreachable: the caller then leaves the call alone
      cached = { at: Date.now(), ids: list.map((c) => String(c.id)) };
    }
    const prefix = `aid-${String(call.id)
      .replace(/[^A-Za-z0-9_-]/g, '_')
      .slice(0, 64)}-`;
    return cached.ids.some((id) => id === call.channelId || id.startsWith(prefix));
  };
}
