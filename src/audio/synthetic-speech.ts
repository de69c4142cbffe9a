/**
 * A speech-like 8 kHz signal of plausible length for a text: the `sim` TTS engine's audio and the
 * simulator's synthetic callee voice (src/sim re-exports it). No process, no network, deterministic.
 */

export const SIM_RATE = 8000;

/** Plausible speaking time for a text: ~14 characters per second, at least 400 ms. */
export function speechDurationMs(text: string): number {
  const chars = text.trim().length;
  return Math.max(400, Math.round(chars * 70 + 150));
}

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  return h >>> 0;
}

/** Seconds of the shared base voice signal; utterances are slices of it. */
const BASE_SECONDS = 12;
let baseVoice: Int16Array | undefined;

/**
 * A voiced, syllable-modulated signal (harmonics of a gliding ~120 Hz pitch, ~4.5 syllables per
 * second, a little noise), computed once; each utterance is a slice of it at a text-dependent
 * offset with short fades. Not intelligible; it has the loudness pattern of speech, so energy-based
 * silence detection sees speech where there is text and silence where there is none. Cheap: a copy.
 */
function voice(): Int16Array {
  if (baseVoice) return baseVoice;
  const n = BASE_SECONDS * SIM_RATE;
  const out = new Int16Array(n);
  let seed = 0x9e3779b9;
  const rnd = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return ((seed >>> 0) / 4294967296) * 2 - 1;
  };
  let phase = 0;
  for (let i = 0; i < n; i++) {
    const t = i / SIM_RATE;
    const pitch = 120 * (1 + 0.08 * Math.sin(2 * Math.PI * 0.7 * t));
    phase += (2 * Math.PI * pitch) / SIM_RATE;
    const env = 0.55 + 0.45 * Math.sin(2 * Math.PI * 4.5 * t);
    const v = Math.sin(phase) * 0.6 + Math.sin(2 * phase) * 0.25 + Math.sin(3 * phase) * 0.12 + rnd() * 0.05;
    out[i] = Math.round(v * env * 9000);
  }
  return (baseVoice = out);
}

export function syntheticSpeech(text: string, durationMs = speechDurationMs(text)): Int16Array {
  const n = Math.round((durationMs * SIM_RATE) / 1000);
  const base = voice();
  const out = new Int16Array(n);
  let src = hash(text) % base.length;
  for (let o = 0; o < n;) {
    const take = Math.min(n - o, base.length - src);
    out.set(base.subarray(src, src + take), o);
    o += take;
    src = 0;
  }
  const fade = Math.min(240, n >> 1);
  for (let i = 0; i < fade; i++) {
    out[i] = Math.round((out[i] * i) / fade);
    out[n - 1 - i] = Math.round((out[n - 1 - i] * i) / fade);
  }
  return out;
}
