/**
 * WAV (RIFF) reading and writing for what Asterisk plays and records: PCM 16-bit little endian.
 * Also carries the simulator's `simu` chunk (UTF-8 text of a simulated utterance).
 */

export interface PcmAudio {
  sampleRate: number;
  channels: number;
  /** Interleaved 16-bit samples. */
  samples: Int16Array;
}

export interface ParsedWav extends PcmAudio {
  bitsPerSample: number;
  durationMs: number;
  /** Text of the `simu` chunk when present (simulated utterance). */
  simText?: string;
}

export class WavError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WavError';
  }
}

/** WAV samples are little-endian 16-bit: on a little-endian host they are copied as bytes, not one by one. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Parse a RIFF/WAVE buffer with 16-bit PCM data. Throws WavError on anything else. */
export function parseWav(buf: Buffer): ParsedWav {
  if (buf.length < 12 || buf.toString('ascii', 0, 4) !== 'RIFF' || buf.toString('ascii', 8, 12) !== 'WAVE') {
    throw new WavError('not a RIFF/WAVE file');
  }
  let off = 12;
  let fmt: { format: number; channels: number; sampleRate: number; bits: number } | undefined;
  let data: Buffer | undefined;
  let simText: string | undefined;
  while (off + 8 <= buf.length) {
    const id = buf.toString('ascii', off, off + 4);
    let size = buf.readUInt32LE(off + 4);
    const start = off + 8;
    // Streams written before their length was known (e.g. by a pipe) carry 0 or 0xFFFFFFFF.
    if (id === 'data' && (size === 0 || size === 0xffffffff || start + size > buf.length)) size = buf.length - start;
    const body = buf.subarray(start, Math.min(buf.length, start + size));
    if (id === 'fmt ') {
      if (body.length < 16) throw new WavError('fmt chunk too short');
      fmt = {
        format: body.readUInt16LE(0),
        channels: body.readUInt16LE(2),
        sampleRate: body.readUInt32LE(4),
        bits: body.readUInt16LE(14),
      };
    } else if (id === 'data') {
      data = body;
    } else if (id === 'simu') {
      simText = body.toString('utf8');
    }
    off = start + size + (size % 2);
  }
  if (!fmt) throw new WavError('missing fmt chunk');
  if (!data) throw new WavError('missing data chunk');
  // 1 = PCM, 0xFFFE = WAVE_FORMAT_EXTENSIBLE (espeak-ng and sox may write it for PCM too)
  if ((fmt.format !== 1 && fmt.format !== 0xfffe) || fmt.bits !== 16) {
    throw new WavError(`unsupported WAV encoding (format ${fmt.format}, ${fmt.bits} bits); 16-bit PCM expected`);
  }
  const count = Math.floor(data.length / 2);
  const samples = new Int16Array(count);
  if (LITTLE_ENDIAN) {
    // one copy of the bytes (the data chunk may sit at an odd offset, so no view on the buffer)
    new Uint8Array(samples.buffer).set(data.subarray(0, count * 2));
  } else for (let i = 0; i < count; i++) samples[i] = data.readInt16LE(i * 2);
  const frames = count / fmt.channels;
  return {
    sampleRate: fmt.sampleRate,
    channels: fmt.channels,
    bitsPerSample: 16,
    samples,
    durationMs: fmt.sampleRate > 0 ? Math.round((frames * 1000) / fmt.sampleRate) : 0,
    simText,
  };
}

