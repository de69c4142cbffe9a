import { encodeWav, parseWav, resample, toAsteriskWav, WavError } from '../../src/audio/wav';

function tone(rate: number, hz: number, seconds: number, amp = 8000): Int16Array {
  const s = new Int16Array(Math.round(rate * seconds));
  for (let i = 0; i < s.length; i++) s[i] = Math.round(amp * Math.sin((2 * Math.PI * hz * i) / rate));
  return s;
}

function rms(s: Int16Array, from = 0, to = s.length): number {
  let acc = 0;
  for (let i = from; i < to; i++) acc += s[i] * s[i];
  return Math.sqrt(acc / Math.max(1, to - from));
}

describe('wav', () => {
  test('encode writes every byte itself: the odd-length text chunk ends with a zero pad byte, the same input gives the same bytes', () => {
    const samples = tone(8000, 300, 0.01);
    const text = 'odd'; // 3 bytes: one pad byte
    // memory that is not zeroed: every byte left unwritten would show as 0xab / 0xcd
    const alloc = jest.spyOn(Buffer, 'allocUnsafe').mockImplementationOnce((n: number) => Buffer.alloc(n, 0xab));
    const a = encodeWav({ sampleRate: 8000, channels: 1, samples }, text);
    alloc.mockImplementationOnce((n: number) => Buffer.alloc(n, 0xcd));
    const b = encodeWav({ sampleRate: 8000, channels: 1, samples }, text);
    alloc.mockRestore();
    expect(a.equals(b)).toBe(true);
    expect(a.length).toBe(44 + samples.length * 2 + 8 + 4);
    expect(a[a.length - 1]).toBe(0);
    expect(a.subarray(a.length - 12, a.length - 8).toString('ascii')).toBe('simu');
    expect(a.readUInt32LE(a.length - 8)).toBe(3);
  });

  test('encode then parse keeps rate, channels, samples and the simulated text', () => {
    const samples = tone(8000, 440, 0.5);
    const buf = encodeWav({ sampleRate: 8000, channels: 1, samples }, 'héllo "there"');
    const w = parseWav(buf);
    expect(w.sampleRate).toBe(8000);
    expect(w.channels).toBe(1);
    expect(w.durationMs).toBe(500);
    expect(Array.from(w.samples.slice(0, 50))).toEqual(Array.from(samples.slice(0, 50)));
    expect(w.simText).toBe('héllo "there"');
  });

  test('samples are read and written byte for byte (little-endian), also from a data chunk at an odd offset', () => {
    const samples = Int16Array.from([0, 1, -1, 32767, -32768, 258, -259, 12345]);
    const buf = encodeWav({ sampleRate: 8000, channels: 1, samples });
    for (let i = 0; i < samples.length; i++) expect(buf.readInt16LE(44 + i * 2)).toBe(samples[i]);
    // a 3-byte LIST chunk (padded to 4) before the data, in a buffer that starts at an odd offset of its memory
    const list = Buffer.from('LIST\x03\x00\x00\x00abc\x00', 'latin1');
    const odd = Buffer.concat([Buffer.alloc(1), buf.subarray(0, 36), list, buf.subarray(36)]).subarray(1);
    odd.writeUInt32LE(odd.length - 8, 4);
    expect(Array.from(parseWav(odd).samples)).toEqual(Array.from(samples));
  });

  test('toAsteriskWav returns what is already 8 kHz mono 16-bit (with or without a simu chunk) unchanged, and converts the rest', () => {
    const samples = tone(8000, 440, 0.2);
    for (const text of [undefined, 'hi', 'odd']) {
      const buf = encodeWav({ sampleRate: 8000, channels: 1, samples }, text);
      expect(toAsteriskWav(buf)).toBe(buf);
    }
    const wide = encodeWav({ sampleRate: 16000, channels: 1, samples: tone(16000, 440, 0.2) });
    expect(parseWav(toAsteriskWav(wide)).sampleRate).toBe(8000);
    // a header that lies about its size is parsed and rewritten, not passed on
    const bad = Buffer.from(encodeWav({ sampleRate: 8000, channels: 1, samples }));
    bad.writeUInt32LE(bad.length, 4);
    const fixed = toAsteriskWav(bad);
    expect(fixed).not.toBe(bad);
    expect(fixed.readUInt32LE(4)).toBe(fixed.length - 8);
  });

  test('refuses what is not 16-bit PCM WAV with a clear error', () => {
    expect(() => parseWav(Buffer.from('not a wav at all'))).toThrow(WavError);
    const b = encodeWav({ sampleRate: 8000, channels: 1, samples: new Int16Array(10) });
    b.writeUInt16LE(8, 34); // 8 bits per sample
    expect(() => parseWav(b)).toThrow(/16-bit PCM expected/);
  });

  test.each([22050, 16000, 44100, 48000, 24000])(
    'resampling %i Hz to 8 kHz keeps speech band, removes what would alias',
    (rate) => {
      const pass = resample({ sampleRate: rate, channels: 1, samples: tone(rate, 1000, 1) }, 8000);
      expect(pass.sampleRate).toBe(8000);
      expect(Math.abs(pass.samples.length - 8000)).toBeLessThanOrEqual(1);
      // a 1 kHz tone passes at (almost) full level: 8000/sqrt(2) = 5657
      expect(rms(pass.samples, 200, 7800)).toBeGreaterThan(5000);
      // a 6 kHz tone is above the new Nyquist (4 kHz): dropping samples would fold it to 2 kHz; filtering removes it
      const stop = resample({ sampleRate: rate, channels: 1, samples: tone(rate, 6000, 1) }, 8000);
      expect(rms(stop.samples, 200, 7800)).toBeLessThan(150);
    },
  );

  test('toAsteriskWav gives 8 kHz mono 16-bit from a stereo 22.05 kHz file', () => {
    const mono = tone(22050, 500, 0.3);
    const stereo = new Int16Array(mono.length * 2);
    for (let i = 0; i < mono.length; i++) stereo[2 * i] = stereo[2 * i + 1] = mono[i];
    const out = parseWav(toAsteriskWav(encodeWav({ sampleRate: 22050, channels: 2, samples: stereo })));
    expect([out.sampleRate, out.channels, out.bitsPerSample]).toEqual([8000, 1, 16]);
    expect(out.durationMs).toBe(300);
  });
});
