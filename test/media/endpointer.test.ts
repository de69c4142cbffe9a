/**
 * The endpointer on real audio: espeak-ng speech, resampled by sox to 8 kHz, placed at known positions in
 * silence and mixed with sox noise. The true boundaries come from the clean speech (before the noise), the
 * detected ones from the endpointer on the noisy mix; they must agree within 60 ms.
 */
import { execFileSync } from 'child_process';
import fs from 'fs';
import os from 'os';
import path from 'path';
import { parseWav } from '../../src/audio/wav';
import {
  Endpointer,
  endpointerOptions,
  frameDbfs,
  FRAME_SAMPLES,
  type EndpointEvent,
} from '../../src/media/endpointer';
import { Vad } from '../../src/media/vad';
import { describeWith } from '../helpers/tools';

function has(bin: string): boolean {
  try {
    execFileSync(bin, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'endpointer-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

let seq = 0;
/** espeak-ng speech as 8 kHz 16-bit mono samples (sox does the resampling). */
function speech(text: string, voice = 'en-us'): Int16Array {
  const raw = path.join(tmp, `s${++seq}.wav`);
  const out = path.join(tmp, `s${seq}-8k.wav`);
  execFileSync('espeak-ng', ['-v', voice, '-s', '160', '-w', raw, text]);
  execFileSync('sox', [raw, '-r', '8000', '-b', '16', '-c', '1', out]);
  return parseWav(fs.readFileSync(out)).samples;
}

/** sox noise (`pinknoise`, `whitenoise`, `brownnoise`) of `ms` at `gain` dB, 8 kHz. */
function noise(kind: string, ms: number, gainDb: number): Int16Array {
  const out = path.join(tmp, `n${++seq}.wav`);
  execFileSync('sox', [
    '-n',
    '-r',
    '8000',
    '-b',
    '16',
    '-c',
    '1',
    out,
    'synth',
    String(ms / 1000),
    kind,
    'gain',
    String(gainDb),
  ]);
  return parseWav(fs.readFileSync(out)).samples;
}

/** First and last sample of the clean speech above -40 dBFS in 5 ms windows (the ground truth), ms. */
function trueBounds(s: Int16Array): { startMs: number; endMs: number } {
  const w = 40;
  let first = -1;
  let last = -1;
  for (let i = 0; i + w <= s.length; i += w) {
    if (frameDbfs(s.subarray(i, i + w)) > -40) {
      if (first < 0) first = i;
      last = i + w;
    }
  }
  return { startMs: first / 8, endMs: last / 8 };
}

interface Placed {
  audio: Int16Array;
  truth: Array<{ startMs: number; endMs: number }>;
}

/** Silence, speech, silence... at known positions (ms). */
function timeline(parts: Array<number | Int16Array>): Placed {
  const total = parts.reduce<number>((n, p) => n + (typeof p === 'number' ? p * 8 : p.length), 0);
  const padded = Math.ceil(total / FRAME_SAMPLES) * FRAME_SAMPLES;
  const audio = new Int16Array(padded);
  const truth: Placed['truth'] = [];
  let at = 0;
  for (const p of parts) {
    if (typeof p === 'number') at += p * 8;
    else {
      audio.set(p, at);
      const b = trueBounds(p);
      truth.push({ startMs: at / 8 + b.startMs, endMs: at / 8 + b.endMs });
      at += p.length;
    }
  }
  return { audio, truth };
}

function mix(a: Int16Array, b: Int16Array, gainB = 1): Int16Array {
  const out = new Int16Array(a.length);
  for (let i = 0; i < a.length; i++) {
    const v = a[i] + (i < b.length ? b[i] * gainB : 0);
    out[i] = Math.max(-32768, Math.min(32767, Math.round(v)));
  }
  return out;
}

function run(ep: Endpointer, audio: Int16Array, playing?: Int16Array): EndpointEvent[] {
  const events: EndpointEvent[] = [];
  for (let i = 0; i + FRAME_SAMPLES <= audio.length; i += FRAME_SAMPLES) {
    const ref = playing && i + FRAME_SAMPLES <= playing.length ? playing.subarray(i, i + FRAME_SAMPLES) : null;
    events.push(...ep.push(audio.subarray(i, i + FRAME_SAMPLES), ref));
  }
  return events;
}

const utterances = (ev: EndpointEvent[]) =>
  ev.filter((e): e is Extract<EndpointEvent, { kind: 'utterance' }> => e.kind === 'utterance');
const starts = (ev: EndpointEvent[]) =>
  ev.filter((e): e is Extract<EndpointEvent, { kind: 'speech_start' }> => e.kind === 'speech_start');
const pauses = (ev: EndpointEvent[]) =>
  ev.filter((e): e is Extract<EndpointEvent, { kind: 'pause' }> => e.kind === 'pause');

describe('WebRTC VAD (libfvad as WebAssembly)', () => {
  test('silence is not speech; a wrong frame length and a wrong rate are errors', async () => {
    const vad = await Vad.create();
    expect(vad.isSpeech(new Int16Array(160))).toBe(false);
    expect(() => vad.isSpeech(new Int16Array(100))).toThrow(/10, 20 or 30 ms/);
    vad.close();
    expect(() => vad.isSpeech(new Int16Array(160))).toThrow(/closed/);
    await expect(Vad.create({ sampleRate: 11025 })).rejects.toThrow(/sample rate/);
  });
});

describe('endpointer settings', () => {
  test('node setting over environment over default; out-of-range values are clamped', () => {
    expect(endpointerOptions({}, {})).toMatchObject({ endSilenceMs: 600, minSpeechMs: 120, maxUtteranceMs: 30000 });
    const env = { STREAM_END_SILENCE_MS: '700', STREAM_MIN_SPEECH_MS: '200', STREAM_MAX_UTTERANCE_MS: '15000' };
    expect(endpointerOptions({}, env)).toMatchObject({ endSilenceMs: 700, minSpeechMs: 200, maxUtteranceMs: 15000 });
    expect(endpointerOptions({ endSilenceMs: '500', minSpeechMs: '', maxUtteranceMs: 'x' }, env)).toMatchObject({
      endSilenceMs: 500,
      minSpeechMs: 200,
      maxUtteranceMs: 15000,
    });
    expect(endpointerOptions({ endSilenceMs: 1 }, {}).endSilenceMs).toBe(100);
    expect(endpointerOptions({}, {}).earlyMs).toBe(300);
    expect(endpointerOptions({}, { STREAM_EARLY_STT_MS: '0' }).earlyMs).toBe(0);
    expect(endpointerOptions({ earlyMs: '250' }, { STREAM_EARLY_STT_MS: '0' }).earlyMs).toBe(250);
  });

  test('a frame that is not 160 samples is refused', async () => {
    const ep = await Endpointer.create();
    expect(() => ep.push(new Int16Array(320))).toThrow(/160 samples/);
    ep.close();
  });
});

describeWith(
  'espeak-ng and sox',
  has('espeak-ng') && has('sox'),
  'apt-get install espeak-ng sox',
)('endpointing real speech', () => {
  const a = speech('Hello, this is Anna. I am calling about your appointment next week.');
  const b = speech('Yes, that works for me. Thank you.');

  // speech is about -24 dBFS RMS; the noise RMS is about 9 dB (pink, white) or 5 dB (brown) below the gain
  test.each([
    ['pink noise at -40 dB', 'pinknoise', -40],
    ['pink noise at -30 dB', 'pinknoise', -30],
    ['white noise at -45 dB', 'whitenoise', -45],
    ['white noise at -35 dB', 'whitenoise', -35],
    ['brown noise at -35 dB', 'brownnoise', -35],
    ['brown noise at -25 dB', 'brownnoise', -25],
  ])('two utterances in %s: boundaries within 60 ms', async (_name, kind, gain) => {
    const t = timeline([1000, a, 1500, b, 1200]);
    const noisy = mix(t.audio, noise(kind as string, t.audio.length / 8, gain as number));
    const ep = await Endpointer.create();
    const ev = run(ep, noisy);
    const u = utterances(ev);
    const s = starts(ev);
    expect(u).toHaveLength(2);
    expect(s).toHaveLength(2);
    for (let k = 0; k < 2; k++) {
      expect(Math.abs(u[k].startMs - t.truth[k].startMs)).toBeLessThanOrEqual(60);
      expect(Math.abs(u[k].endMs - t.truth[k].endMs)).toBeLessThanOrEqual(60);
      expect(s[k].atMs).toBe(u[k].startMs);
      expect(u[k].reason).toBe('silence');
      // the audio is the utterance with 100 ms either side
      expect(u[k].audio.length).toBe((u[k].endMs - u[k].startMs + 200) * 8);
    }
    ep.close();
  });

  test("an utterance's audio and the speech so far are exactly what came in (a long utterance, then a short one)", async () => {
    // `a` lasts far longer than the 640 ms the endpointer holds at first: its store grows, then shrinks back
    const t = timeline([700, a, 900, b, 800]);
    const ep = await Endpointer.create();
    const got: Array<Extract<EndpointEvent, { kind: 'utterance' }>> = [];
    let checkedSoFar = 0;
    for (let i = 0; i + FRAME_SAMPLES <= t.audio.length; i += FRAME_SAMPLES) {
      const ev = ep.push(t.audio.subarray(i, i + FRAME_SAMPLES));
      for (const e of ev) {
        if (e.kind === 'utterance') got.push(e);
        else if (e.kind === 'speech_start') {
          expect(ep.speechAudio()).toEqual(t.audio.slice((e.atMs - 100) * 8, i + FRAME_SAMPLES));
          checkedSoFar++;
        }
      }
    }
    expect(got).toHaveLength(2);
    expect(checkedSoFar).toBe(2);
    expect(got[0].endMs - got[0].startMs).toBeGreaterThan(2600);
    for (const u of got) expect(u.audio).toEqual(t.audio.slice((u.startMs - 100) * 8, (u.endMs + 100) * 8));
    ep.close();
  });

  test('the utterance event comes endSilenceMs after the end of speech; settings change it', async () => {
    const t = timeline([800, a, 2000]);
    for (const endSilenceMs of [500, 700]) {
      const ep = await Endpointer.create({ endSilenceMs });
      let at = -1;
      for (let i = 0; i + FRAME_SAMPLES <= t.audio.length; i += FRAME_SAMPLES) {
        const ev = ep.push(t.audio.subarray(i, i + FRAME_SAMPLES));
        if (utterances(ev).length) {
          at = ep.nowMs;
          expect(at - utterances(ev)[0].endMs).toBe(endSilenceMs);
        }
      }
      expect(at).toBeGreaterThan(0);
      ep.close();
    }
  });

  test('early transcription: `pause` comes earlyMs after the speech with exactly the audio the utterance then has', async () => {
    // one breath, no pause inside (espeak-ng pauses over 300 ms at a full stop)
    const t = timeline([700, speech('Tuesday at ten works for me'), 1500]);
    const ep = await Endpointer.create();
    const seen: Array<{ at: number; ev: EndpointEvent }> = [];
    for (let i = 0; i + FRAME_SAMPLES <= t.audio.length; i += FRAME_SAMPLES)
      for (const ev of ep.push(t.audio.subarray(i, i + FRAME_SAMPLES))) seen.push({ at: ep.nowMs, ev });
    const p = seen.filter((s) => s.ev.kind === 'pause');
    const u = seen.filter((s) => s.ev.kind === 'utterance');
    expect(p).toHaveLength(1);
    expect(u).toHaveLength(1);
    const pe = p[0].ev as Extract<EndpointEvent, { kind: 'pause' }>;
    const ue = u[0].ev as Extract<EndpointEvent, { kind: 'utterance' }>;
    expect(p[0].at - pe.endMs).toBe(300);
    expect(u[0].at - ue.endMs).toBe(600);
    expect([pe.startMs, pe.endMs]).toEqual([ue.startMs, ue.endMs]);
    expect(pe.audio).toEqual(ue.audio);
    expect(seen.some((s) => s.ev.kind === 'resume')).toBe(false);
    ep.close();
    // off: no pause
    const off = await Endpointer.create({ earlyMs: 0 });
    expect(pauses(run(off, t.audio))).toEqual([]);
    off.close();
  });

  test('early transcription: a pause mid-sentence (400 ms) gives `pause`, then `resume`, and one utterance of the whole', async () => {
    const first = speech('I would like to book');
    const rest = speech('an appointment for Tuesday.');
    const f = trueBounds(first);
    const r = trueBounds(rest);
    // 400 ms between the true end of the first part and the true start of the rest
    const gap = Math.round(400 - (first.length / 8 - f.endMs) - r.startMs);
    expect(gap).toBeGreaterThan(0);
    const t = timeline([700, first, gap, rest, 1200]);
    const ep = await Endpointer.create();
    const ev = run(ep, t.audio);
    const kinds = ev.map((e) => e.kind).filter((k) => k !== 'speech_start');
    // the last pause is the one after the whole utterance
    expect(kinds.slice(0, 2)).toEqual(['pause', 'resume']);
    expect(kinds[kinds.length - 1]).toBe('utterance');
    const u = utterances(ev);
    expect(u).toHaveLength(1);
    const p = pauses(ev);
    expect(p[0].endMs).toBeLessThan(u[0].endMs - 500);
    expect(p[0].audio.length).toBeLessThan(u[0].audio.length);
    expect(Math.abs(u[0].endMs - t.truth[1].endMs)).toBeLessThanOrEqual(60);
    ep.close();
  });

  test('noise alone and a short click are not speech', async () => {
    const ep = await Endpointer.create();
    const n = noise('pinknoise', 5000, -40);
    const click = new Int16Array(8000);
    for (let i = 4000; i < 4400; i++) click[i] = i % 2 ? 12000 : -12000;
    expect(run(ep, mix(n, click))).toEqual([]);
    expect(ep.isSpeaking()).toBe(false);
    ep.close();
  });

  test('maximum utterance cuts a long one; minimum speech drops a short one', async () => {
    const t = timeline([500, a, 1000]);
    const ep = await Endpointer.create({ maxUtteranceMs: 1500 });
    const u = utterances(run(ep, t.audio));
    expect(u[0].reason).toBe('max');
    expect(u[0].endMs - u[0].startMs).toBe(1500);
    expect(u.length).toBeGreaterThanOrEqual(2);
    ep.close();
    const short = timeline([500, speech('uh'), 1000]);
    const strict = await Endpointer.create({ minSpeechMs: 600 });
    expect(run(strict, short.audio)).toEqual([]);
    strict.close();
  });

  test('isSpeaking follows the caller; reset restarts the clock', async () => {
    const t = timeline([500, b, 1000]);
    const ep = await Endpointer.create();
    let seen = false;
    for (let i = 0; i + FRAME_SAMPLES <= t.audio.length; i += FRAME_SAMPLES) {
      const ev = ep.push(t.audio.subarray(i, i + FRAME_SAMPLES));
      if (starts(ev).length) expect(ep.isSpeaking()).toBe(true);
      if (ep.isSpeaking()) seen = true;
    }
    expect(seen).toBe(true);
    expect(ep.isSpeaking()).toBe(false);
    ep.reset();
    expect(ep.nowMs).toBe(0);
    const first = utterances(run(ep, t.audio));
    ep.reset();
    expect(utterances(run(ep, t.audio))).toEqual(first);
    ep.close();
  });

  describe('echo of our own prompt (barge-in)', () => {
    const prompt = speech('Thank you for taking my call. I would like to tell you about our new offer today.');

    test('the prompt looped back at -20 dB is not speech when the endpointer knows what it plays', async () => {
      const echo = new Int16Array(prompt.length + 1600);
      // 60 ms of line delay
      for (let i = 0; i < prompt.length; i++) echo[i + 480] = Math.round(prompt[i] * 0.1);
      const line = mix(echo, noise('pinknoise', echo.length / 8, -50));
      const ep = await Endpointer.create();
      expect(starts(run(ep, line, prompt))).toEqual([]);
      ep.close();
      // the same audio without the reference IS speech to a VAD: the echo rule is what keeps it out
      const blind = await Endpointer.create();
      expect(starts(run(blind, line)).length).toBeGreaterThan(0);
      blind.close();
    });

    // Over the echo the caller's quiet onset is masked, so detection may come a few frames later than in
    // silence (measured 80 ms here); barge-in stops playback within 100 ms of this detection.
    test('the caller talking over the echoed prompt is speech, detected within 100 ms of its start', async () => {
      const echo = new Int16Array(prompt.length + 1600);
      for (let i = 0; i < prompt.length; i++) echo[i + 480] = Math.round(prompt[i] * 0.1);
      const caller = timeline([1500, b, 500]);
      const line = mix(mix(echo, caller.audio), noise('pinknoise', echo.length / 8, -50));
      const ep = await Endpointer.create();
      const s = starts(run(ep, line, prompt));
      expect(s.length).toBeGreaterThan(0);
      expect(Math.abs(s[0].atMs - caller.truth[0].startMs)).toBeLessThanOrEqual(100);
      ep.close();
    });
  });
});
