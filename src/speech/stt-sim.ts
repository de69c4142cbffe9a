/**
 * The embedded demo's STT: reads back the utterance text the simulator embeds in its recordings
 * (the `simu` RIFF chunk). Marked `simulated: true` so every place that shows the text can say so.
 * Chosen only explicitly (`sim`) or, with no engine set, when no real Asterisk is configured.
 */
import type { SttEngine, SttRequest } from './stt';

export class SimSttEngine implements SttEngine {
  readonly name = 'sim';
  async recognize(req: SttRequest): Promise<{ text: string; simulated: true }> {
    return { text: req.audio.simText ?? '', simulated: true };
  }
}
