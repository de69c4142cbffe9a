/**
 * Subscriber process of the events bench (forked by index.ts): N MQTT 3.1.1 subscribers (QoS 1, clean
 * sessions) recording the receive time (clockMs) of every event by its sequence number.
 *
 * The subscribers are the bench's instrument, so they are kept cheap: a minimal hand-written MQTT client
 * on raw sockets (CONNECT, SUBSCRIBE, PUBLISH in, PUBACK out; no library). With mqtt.js, 20 clients
 * receiving 1,000 events/s each took most of a core and their own queueing set the p99 of every
 * contender. The sequence number is read from the payload bytes (`"seq":N`), the same way for all.
 */
import * as net from 'net';
import { clockMs, procSampler, type SubJob } from './common';

const SEQ = Buffer.from('"seq":');

function seqOf(buf: Buffer, from: number, to: number): number {
  let i = buf.indexOf(SEQ, from);
  if (i < 0 || i >= to) return -1;
  i += SEQ.length;
  let n = 0;
  let digits = 0;
  for (; i < to; i++, digits++) {
    const c = buf[i] - 48;
    if (c < 0 || c > 9) break;
    n = n * 10 + c;
  }
  return digits ? n : -1;
}

function str(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  const l = Buffer.alloc(2);
  l.writeUInt16BE(b.length);
  return Buffer.concat([l, b]);
}

function packet(first: number, body: Buffer): Buffer {
  const len: number[] = [];
  let n = body.length;
  do {
    let d = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) d |= 128;
    len.push(d);
  } while (n > 0);
  return Buffer.concat([Buffer.from([first, ...len]), body]);
}

function connectPacket(clientId: string, username?: string, password?: string): Buffer {
  let flags = 0x02; // clean session
  if (username) flags |= 0x80;
  if (password) flags |= 0x40;
  const parts = [str('MQTT'), Buffer.from([4, flags, 0, 0]), str(clientId)]; // level 4, keepalive off
  if (username) parts.push(str(username));
  if (password) parts.push(str(password));
  return packet(0x10, Buffer.concat(parts));
}

function subscribePacket(filter: string): Buffer {
  return packet(0x82, Buffer.concat([Buffer.from([0, 1]), str(filter), Buffer.from([1])]));
}

/** One subscriber; resolves once its subscription is acknowledged. */
/** socket reads ('data' events) of all subscribers, each answered by one write of its PUBACKs */
let reads = 0;

function subscriber(job: SubJob, n: number, onEvent: (seq: number, t: number) => void): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const u = new URL(job.url);
    const sock = net.connect(Number(u.port), u.hostname);
    sock.setNoDelay(true);
    let buf: Buffer = Buffer.alloc(0);
    sock.on('error', reject);
    sock.on('connect', () =>
      sock.write(connectPacket(`bench-sub-${process.pid}-${n}`, job.creds.username, job.creds.password)),
    );
    sock.on('data', (chunk: Buffer) => {
      const t = clockMs();
      reads++;
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      let off = 0;
      const acks: number[] = [];
      for (;;) {
        // fixed header + remaining length (varint)
        if (buf.length - off < 2) break;
        let len = 0;
        let mul = 1;
        let i = off + 1;
        let complete = false;
        for (; i < buf.length && i < off + 5; i++) {
          len += (buf[i] & 127) * mul;
          mul *= 128;
          if ((buf[i] & 128) === 0) {
            complete = true;
            i++;
            break;
          }
        }
        if (!complete || buf.length - i < len) break;
        const type = buf[off] >> 4;
        const end = i + len;
        if (type === 3) {
          const qos = (buf[off] >> 1) & 3;
          const tlen = buf.readUInt16BE(i);
          let p = i + 2 + tlen;
          if (qos > 0) {
            acks.push(0x40, 2, buf[p], buf[p + 1]);
            p += 2;
          }
          onEvent(seqOf(buf, p, end), t);
        } else if (type === 2) {
          if (buf[i + 1] !== 0) return reject(new Error(`CONNACK refused (${buf[i + 1]})`));
          sock.write(subscribePacket(job.filter));
        } else if (type === 9) {
          if (buf[end - 1] === 0x80) return reject(new Error(`SUBSCRIBE ${job.filter} refused`));
          resolve(sock);
        }
        off = end;
      }
      buf = off === buf.length ? Buffer.alloc(0) : buf.subarray(off);
      if (acks.length) sock.write(Buffer.from(acks));
    });
  });
}

async function start(job: SubJob): Promise<void> {
  const sampler = procSampler();
  const recv: Float64Array[] = [];
  const socks: net.Socket[] = [];
  let received = 0;
  let duplicates = 0;
  for (let s = 0; s < job.subscribers; s++) {
    const times = new Float64Array(job.total).fill(NaN);
    recv.push(times);
    socks.push(
      await subscriber(job, s, (seq, t) => {
        if (seq < 0 || seq >= job.total) return;
        if (Number.isNaN(times[seq])) {
          times[seq] = t;
          received++;
        } else duplicates++;
      }),
    );
  }
  reads = 0;
  process.send!({ ready: true });
  process.on('message', async (m: { stop?: boolean; graceMs?: number; from?: number; seconds?: number }) => {
    if (!m.stop) return;
    const deadline = Date.now() + (m.graceMs ?? 5000);
    while (received < job.total * job.subscribers && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const s of socks) s.destroy();
    const proc = m.from !== undefined ? sampler.bySecond(m.from, m.seconds ?? 0) : undefined;
    process.send!(
      { recv: recv.map((a) => Array.from(a, (v) => (Number.isNaN(v) ? -1 : v))), duplicates, proc, reads },
      () => process.exit(0),
    );
  });
}

process.once('message', (job: SubJob) => {
  start(job).catch((err) => {
    process.send!({ error: String(err && err.message ? err.message : err) }, () => process.exit(1));
  });
});