/** Encode PCM as a 16-bit WAV; `simText` adds a `simu` chunk after the data. */
export function encodeWav(audio: PcmAudio, simText?: string): Buffer {
  const dataLen = audio.samples.length * 2;
  const simBuf = simText !== undefined ? Buffer.from(simText, 'utf8') : undefined;
  const simLen = simBuf ? 8 + simBuf.length + (simBuf.length % 2) : 0;
  // every byte is written below (header, samples, the chunk and its pad byte): no zero fill first
  const buf = Buffer.allocUnsafe(44 + dataLen + simLen);
  buf.write('RIFF', 0, 'ascii');
  buf.writeUInt32LE(36 + dataLen + simLen, 4);
  buf.write('WAVE', 8, 'ascii');
  buf.write('fmt ', 12, 'ascii');
  buf.writeUInt32LE(16, 16);
  buf.writeUInt16LE(1, 20);
  buf.writeUInt16LE(audio.channels, 22);
  buf.writeUInt32LE(audio.sampleRate, 24);
  buf.writeUInt32LE(audio.sampleRate * audio.channels * 2, 28);
  buf.writeUInt16LE(audio.channels * 2, 32);
  buf.writeUInt16LE(16, 34);
  buf.write('data', 36, 'ascii');
  buf.writeUInt32LE(dataLen, 40);
  const smp = audio.samples;
  if (LITTLE_ENDIAN) buf.set(new Uint8Array(smp.buffer, smp.byteOffset, dataLen), 44);
  else for (let i = 0; i < smp.length; i++) buf.writeInt16LE(smp[i], 44 + i * 2);
  if (simBuf) {
    const o = 44 + dataLen;
    buf.write('simu', o, 'ascii');
    buf.writeUInt32LE(simBuf.length, o + 4);
    simBuf.copy(buf, o + 8);
    if (simBuf.length % 2) buf[o + 8 + simBuf.length] = 0;
  }
  return buf;
}

/** Mix interleaved channels down to mono. */
export function toMono(audio: PcmAudio): PcmAudio {
  if (audio.channels === 1) return audio;
  const frames = Math.floor(audio.samples.length / audio.channels);
  const out = new Int16Array(frames);
  for (let f = 0; f < frames; f++) {
    let sum = 0;
    for (let c = 0; c < audio.channels; c++) sum += audio.samples[f * audio.channels + c];
    out[f] = Math.round(sum / audio.channels);
  }
  return { sampleRate: audio.sampleRate, channels: 1, samples: out };
}

/**
 * Resample mono PCM with a windowed-sinc low-pass filter (band-limited, so downsampling to 8 kHz
 * does not alias). Not sample dropping. For a rational ratio L/M the filter phase repeats every L
 * outputs, so each phase's kernel is computed once (polyphase); the edges, where the window is
 * clipped, use the direct formula.
 */
