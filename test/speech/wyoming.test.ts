/**
 * The Wyoming engines against a Wyoming server written here (test/helpers/wyoming-server.ts) over a real
 * TCP socket: describe/info, synthesize at 22050 Hz -> 8 kHz WAV in the cache (and a hit the second
 * time), chunks delivered one by one, transcribe, and the faults: malformed headers and data, lying
 * lengths, a connection dropped mid-audio, an unknown voice, timeouts, abort, nobody listening.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import net from 'net';
import { parseWav, encodeWav } from '../../src/audio/wav';
import { StageError } from '../../src/util/errors';
import { AudioCache } from '../../src/speech/tts-cache';
import { TtsService, createTtsEngine } from '../../src/speech/tts';
import { createSttEngine, transcribe } from '../../src/speech/stt';
import {
  EventParser,
  WyomingSttEngine,
  WyomingTtsEngine,
  encodeEvent,
  synthesizeWav,
  type AudioChunk,
} from '../../src/speech/wyoming';
import { TestWyomingServer, event, inlineEvent, piperLike, tonePcm, type Handler } from '../helpers/wyoming-server';
import { waitFor } from '../helpers/wait';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-wyoming-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const servers: TestWyomingServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});
async function serve(handler: Handler): Promise<TestWyomingServer> {
  const s = await new TestWyomingServer(handler).start();
  servers.push(s);
  return s;
}

async function failure(p: Promise<unknown>): Promise<StageError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(StageError);
    return err as StageError;
  }
  throw new Error('expected a failure');
}

/** Zero crossings per second of mono 16-bit samples: about twice the frequency of a pure tone. */
function crossingsPerSecond(samples: Int16Array, rate: number): number {
  let n = 0;
  for (let i = 1; i < samples.length; i++) if (samples[i - 1] < 0 !== samples[i] < 0) n++;
  return (n * rate) / samples.length;
}

let cacheN = 0;
function service(engine: WyomingTtsEngine, timeoutMs = 5000): TtsService {
  return new TtsService(engine, new AudioCache(path.join(tmp, `cache-${++cacheN}`)), timeoutMs);
}

describe('event codec', () => {
  test('encodeEvent writes header line, data section and payload; the parser reads it back split anywhere', () => {
    const payload = Buffer.from([1, 2, 3, 4]);
    const bytes = encodeEvent('audio-chunk', { rate: 22050, width: 2, channels: 1 }, payload);
    const nl = bytes.indexOf(10);
    const header = JSON.parse(bytes.subarray(0, nl).toString());
    expect(header).toMatchObject({ type: 'audio-chunk', payload_length: 4 });
    const data = bytes.subarray(nl + 1, nl + 1 + header.data_length).toString();
    expect(JSON.parse(data)).toEqual({ rate: 22050, width: 2, channels: 1 });
    expect(bytes.subarray(nl + 1 + header.data_length)).toEqual(payload);
    // byte by byte, two events back to back, and inline data (1.x style)
    const two = Buffer.concat([bytes, inlineEvent('transcript', { text: 'hi' })]);
    const p = new EventParser();
    const got = [];
    for (const b of two) got.push(...p.push(Buffer.from([b])));
    expect(got).toEqual([
      { type: 'audio-chunk', data: { rate: 22050, width: 2, channels: 1 }, payload },
      { type: 'transcript', data: { text: 'hi' } },
    ]);
    expect(p.midEvent).toBe(false);
    // data_length counts bytes, not characters (UTF-8 text, as the reference writes it unescaped)
    const text = 'Grüße aus Köln 👋';
    const utf = encodeEvent('synthesize', { text });
    const h = JSON.parse(utf.subarray(0, utf.indexOf(10)).toString());
    expect(h.data_length).toBe(Buffer.byteLength(JSON.stringify({ text })));
    expect(h.data_length).toBeGreaterThan(JSON.stringify({ text }).length);
    expect(new EventParser().push(utf)).toEqual([{ type: 'synthesize', data: { text } }]);
  });

  test('malformed events are refused: bad JSON, not an object, no type, bad lengths, limits', () => {
    const cases: Array<[string | Buffer, RegExp]> = [
      ['{"type": "info", \n', /header is not JSON/],
      ['[1,2]\n', /not a JSON object/],
      ['{"data": {}}\n', /no event type/],
      ['{"type": "x", "data": [1]}\n', /"data" of x is not an object/],
      ['{"type": "x", "data_length": -1}\n', /data_length is not a whole number/],
      ['{"type": "x", "payload_length": 1.5}\n', /payload_length is not a whole number/],
      ['{"type": "x", "payload_length": "10"}\n', /payload_length is not a whole number/],
      ['{"type": "x", "payload_length": 99999999999}\n', /exceeds the limit/],
      ['{"type": "x", "data_length": 3}\nabc', /data of x is not JSON/],
      ['{"type": "x", "data_length": 2}\n[]', /not a JSON object/],
      ['x'.repeat(70 * 1024), /header line longer than/],
    ];
    for (const [input, message] of cases) {
      const p = new EventParser();
      expect(() => p.push(Buffer.from(input))).toThrow(message);
    }
  });
});

