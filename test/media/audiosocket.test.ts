/**
 * The AudioSocket protocol and server: the byte layout of res_audiosocket.c, and hostile peers
 * (malformed frames, oversize lengths, unknown or reused uuids, a socket dropped mid-call).
 */
import net from 'net';
import { randomUUID } from 'crypto';
import {
  AudioSocketDecoder,
  AudioSocketProtocolError,
  AudioSocketServer,
  encodeAudio,
  encodeDtmf,
  encodeHangup,
  encodeUuid,
  type AudioSocketConnection,
  type Rejection,
} from '../../src/media/audiosocket';
import { waitFor } from '../helpers/wait';

describe('AudioSocket wire format', () => {
  it('writes the uuid as kind 0x01, length 16 big-endian, 16 binary bytes', () => {
    const b = encodeUuid('0123abcd-4567-89ab-cdef-0123456789ab');
    expect(b.toString('hex')).toBe('010010' + '0123abcd456789abcdef0123456789ab');
  });

  it('writes audio as kind 0x10, big-endian length, little-endian samples', () => {
    const b = encodeAudio(Int16Array.from([1, -2, 0x1234]));
    expect(b.toString('hex')).toBe('100006' + '0100' + 'feff' + '3412');
    expect(() => encodeAudio(new Int16Array(0))).toThrow(RangeError);
  });

  it('writes hangup as three bytes and DTMF as one ASCII byte', () => {
    expect(encodeHangup().toString('hex')).toBe('000000');
    expect(encodeDtmf('#').toString('hex')).toBe('000001'.replace(/^00/, '03') + '23');
    expect(() => encodeDtmf('x')).toThrow();
  });

  it('encodes a view at any offset, and decodes frames that stay independent of each other', () => {
    const all = Int16Array.from({ length: 1000 }, (_, k) => ((k * 7919) % 65536) - 32768);
    // a view starting at an odd sample (its bytes are not at the start of their buffer)
    const view = all.subarray(3, 163);
    const b = encodeAudio(view);
    expect(b.length).toBe(3 + 320);
    for (let k = 0; k < 160; k++) expect(b.readInt16LE(3 + k * 2)).toBe(all[3 + k]);
    // 600 frames (more than one 64 KB slab of received audio), fed in odd-sized chunks: payloads sit at odd offsets
    const frames = Array.from({ length: 600 }, (_, f) =>
      Int16Array.from({ length: 160 }, (_, k) => ((f * 160 + k) % 60000) - 30000),
    );
    const wire = Buffer.concat(frames.map((f) => encodeAudio(f)));
    const d = new AudioSocketDecoder();
    const out = [];
    for (let at = 0; at < wire.length; at += 1001) out.push(...d.push(wire.subarray(at, at + 1001)));
    expect(out).toHaveLength(600);
    out.forEach((m, f) => {
      expect(m.kind).toBe('audio');
      expect((m as { samples: Int16Array }).samples).toEqual(frames[f]);
    });
  });

  it('decodes messages split at every byte boundary', () => {
    const uuid = randomUUID();
    const wire = Buffer.concat([
      encodeUuid(uuid),
      encodeAudio(Int16Array.from([5, -5])),
      encodeDtmf('7'),
      encodeHangup(),
    ]);
    const d = new AudioSocketDecoder();
    const got = [];
    for (let i = 0; i < wire.length; i++) got.push(...d.push(wire.subarray(i, i + 1)));
    expect(got.map((m) => m.kind)).toEqual(['uuid', 'audio', 'dtmf', 'hangup']);
    expect(got[0]).toEqual({ kind: 'uuid', uuid });
    expect(Array.from((got[1] as { samples: Int16Array }).samples)).toEqual([5, -5]);
    expect(got[2]).toEqual({ kind: 'dtmf', digit: '7' });
  });

  it.each([
    ['an unknown kind', Buffer.from([0x42, 0, 0]), 'bad_kind'],
    ['an oversize audio length', Buffer.from([0x10, 0xff, 0xff]), 'oversize'],
    ['audio of an odd length', Buffer.from([0x10, 0, 3, 1, 2, 3]), 'bad_length'],
    ['empty audio', Buffer.from([0x10, 0, 0]), 'bad_length'],
    ['a short uuid', Buffer.from([0x01, 0, 4, 1, 2, 3, 4]), 'bad_length'],
    ['a hangup with a payload', Buffer.from([0x00, 0, 1, 0]), 'bad_length'],
    ['a DTMF byte that is no digit', Buffer.from([0x03, 0, 1, 0x7f]), 'bad_dtmf'],
  ])('refuses %s', (_what, bytes, reason) => {
    const d = new AudioSocketDecoder();
    let err: unknown;
    try {
      d.push(bytes);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AudioSocketProtocolError);
    expect((err as AudioSocketProtocolError).reason).toBe(reason);
  });

  it('rejects an oversize length from the header alone (nothing is buffered for it)', () => {
    const d = new AudioSocketDecoder(640);
    expect(() => d.push(Buffer.from([0x10, 0x02, 0x82]))).toThrow(/at most 640/);
  });
});

