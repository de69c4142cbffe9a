/**
 * aedes broker process of the events bench (forked by index.ts), on a port of its own (port 0, read back):
 *   - `bare`: aedes with no hooks (the floor);
 *   - `ours`: the embedded broker of src/events/broker.ts (accounts, ACL), as `npm start` runs it; for the
 *     `before` contender, that build's (`srcDir`).
 * Sends `{ url, pub, sub }` (the URL and the credentials of a writer and a reader) once listening; afterwards
 * answers `{ stats: { from, seconds } }` with its CPU and collections by second of the window.
 */
import { createRequire } from 'module';
import * as net from 'net';
import * as path from 'path';
import { EmbeddedBroker } from '../../src/events/broker';
import { procSampler } from './common';

/** CPU and collections of this process by second: asked for after the run (`{ stats: { from, seconds } }`) */
const sampler = procSampler();
process.on('message', (m: { stats?: { from: number; seconds: number } }) => {
  if (m.stats) process.send!({ proc: sampler.bySecond(m.stats.from, m.stats.seconds) });
});
// index.ts stops the broker with SIGTERM: exit normally so that a --cpu-prof (BENCH_EVENTS_BROKER_PROF) is written
process.on('SIGTERM', () => process.exit(0));

async function main(kind: 'bare' | 'ours', root: string, srcDir?: string): Promise<void> {
  if (kind === 'ours') {
    // the `before` contender: that build's broker (BENCH_EVENTS_BEFORE)
    const Broker = srcDir
      ? (createRequire(__filename)(path.join(srcDir, 'events/broker')) as typeof import('../../src/events/broker'))
          .EmbeddedBroker
      : EmbeddedBroker;
    const b = await Broker.start({
      port: 0,
      root,
      accounts: [
        { username: 'bench-w', password: 'bench-w', role: 'writer' },
        { username: 'bench-r', password: 'bench-r', role: 'reader' },
      ],
    });
    process.send!({
      url: b.url,
      pub: { username: 'bench-w', password: 'bench-w' },
      sub: { username: 'bench-r', password: 'bench-r' },
    });
    return;
  }
  // aedes is an ES module: Node's own require loads it (as src/events/broker.ts does)
  const { Aedes } = createRequire(__filename)('aedes') as typeof import('aedes');
  const aedes = await Aedes.createBroker();
  const server = net.createServer((s) => aedes.handle(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  process.send!({ url: `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`, pub: {}, sub: {} });
}

process.once('message', (m: { kind: 'bare' | 'ours'; root: string; srcDir?: string }) => {
  main(m.kind, m.root, m.srcDir).catch((err) => {
    process.send!({ error: String(err && err.message ? err.message : err) }, () => process.exit(1));
  });
});
process.on('disconnect', () => process.exit(0));
