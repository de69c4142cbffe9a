/**
 * Simulator runs only: what a simulated callee said, by AudioSocket uuid and stream time. The
 * simulator's AudioSocket side notes each utterance it streams; the media session looks the text up
 * for the utterance it cut, so the `sim` STT engine can read it back (as it reads the `simu` chunk of
 * a simulated recording). Nothing is noted outside simulator runs, so production lookups find nothing.
 */
interface Said {
  startMs: number;
  endMs: number;
  text: string;
}

const byUuid = new Map<string, Said[]>();
const MAX_CALLS = 20000;

export function noteSimSpeech(uuid: string, startMs: number, endMs: number, text: string): void {
  const key = uuid.toLowerCase();
  let list = byUuid.get(key);
  if (!list) {
    if (byUuid.size >= MAX_CALLS) byUuid.delete(byUuid.keys().next().value as string);
    byUuid.set(key, (list = []));
  }
  list.push({ startMs, endMs, text });
  if (list.length > 64) list.shift();
}

/** The texts said overlapping [startMs, endMs] (joined), or undefined when nothing was noted. */
export function simTextFor(uuid: string, startMs: number, endMs: number): string | undefined {
  const list = byUuid.get(uuid.toLowerCase());
  if (!list) return undefined;
  const hit = list.filter((s) => s.startMs < endMs + 200 && s.endMs > startMs - 200).map((s) => s.text);
  return hit.length ? hit.join(' ') : undefined;
}

export function forgetSimSpeech(uuid: string): void {
  byUuid.delete(uuid.toLowerCase());
}