describe('AudioSocket server', () => {
  let server: AudioSocketServer;
  let port: number;
  const rejected: Rejection[] = [];

  beforeEach(async () => {
    rejected.length = 0;
    server = new AudioSocketServer({ uuidTimeoutMs: 300 });
    server.on('rejected', (r: Rejection) => rejected.push(r));
    port = (await server.listen()).port;
  });
  afterEach(() => server.close());

  function connect(): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => resolve(s));
      s.on('error', reject);
    });
  }
  const closed = (s: net.Socket) => new Promise<void>((r) => (s.destroyed ? r() : s.once('close', () => r())));

  it('admits the expected uuid and delivers audio and DTMF sent in the same packet as the uuid', async () => {
    const uuid = randomUUID();
    const p = server.expect(uuid, { callId: '7', sessionId: 's1' });
    const s = await connect();
    s.write(Buffer.concat([encodeUuid(uuid), encodeAudio(new Int16Array(160).fill(9)), encodeDtmf('5')]));
    const conn = await p;
    const audio: Int16Array[] = [];
    const digits: string[] = [];
    conn.on('audio', (a: Int16Array) => audio.push(a));
    conn.on('dtmf', (d: string) => digits.push(d));
    conn.start();
    expect(conn.binding).toEqual({ callId: '7', sessionId: 's1' });
    expect(audio).toHaveLength(1);
    expect(audio[0][0]).toBe(9);
    expect(digits).toEqual(['5']);
    // our audio and hangup reach the peer in Asterisk's layout
    const got: Buffer[] = [];
    s.on('data', (c: Buffer) => got.push(c));
    conn.sendAudio(Int16Array.from([1, 2]));
    conn.hangup();
    await closed(s);
    expect(Buffer.concat(got).toString('hex')).toBe('100004' + '01000200' + '000000');
  });

  it('refuses an unknown uuid, and a uuid a second time (single use)', async () => {
    const s1 = await connect();
    s1.write(encodeUuid(randomUUID()));
    await closed(s1);
    expect(rejected[0].reason).toBe('unknown_uuid');

    const uuid = randomUUID();
    const p = server.expect(uuid, {});
    const a = await connect();
    a.write(encodeUuid(uuid));
    const conn = await p;
    conn.start();
    const b = await connect();
    b.write(encodeUuid(uuid));
    await closed(b);
    expect(rejected[1].reason).toBe('unknown_uuid');
    expect(conn.closed).toBe(false);
    a.destroy();
  });

  it('refuses a uuid bound to another host', async () => {
    const uuid = randomUUID();
    const p = server.expect(uuid, { host: '10.9.9.9' }, 1000);
    p.catch(() => undefined);
    const s = await connect();
    s.write(encodeUuid(uuid));
    await closed(s);
    expect(rejected[0].reason).toBe('wrong_host');
    await expect(p).rejects.toThrow(/within 1000 ms/);
  });

  it('drops a peer that sends audio before its uuid, garbage, or nothing at all', async () => {
    const a = await connect();
    a.write(encodeAudio(new Int16Array(160)));
    const b = await connect();
    b.write(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    const c = await connect();
    await Promise.all([closed(a), closed(b), closed(c)]);
    expect(rejected.map((r) => r.reason).sort()).toEqual(['malformed', 'malformed', 'uuid_timeout']);
    await waitFor(() => server.connectionCount === 0, 2000, 'server side closed');
  });

  it('drops an admitted connection that turns malformed (oversize frame), reporting it', async () => {
    const uuid = randomUUID();
    const p = server.expect(uuid, {});
    const s = await connect();
    s.write(encodeUuid(uuid));
    const conn: AudioSocketConnection = await p;
    const errors: Error[] = [];
    conn.on('protocolError', (e: Error) => errors.push(e));
    const gone = new Promise((r) => conn.once('close', r));
    conn.start();
    s.write(Buffer.from([0x10, 0xff, 0xf0]));
    await gone;
    expect(errors[0].message).toMatch(/at most/);
  });

  it('reports a socket dropped mid-call as the end of the media', async () => {
    const uuid = randomUUID();
    const p = server.expect(uuid, {});
    const s = await connect();
    s.write(Buffer.concat([encodeUuid(uuid), encodeAudio(new Int16Array(160))]));
    const conn = await p;
    conn.start();
    // half a frame, then the socket dies
    s.write(encodeAudio(new Int16Array(160)).subarray(0, 100));
    s.destroy();
    await waitFor(() => conn.closed, 2000, 'connection closed');
    expect(conn.framesIn).toBe(1);
    expect(conn.sendAudio(new Int16Array(160))).toBe(false);
  });

  it('a hand-off that never connects times out and the uuid is no longer accepted', async () => {
    const uuid = randomUUID();
    await expect(server.expect(uuid, {}, 100)).rejects.toThrow(/within 100 ms/);
    const s = await connect();
    s.write(encodeUuid(uuid));
    await closed(s);
    expect(rejected[0].reason).toBe('unknown_uuid');
  });
});
