/**
 * How long the embedded broker holds a delivery's socket write (first `cork()` of a subscriber's socket to the
 * `uncork()` that writes) when it keeps up: one subscriber, a publisher at 200 events/s, everything in this process
 * (so an upper bound). `BENCH_EVENTS_HOLD_BUILD=<a build's dist/>` times that build's broker (default: this one's).
 * Run: `node dist/bench/events/hold.js`.
 */
import * as mqtt from 'mqtt';
import * as net from 'net';
import * as path from 'path';
import { createRequire } from 'module';
import { EmbeddedBroker as ThisBroker } from '../../src/events/broker';

const EVENTS = 2000;
const SKIP = 200;

async function main(): Promise<void> {
  const dir = process.env.BENCH_EVENTS_HOLD_BUILD;
  const EmbeddedBroker = dir
    ? (createRequire(__filename)(path.resolve(dir, 'src/events/broker')) as typeof import('../../src/events/broker'))
        .EmbeddedBroker
    : ThisBroker;
  const proto = net.Socket.prototype;
  const { cork, uncork } = proto;
  let since: bigint | undefined;
  const holds: number[] = [];
  const watch: { socket?: net.Socket } = {}; // the broker's side of the subscriber's connection, once it is there
  proto.cork = function (this: net.Socket): void {
    if (this === watch.socket && this.writableCorked === 0) since = process.hrtime.bigint();
    cork.call(this);
  };
  proto.uncork = function (this: net.Socket): void {
    uncork.call(this);
    if (this === watch.socket && this.writableCorked === 0 && since !== undefined) {
      holds.push(Number(process.hrtime.bigint() - since) / 1000);
      since = undefined;
    }
  };
  const broker = await EmbeddedBroker.start({
    port: 0,
    accounts: [{ username: 'w', password: 'w', role: 'writer' }],
  });
  const connect = async () => {
    const c = mqtt.connect(broker.url, { username: 'w', password: 'w', reconnectPeriod: 0 });
    await new Promise((r) => c.once('connect', r));
    return c;
  };
  const sub = await connect();
  await new Promise((r) => sub.subscribe('ai-dialer/v1/x', { qos: 1 }, r));
  const pub = await connect();
  const local = (sub.stream as net.Socket).localPort;
  watch.socket = [...(broker as unknown as { sockets: Set<net.Socket> }).sockets].find((s) => s.remotePort === local);
  let n = 0;
  await new Promise<void>((resolve) => {
    const t = setInterval(() => {
      pub.publish('ai-dialer/v1/x', '{"a":1}', { qos: 1 });
      if (++n === EVENTS) {
        clearInterval(t);
        setTimeout(resolve, 200);
      }
    }, 5);
  });
  const xs = holds.slice(SKIP).sort((a, b) => a - b);
  const q = (p: number) => xs[Math.floor(p * (xs.length - 1))].toFixed(0);
  console.log(
    `${dir ?? 'this build'}: ${xs.length} writes to the subscriber, held µs p50 ${q(0.5)} p90 ${q(0.9)} p99 ${q(0.99)}`,
  );
  sub.end(true);
  pub.end(true);
  await broker.close();
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