export function resample(audio: PcmAudio, targetRate: number): PcmAudio {
  const mono = toMono(audio);
  const src = mono.samples;
  const from = mono.sampleRate;
  if (from === targetRate) return mono;
  const ratio = targetRate / from;
  const outLen = Math.floor(src.length * ratio);
  const out = new Int16Array(outLen);
  const cutoff = Math.min(1, ratio) * 0.95; // normalised to the source Nyquist
  const width = Math.ceil(16 / cutoff); // taps on each side, in source samples
  const taps = 2 * width;
  const kernel = (d: number): number => {
    const x = d * cutoff;
    const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
    return sinc * (0.5 + 0.5 * Math.cos((Math.PI * d) / (width + 1))); // Hann window
  };
  const clip = (v: number) => (v > 32767 ? 32767 : v < -32768 ? -32768 : Math.round(v));
  const direct = (i: number): number => {
    const center = i / ratio;
    const lo = Math.max(0, Math.floor(center) - width + 1);
    const hi = Math.min(src.length - 1, Math.floor(center) + width);
    let acc = 0;
    let norm = 0;
    for (let j = lo; j <= hi; j++) {
      const k = kernel(j - center);
      acc += src[j] * k;
      norm += k;
    }
    return norm !== 0 ? acc / norm : 0;
  };
  const g = gcd(from, targetRate);
  const L = targetRate / g; // outputs per period
  const M = from / g; // inputs per period
  if (L > 4000) {
    for (let i = 0; i < outLen; i++) out[i] = clip(direct(i));
    return { sampleRate: targetRate, channels: 1, samples: out };
  }
  const kernels = new Float64Array(L * taps);
  for (let p = 0; p < L; p++) {
    const center = (p * M) / L;
    const frac = center - Math.floor(center);
    let norm = 0;
    for (let t = 0; t < taps; t++) norm += kernels[p * taps + t] = kernel(t - width + 1 - frac);
    for (let t = 0; t < taps; t++) kernels[p * taps + t] /= norm;
  }
  for (let i = 0; i < outLen; i++) {
    const p = i % L;
    const base = ((i - p) / L) * M + Math.floor((p * M) / L); // floor(i / ratio), exact in integers
    const lo = base - width + 1;
    if (lo >= 0 && base + width <= src.length - 1) {
      let acc = 0;
      const k = p * taps;
      for (let t = 0; t < taps; t++) acc += src[lo + t] * kernels[k + t];
      out[i] = clip(acc);
    } else {
      out[i] = clip(direct(i));
    }
  }
  return { sampleRate: targetRate, channels: 1, samples: out };
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** Convert any 16-bit PCM WAV to what Asterisk plays: 8 kHz, 16-bit, mono. */
export function toAsteriskWav(buf: Buffer): Buffer {
  // already what Asterisk plays, as encodeWav writes it (44-byte header, 8 kHz mono 16-bit PCM): as is
  if (isAsteriskWav(buf)) return buf;
  const parsed = parseWav(buf);
  return encodeWav(resample(parsed, 8000), parsed.simText);
}

/**
 * True when `buf` is exactly encodeWav's layout at 8 kHz mono 16-bit PCM (RIFF size and data size consistent,
 * then at most a `simu` chunk): converting it would give the same bytes back.
 */
function isAsteriskWav(buf: Buffer): boolean {
  if (buf.length < 44 || buf.toString('ascii', 0, 4) !== 'RIFF' || buf.toString('ascii', 8, 16) !== 'WAVEfmt ')
    return false;
  if (buf.readUInt32LE(4) !== buf.length - 8 || buf.readUInt32LE(16) !== 16) return false;
  if (buf.readUInt16LE(20) !== 1 || buf.readUInt16LE(22) !== 1 || buf.readUInt32LE(24) !== 8000) return false;
  if (buf.readUInt32LE(28) !== 16000 || buf.readUInt16LE(32) !== 2 || buf.readUInt16LE(34) !== 16) return false;
  if (buf.toString('ascii', 36, 40) !== 'data') return false;
  const dataLen = buf.readUInt32LE(40);
  if (dataLen % 2 !== 0 || 44 + dataLen > buf.length) return false;
  const rest = buf.length - 44 - dataLen;
  if (rest === 0) return true;
  if (rest < 8 || buf.toString('ascii', 44 + dataLen, 48 + dataLen) !== 'simu') return false;
  const simLen = buf.readUInt32LE(48 + dataLen);
  return 8 + simLen + (simLen % 2) === rest;
}

export interface WavHeaderInfo {
  format: number;
  channels: number;
  sampleRate: number;
  bitsPerSample: number;
  byteRate: number;
  /** Bytes of audio in the data chunk (clipped to the file's size). */
  dataBytes: number;
}

/**
 * The fmt and data chunks of a WAV from its first bytes (`head`, e.g. the first 4 KB) and the file's
 * size, without reading the audio: for a length or a format check. Undefined when they are not there.
 */
export function wavHeaderInfo(head: Buffer, fileSize: number): WavHeaderInfo | undefined {
  if (head.length < 12 || head.toString('ascii', 0, 4) !== 'RIFF' || head.toString('ascii', 8, 12) !== 'WAVE')
    return undefined;
  let off = 12;
  let fmt: Omit<WavHeaderInfo, 'dataBytes'> | undefined;
  while (off + 8 <= head.length) {
    const id = head.toString('ascii', off, off + 4);
    const size = head.readUInt32LE(off + 4);
    if (id === 'fmt ' && off + 24 <= head.length)
      fmt = {
        format: head.readUInt16LE(off + 8),
        channels: head.readUInt16LE(off + 10),
        sampleRate: head.readUInt32LE(off + 12),
        byteRate: head.readUInt32LE(off + 16),
        bitsPerSample: head.readUInt16LE(off + 22),
      };
    if (id === 'data') {
      if (!fmt) return undefined;
      const avail = Math.max(0, fileSize - off - 8);
      // streams written before their length was known carry 0 or 0xFFFFFFFF
      const bytes = size === 0 || size === 0xffffffff ? avail : Math.min(size, avail);
      return { ...fmt, dataBytes: bytes };
    }
    off += 8 + size + (size % 2);
  }
  return undefined;
}
