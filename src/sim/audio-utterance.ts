/**
 * Audio for simulated callee utterances: 8 kHz mono 16-bit PCM, either a cheap synthetic
 * speech-like signal of plausible length (default; no process spawned, deterministic, cached), or
 * real speech from espeak-ng (opt-in, cached per text, falls back to synthetic when not installed).
 */
import { spawn } from 'child_process';
import { parseWav, resample } from '../audio/wav';

export { SIM_RATE, speechDurationMs, syntheticSpeech } from '../audio/synthetic-speech';
import { SIM_RATE, syntheticSpeech } from '../audio/synthetic-speech';

/** Frame length the simulator reasons in, like Asterisk's 20 ms slin frames. */
export const FRAME_MS = 20;
export const FRAME_SAMPLES = (SIM_RATE * FRAME_MS) / 1000;

export type SimSpeech = 'synthetic' | 'espeak';

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
