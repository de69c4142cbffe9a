/**
 * aedes broker process of the events bench (forked by index.ts), on a port of its own (port 0, read back):
 *   - `bare`: aedes with no hooks (the floor);
 *   - `ours`: the embedded broker of src/events/broker.ts (accounts, ACL), as `npm start` runs it.
 * Sends `{ url, pub, sub }` (the URL and the credentials of a writer and a reader) once listening.
 */
import { createRequire } from 'module';
import * as net from 'net';
import { EmbeddedBroker } from '../../src/events/broker';

async function main(kind: 'bare' | 'ours', root: string): Promise<void> {
  if (kind === 'ours') {
    const b = await EmbeddedBroker.start({
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

process.once('message', (m: { kind: 'bare' | 'ours'; root: string }) => {
  main(m.kind, m.root).catch((err) => {
    process.send!({ error: String(err && err.message ? err.message : err) }, () => process.exit(1));
  });
});
process.on('disconnect', () => process.exit(0));