describe('Wyoming TTS', () => {
  test('describe -> info: the voices and models the server offers', async () => {
    const srv = await serve(piperLike(22050, () => Buffer.alloc(0)));
    const engine = new WyomingTtsEngine({ host: '127.0.0.1', port: srv.port });
    const info = await engine.describe({ timeoutMs: 5000 });
    expect(info.voices).toEqual([{ name: 'en_US-lessac-medium', languages: ['en_US'], speakers: [], installed: true }]);
    expect(info.models).toEqual([]);
    // what went over the wire: exactly one header line, no data section (describe has none)
    expect(srv.connections[0].events.map((e) => [e.type, JSON.parse(e.headerLine).data_length])).toEqual([
      ['describe', undefined],
    ]);
  });

  test('synthesize at 22050 Hz -> an 8 kHz 16-bit mono WAV of the same length and pitch; the second speak is a cache hit', async () => {
    const pcm = tonePcm(22050, 1500, 440);
    const srv = await serve(piperLike(22050, () => pcm));
    const engine = new WyomingTtsEngine({
      host: '127.0.0.1',
      port: srv.port,
      voice: 'en_US-lessac-medium',
      speaker: '2',
    });
    const svc = service(engine);
    const r = await svc.speak('Hello from Wyoming.');
    r.release();
    expect(r.cached).toBe(false);
    expect(r.engine).toBe('wyoming');
    expect(r.voice).toBe('en_US-lessac-medium');
    const wav = parseWav(fs.readFileSync(r.file));
    expect({ rate: wav.sampleRate, channels: wav.channels, bits: wav.bitsPerSample }).toEqual({
      rate: 8000,
      channels: 1,
      bits: 16,
    });
    expect(Math.abs(r.durationMs - 1500)).toBeLessThanOrEqual(2);
    expect(Math.abs(crossingsPerSecond(wav.samples, 8000) - 880)).toBeLessThan(10);
    // the request as the server saw it
    const synth = srv.connections[0].events[0];
    expect(synth.type).toBe('synthesize');
    expect(synth.data).toEqual({ text: 'Hello from Wyoming.', voice: { name: 'en_US-lessac-medium', speaker: '2' } });
    // the second time: from the cache, the server not asked again
    const again = await svc.speak('Hello from Wyoming.');
    again.release();
    expect(again.cached).toBe(true);
    expect(again.file).toBe(r.file);
    expect(srv.connections).toHaveLength(1);
  });

  test('data inline in the header (older 1.x servers) and stereo audio are accepted', async () => {
    const mono = tonePcm(16000, 500, 300);
    const stereo = Buffer.alloc(mono.length * 2);
    for (let i = 0; i < mono.length / 2; i++) {
      stereo.writeInt16LE(mono.readInt16LE(i * 2), i * 4);
      stereo.writeInt16LE(mono.readInt16LE(i * 2), i * 4 + 2);
    }
    const srv = await serve((ev, sock) => {
      if (ev.type !== 'synthesize') return;
      const fmt = { rate: 16000, width: 2, channels: 2 };
      sock.write(inlineEvent('audio-start', fmt));
      sock.write(inlineEvent('audio-chunk', fmt, stereo));
      sock.write(inlineEvent('audio-stop', {}));
    });
    const r = await service(new WyomingTtsEngine({ host: '127.0.0.1', port: srv.port })).speak('stereo');
    r.release();
    const wav = parseWav(fs.readFileSync(r.file));
    expect([wav.sampleRate, wav.channels, r.durationMs]).toEqual([8000, 1, 500]);
    expect(Math.abs(crossingsPerSecond(wav.samples, 8000) - 600)).toBeLessThan(10);
  });

  test('chunks are delivered as they arrive (a stream mode can forward each one before the server finishes)', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const fmt = { rate: 22050, width: 2, channels: 1 };
    const srv = await serve(async (ev, sock) => {
      if (ev.type !== 'synthesize') return;
      sock.write(event('audio-start', fmt));
      sock.write(event('audio-chunk', fmt, tonePcm(22050, 50)));
      await gate; // nothing more until the client has the first chunk
      sock.write(event('audio-chunk', fmt, tonePcm(22050, 50)));
      sock.write(event('audio-stop'));
    });
    const engine = new WyomingTtsEngine({ host: '127.0.0.1', port: srv.port });
    const got: AudioChunk[] = [];
    for await (const c of engine.synthesizeStream('stream me', { timeoutMs: 5000 })) {
      got.push(c);
      if (got.length === 1) release();
    }
    expect(got.map((c) => [c.rate, c.channels, c.pcm.length])).toEqual([
      [22050, 1, 2206],
      [22050, 1, 2206],
    ]);
  });

  test('a reader that stops early closes the connection; a flood of events is cut off at the limit', async () => {
    const fmt = { rate: 22050, width: 2, channels: 1 };
    const srv = await serve((ev, sock) => {
      if (ev.type !== 'synthesize') return;
      const parts = [event('audio-start', fmt)];
      for (let i = 0; i < 500; i++) parts.push(event('audio-chunk', fmt, tonePcm(22050, 20)));
      sock.write(Buffer.concat(parts)); // no audio-stop: only the reader's break ends this
    });
    const engine = new WyomingTtsEngine({ host: '127.0.0.1', port: srv.port });
    let n = 0;
    for await (const c of engine.synthesizeStream('stop early', { timeoutMs: 5000 })) {
      expect(c.pcm.length).toBe(882);
      if (++n === 3) break;
    }
    await waitFor(() => srv.sockets.size === 0, 5000, 'the connection to close after the break');
    // events that never end (pings, say) stop at maxEvents, well before the deadline
    srv.handler = (ev, sock) => {
      if (ev.type === 'synthesize') sock.write(Buffer.concat(Array.from({ length: 200 }, () => event('ping'))));
    };
    const e = await failure(
      synthesizeWav('wyoming', engine.endpoint, { text: 'flood' }, { timeoutMs: 5000, limits: { maxEvents: 100 } }),
    );
    expect([e.kind, e.message]).toEqual(['bad_response', expect.stringContaining('more than 100 events')]);
  });

  test('an unknown voice: the error event becomes kind not_found naming the voice; nothing is cached', async () => {
    // as wyoming-piper answers: Error(text=str(err), code=<exception class>), then it drops the connection
    const srv = await serve((ev, sock) => {
      if (ev.type === 'synthesize')
        sock.end(event('error', { text: (ev.data.voice as { name: string }).name, code: 'VoiceNotFoundError' }));
    });
    const svc = service(new WyomingTtsEngine({ host: '127.0.0.1', port: srv.port, voice: 'xx_XX-nobody-low' }));
    const e = await failure(svc.speak('hello'));
    expect([e.stage, e.kind, e.engine]).toEqual(['tts', 'not_found', 'wyoming']);
    expect(e.message).toContain('xx_XX-nobody-low');
    expect(e.message).toContain('VoiceNotFoundError');
    expect(svc.cache.count).toBe(0);
    // the other way wyoming-piper says it
    srv.handler = (ev, sock) => {
      if (ev.type === 'synthesize')
        sock.end(event('error', { text: 'Unable to find or download voice: xx_XX-nobody-low', code: 'ValueError' }));
    };
    expect((await failure(svc.speak('hello'))).kind).toBe('not_found');
    // any other error event is a bad_response
    srv.handler = (ev, sock) => {
      if (ev.type === 'synthesize') sock.write(event('error', { text: 'model crashed' }));
    };
    expect((await failure(svc.speak('hello'))).kind).toBe('bad_response');
  });

  test('a connection dropped mid-audio is a bad_response, and no half reply reaches the cache', async () => {
    const fmt = { rate: 22050, width: 2, channels: 1 };
    const srv = await serve((ev, sock) => {
      if (ev.type !== 'synthesize') return;
      sock.write(event('audio-start', fmt));
      sock.write(event('audio-chunk', fmt, tonePcm(22050, 100)));
      const third = event('audio-chunk', fmt, tonePcm(22050, 100));
      sock.end(third.subarray(0, third.length - 500)); // the payload cut short, then FIN
    });
    const svc = service(new WyomingTtsEngine({ host: '127.0.0.1', port: srv.port }));
    const e = await failure(svc.speak('hello'));
    expect(e.kind).toBe('bad_response');
    expect(e.message).toMatch(/closed the connection in the middle of an event/);
    expect(svc.cache.count).toBe(0);
    expect(fs.readdirSync(svc.cache.dir)).toEqual([]);
    // closed between events, before audio-stop: also bad_response
    srv.handler = (ev, sock) => {
      if (ev.type !== 'synthesize') return;
      sock.write(event('audio-start', fmt));
      sock.end(event('audio-chunk', fmt, tonePcm(22050, 100)));
    };
    expect((await failure(svc.speak('hello again'))).message).toMatch(/before the answer was complete/);
    // reset (RST) mid-audio: network
    srv.handler = (ev, sock) => {
      if (ev.type !== 'synthesize') return;
      sock.write(event('audio-start', fmt), () => sock.resetAndDestroy());
    };
    expect(['network', 'bad_response']).toContain((await failure(svc.speak('reset'))).kind);
  });

  test('malformed events from the server: bad JSON header, oversized header, lying data_length, bad format', async () => {
    const fmt = { rate: 22050, width: 2, channels: 1 };
    const answers: Array<[string, (sock: net.Socket) => void, string, RegExp]> = [
      [
        'bad JSON header',
        (s) => s.write('{"type": "audio-start", "data": {"rate": 22050,\n'),
        'bad_response',
        /header is not JSON/,
      ],
      // a header line that never ends: the client stops reading at the limit and hangs up
      [
        'oversized header',
        (s) => s.write('{"type": "audio-start", "pad": "' + 'a'.repeat(200 * 1024)),
        'bad_response',
        /header line longer than 65536 bytes/,
      ],
      [
        'data_length too short',
        (s) => {
          const d = JSON.stringify(fmt);
          s.write(`{"type": "audio-start", "data_length": ${d.length - 5}}\n${d}`);
        },
        'bad_response',
        /data of audio-start is not JSON/,
      ],
      [
        'data_length too long, then the server hangs up',
        (s) => {
          const d = JSON.stringify(fmt);
          s.end(`{"type": "audio-start", "data_length": ${d.length + 100}}\n${d}`);
        },
        'bad_response',
        /middle of an event/,
      ],
      [
        'payload_length beyond the limit',
        (s) =>
          s.write(
            `{"type": "audio-chunk", "data": {"rate": 22050, "width": 2, "channels": 1}, "payload_length": ${1 << 30}}\n`,
          ),
        'bad_response',
        /exceeds the limit/,
      ],
      [
        '8-bit audio',
        (s) => s.write(event('audio-start', { rate: 22050, width: 1, channels: 1 })),
        'bad_response',
        /8-bit audio; 16-bit expected/,
      ],
      [
        'no rate',
        (s) => s.write(event('audio-chunk', { width: 2, channels: 1 }, Buffer.alloc(4))),
        'bad_response',
        /no valid audio format/,
      ],
      ['odd payload', (s) => s.write(event('audio-chunk', fmt, Buffer.alloc(3))), 'bad_response', /not whole samples/],
      ['no audio at all', (s) => s.write(event('audio-stop')), 'bad_response', /no audio/],
    ];
    for (const [what, answer, kind, message] of answers) {
      const srv = await serve((ev, sock) => {
        if (ev.type === 'synthesize') answer(sock);
      });
      const svc = service(new WyomingTtsEngine({ host: '127.0.0.1', port: srv.port }), 3000);
      const e = await failure(svc.speak('hello'));
      expect([what, e.kind, message.test(e.message)]).toEqual([what, kind, true]);
      expect([what, svc.cache.count]).toEqual([what, 0]);
      // the client closed the connection (no reading on after the failure)
      await waitFor(() => srv.sockets.size === 0, 5000, `${what}: the client to close the connection`);
    }
  });

  test('timeouts: a server that never answers, and one that stops mid-audio; abort; nobody listening', async () => {
    const fmt = { rate: 22050, width: 2, channels: 1 };
    const silent = await serve(() => undefined);
    const engine = new WyomingTtsEngine({ host: '127.0.0.1', port: silent.port });
    let e = await failure(service(engine, 300).speak('hello'));
    expect([e.kind, e.message]).toEqual(['timeout', expect.stringContaining('within 300 ms')]);
    const stalls = await serve((ev, sock) => {
      if (ev.type === 'synthesize')
        sock.write(Buffer.concat([event('audio-start', fmt), event('audio-chunk', fmt, tonePcm(22050, 20))]));
    });
    e = await failure(service(new WyomingTtsEngine({ host: '127.0.0.1', port: stalls.port }), 300).speak('hello'));
    expect(e.kind).toBe('timeout');
    // abort (the node closes): network, promptly, connection closed
    const ac = new AbortController();
    const p = service(engine, 10_000).speak('abort me', { signal: ac.signal });
    await waitFor(() => silent.connections.length >= 2, 5000, 'the request to arrive');
    ac.abort();
    e = await failure(p);
    expect([e.kind, e.message]).toEqual(['network', expect.stringContaining('aborted')]);
    await waitFor(() => silent.sockets.size === 0, 5000, 'the aborted connection to close');
    // nobody listening
    const port = silent.port;
    await silent.stop();
    servers.splice(servers.indexOf(silent), 1);
    e = await failure(service(new WyomingTtsEngine({ host: '127.0.0.1', port }), 3000).speak('hello'));
    expect([e.kind, e.message]).toEqual(['network', expect.stringContaining('ECONNREFUSED')]);
  });

  test('settings: host/port checked (not_configured), engine chosen by TTS_ENGINE with WYOMING_TTS_*', () => {
    for (const [host, port] of [
      ['', 10200],
      ['tcp://piper', 10200],
      ['piper:10200', 10200],
      ['piper/x', 10200],
      ['piper', 0],
      ['piper', 'abc'],
      ['piper', 70000],
    ] as Array<[string, number | string]>) {
      let err: unknown;
      try {
        new WyomingTtsEngine({ host, port });
      } catch (e) {
        err = e;
      }
      expect([host, port, (err as StageError)?.kind]).toEqual([host, port, 'not_configured']);
    }
    const env = {
      TTS_ENGINE: 'wyoming',
      WYOMING_TTS_HOST: 'piper',
      WYOMING_TTS_PORT: '10200',
      WYOMING_TTS_VOICE: 'de_DE-thorsten-medium',
    };
    const e = createTtsEngine({}, env) as WyomingTtsEngine;
    expect(e).toBeInstanceOf(WyomingTtsEngine);
    expect([e.endpoint, e.voice]).toEqual([{ host: 'piper', port: 10200 }, 'de_DE-thorsten-medium']);
    // the node's settings win over the environment; the server is part of the cache identity
    const n = createTtsEngine(
      { engine: 'wyoming', wyoming: { host: '::1', port: '10222', voice: 'v' } },
      env,
    ) as WyomingTtsEngine;
    expect([n.endpoint, n.voice]).toEqual([{ host: '::1', port: 10222 }, 'v']);
    expect(n.identity).not.toBe(e.identity);
    // defaults: 127.0.0.1:10200, the server's default voice
    const d = createTtsEngine({}, { TTS_ENGINE: 'wyoming' }) as WyomingTtsEngine;
    expect([d.endpoint, d.voice]).toEqual([{ host: '127.0.0.1', port: 10200 }, '']);
  });
});

