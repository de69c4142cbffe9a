/**
 * The `sim` TTS engine, for load tests and the simulator only (never a default): no process, no
 * network; a speech-like 8 kHz signal of plausible length for the text (the simulator's own
 * generator), with the text in a `simu` chunk so a simulated callee can "hear" what was said.
 * It makes TTS instant, so benchmarks measure the orchestration, not a synthesizer.
 */
import { encodeWav } from '../audio/wav';
import { SIM_RATE, syntheticSpeech } from '../audio/synthetic-speech';
import type { SynthOptions, TtsEngine } from './tts';

export class SimTtsEngine implements TtsEngine {
  readonly name = 'sim';
  readonly voice = 'synthetic';
  readonly identity = 'sim|1';
  async synthesize(text: string, _opts: SynthOptions): Promise<Buffer> {
    return encodeWav({ sampleRate: SIM_RATE, channels: 1, samples: syntheticSpeech(text) }, text);
  }
}
