/**
 * Audio for simulated callee utterances: 8 kHz mono 16-bit PCM, either a cheap synthetic
 * speech-like signal of plausible length (default; no process spawned, deterministic, cached), or
 * real speech from espeak-ng (opt-in, cached per text, falls back to synthetic when not installed).
 */
import { spawn } from 'child_process';
import { parseWav, resample } from '../audio/wav';

export const SIM_RATE = 8000;
/** Frame length the simulator reasons in, like Asterisk's 20 ms slin frames. */
export const FRAME_MS = 20;
export const FRAME_SAMPLES = (SIM_RATE * FRAME_MS) / 1000;

export type SimSpeech = 'synthetic' | 'espeak';

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

const cache = new Map<string, Int16Array>();
const CACHE_MAX = 256;

function remember(key: string, v: Int16Array): Int16Array {
  if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value as string);
  cache.set(key, v);
  return v;
}

let espeakMissing = false;

function espeak(text: string, timeoutMs = 10000): Promise<Int16Array | undefined> {
  if (espeakMissing) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (v: Int16Array | undefined) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(v);
    };
    // Text goes on stdin, never in argv, so it cannot become an option.
    const child = spawn('espeak-ng', ['--stdout', '-v', 'en-us', '-s', '165', '--stdin'], {
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish(undefined);
    }, timeoutMs);
    child.on('error', (e: Error & { code?: string }) => {
      if (e.code === 'ENOENT') espeakMissing = true;
      finish(undefined);
    });
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.on('close', (code) => {
      if (code !== 0) return finish(undefined);
      try {
        finish(resample(parseWav(Buffer.concat(chunks)), SIM_RATE).samples);
      } catch {
        finish(undefined);
      }
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(text);
  });
}

/** 8 kHz samples of `text` being said (cached per engine and text). */
export async function utteranceAudio(text: string, speech: SimSpeech = 'synthetic'): Promise<Int16Array> {
  const key = `${speech}\u0000${text}`;
  const hit = cache.get(key);
  if (hit) return hit;
  if (speech === 'espeak') {
    const real = await espeak(text);
    if (real && real.length > 0) return remember(key, real);
  }
  return remember(key, syntheticSpeech(text));
}

/** True when a 20 ms frame is silent by energy (what Asterisk's DSP silence threshold decides). */
export function isSilentFrame(samples: Int16Array, start: number, threshold = 256): boolean {
  const end = Math.min(samples.length, start + FRAME_SAMPLES);
  if (end <= start) return true;
  let sum = 0;
  for (let i = start; i < end; i++) sum += Math.abs(samples[i]);
  return sum / (end - start) < threshold;
}