describe('Wyoming STT', () => {
  /** Answers transcribe like wyoming-whisper: reads transcribe, audio-start, chunks, audio-stop; then transcript. */
  const whisperLike: Handler = (ev, sock, conn) => {
    if (ev.type === 'describe') {
      sock.write(
        event('info', {
          asr: [{ name: 'faster-whisper', models: [{ name: 'tiny-int8', languages: ['en', 'de'], installed: true }] }],
        }),
      );
      return;
    }
    if (ev.type !== 'audio-stop') return;
    const t = conn.events.find((e) => e.type === 'transcribe');
    const start = conn.events.find((e) => e.type === 'audio-start');
    const chunks = conn.events.filter((e) => e.type === 'audio-chunk');
    const bytes = chunks.reduce((n, c) => n + c.payload.length, 0);
    sock.write(event('transcript-start', {}));
    sock.write(
      event('transcript', {
        text: `model ${String(t?.data.name)} language ${String(t?.data.language)} rate ${String(start?.data.rate)} ${bytes} bytes in ${chunks.length} chunks`,
      }),
    );
  };

  function recording(ms: number, rate = 8000): Buffer {
    const pcm = tonePcm(rate, ms, 300);
    const samples = new Int16Array(pcm.length / 2);
    for (let i = 0; i < samples.length; i++) samples[i] = pcm.readInt16LE(i * 2);
    return encodeWav({ sampleRate: rate, channels: 1, samples });
  }

  test('transcribe: transcribe + audio-start + chunks + audio-stop -> transcript', async () => {
    const srv = await serve(whisperLike);
    const engine = new WyomingSttEngine({ host: '127.0.0.1', port: srv.port, model: 'tiny-int8', language: 'en' });
    const t = await transcribe(engine, recording(2000), { timeoutMs: 5000 });
    // 2 s at 8 kHz = 32000 bytes, in half-second chunks
    expect(t.text).toBe('model tiny-int8 language en rate 8000 32000 bytes in 4 chunks');
    expect([t.engine, t.audioMs]).toEqual(['wyoming', 2000]);
    const types = srv.connections[0].events.map((e) => e.type);
    expect(types).toEqual([
      'transcribe',
      'audio-start',
      'audio-chunk',
      'audio-chunk',
      'audio-chunk',
      'audio-chunk',
      'audio-stop',
    ]);
    expect(srv.connections[0].events[1].data).toMatchObject({ rate: 8000, width: 2, channels: 1 });
    // the language of the request wins over the engine's
    const de = await transcribe(engine, recording(500), { timeoutMs: 5000, language: 'de' });
    expect(de.text).toContain('language de');
    // describe lists the models
    expect((await engine.describe({ timeoutMs: 5000 })).models).toEqual([
      { name: 'tiny-int8', languages: ['en', 'de'], installed: true },
    ]);
  });

  test('silence is answered without asking the server; faults are typed', async () => {
    const srv = await serve(whisperLike);
    const engine = new WyomingSttEngine({ host: '127.0.0.1', port: srv.port });
    const silent = encodeWav({ sampleRate: 8000, channels: 1, samples: new Int16Array(8000) });
    expect((await transcribe(engine, silent, { timeoutMs: 5000 })).text).toBe('');
    expect(srv.connections).toHaveLength(0);
    // an unknown model
    srv.handler = (ev, sock) => {
      if (ev.type === 'transcribe') sock.write(event('error', { text: `Model not found: ${String(ev.data.name)}` }));
    };
    const bad = new WyomingSttEngine({ host: '127.0.0.1', port: srv.port, model: 'huge-v9' });
    let e = await failure(transcribe(bad, recording(300), { timeoutMs: 5000 }));
    expect([e.stage, e.kind, e.message]).toEqual(['stt', 'not_found', expect.stringContaining('huge-v9')]);
    // the server hangs up without a transcript
    srv.handler = (ev, sock) => {
      if (ev.type === 'audio-stop') sock.end();
    };
    e = await failure(transcribe(engine, recording(300), { timeoutMs: 5000 }));
    expect(e.kind).toBe('bad_response');
    // never answers: timeout (the configured time plus the audio's length)
    srv.handler = () => undefined;
    const t0 = Date.now();
    e = await failure(transcribe(engine, recording(300), { timeoutMs: 200 }));
    expect(e.kind).toBe('timeout');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(450);
    // transcript text of the wrong type
    srv.handler = (ev, sock) => {
      if (ev.type === 'audio-stop') sock.write(event('transcript', { text: 42 }));
    };
    e = await failure(transcribe(engine, recording(300), { timeoutMs: 5000 }));
    expect(e.kind).toBe('bad_response');
  });

  test('STT_ENGINE=wyoming with WYOMING_STT_* and STT_LANGUAGE', () => {
    const e = createSttEngine(
      {},
      { STT_ENGINE: 'wyoming', WYOMING_STT_HOST: 'whisper', WYOMING_STT_PORT: '10300', WYOMING_STT_MODEL: 'tiny-int8' },
    ) as WyomingSttEngine;
    expect(e).toBeInstanceOf(WyomingSttEngine);
    expect(e.endpoint).toEqual({ host: 'whisper', port: 10300 });
    expect(() => createSttEngine({ engine: 'wyoming', wyoming: { host: 'whisper', port: '-1' } }, {})).toThrow(
      /port must be 1-65535/,
    );
  });
});

describe('the speak and transcribe nodes with engine Wyoming (Node-RED runtime)', () => {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const helper = require('node-red-node-test-helper');
  const ttsSpeak = require('../../nodes/tts-speak/tts-speak');
  const sttTranscribe = require('../../nodes/stt-transcribe/stt-transcribe');
  /* eslint-enable @typescript-eslint/no-require-imports */
  type Msg = Record<string, any>;

  beforeAll((done) => {
    helper.init(require.resolve('node-red'));
    helper.startServer(done);
  });
  afterAll((done) => {
    helper.stopServer(done);
  });
  afterEach(() => helper.unload());

  test('the dialog fields (host, port, voice, speaker / model, language) reach the Wyoming server', async () => {
    const tts = await serve(piperLike(22050, () => tonePcm(22050, 400)));
    const stt = await serve((ev, sock) => {
      if (ev.type === 'audio-stop') sock.write(event('transcript', { text: 'yes please' }));
    });
    const rec = path.join(tmp, 'rec.wav');
    const pcm = tonePcm(8000, 600, 300);
    const samples = new Int16Array(pcm.length / 2);
    for (let i = 0; i < samples.length; i++) samples[i] = pcm.readInt16LE(i * 2);
    fs.writeFileSync(rec, encodeWav({ sampleRate: 8000, channels: 1, samples }));
    await helper.load(
      [ttsSpeak, sttTranscribe],
      [
        { id: 'f1', type: 'tab' },
        {
          id: 'speak',
          z: 'f1',
          type: 'tts-speak',
          engine: 'wyoming',
          wyomingHost: '127.0.0.1',
          wyomingPort: String(tts.port),
          voice: 'en_US-lessac-medium',
          wyomingSpeaker: 'p1',
          audioDir: path.join(tmp, 'node-audio'),
          play: false,
          wires: [['out'], []],
        },
        {
          id: 'hear',
          z: 'f1',
          type: 'stt-transcribe',
          engine: 'wyoming',
          wyomingHost: '127.0.0.1',
          wyomingPort: String(stt.port),
          wyomingModel: 'tiny-int8',
          language: 'en',
          wires: [['out'], []],
        },
        { id: 'out', z: 'f1', type: 'helper' },
      ],
    );
    const got: Msg[] = [];
    helper.getNode('out').on('input', (m: Msg) => got.push(m));
    helper.getNode('speak').receive({ payload: 'Good morning.' });
    helper.getNode('hear').receive({ recording: { path: rec } });
    await waitFor(() => got.length >= 2, 10_000, 'both nodes to answer');
    const spoken = got.find((m) => m.tts)!;
    expect(spoken.tts).toMatchObject({
      engine: 'wyoming',
      voice: 'en_US-lessac-medium',
      cached: false,
      durationMs: 400,
    });
    expect(parseWav(fs.readFileSync(spoken.tts.file)).sampleRate).toBe(8000);
    expect(tts.connections[0].events[0].data).toEqual({
      text: 'Good morning.',
      voice: { name: 'en_US-lessac-medium', speaker: 'p1' },
    });
    const heard = got.find((m) => m.transcript)!;
    expect([heard.payload, heard.transcript.engine]).toEqual(['yes please', 'wyoming']);
    expect(stt.connections[0].events[0]).toMatchObject({
      type: 'transcribe',
      data: { name: 'tiny-int8', language: 'en' },
    });
  });
});
