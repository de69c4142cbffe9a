import type { NodeAPI, Node, NodeDef } from 'node-red';
import type * as http from 'http';
import { acquireBus, type BusHandle, type BusMode } from '../../src/events/bus';
import type { Account } from '../../src/events/broker';
import type { Publisher } from '../../src/events/publisher';
import { registerHealthProbe } from '../../src/runtime/health';
import { errorMessage } from '../../src/util/errors';

interface BusDef extends NodeDef {
  mode: BusMode;
  url: string;
  port: string;
  root: string;
  ws: boolean;
  writerUser: string;
  readerUser: string;
}
interface BusCreds {
  username?: string;
  password?: string;
  writerPassword?: string;
  readerPassword?: string;
}
interface BusConfigNode extends Node<BusCreds> {
  /** The shared publisher (connected or buffering); rejects with one clear line when the bus cannot start. */
  getPublisher(): Promise<Publisher>;
  /** The shared bus handle (publisher, embedded broker if any). */
  getBus(): Promise<BusHandle>;
}

export = function (RED: NodeAPI): void {
  function AiDialerBus(this: BusConfigNode, config: BusDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const creds = node.credentials ?? {};
    const accounts: Account[] = [];
    if (config.writerUser)
      accounts.push({ username: config.writerUser, password: creds.writerPassword ?? '', role: 'writer' });
    if (config.readerUser)
      accounts.push({ username: config.readerUser, password: creds.readerPassword ?? '', role: 'reader' });
    const port = config.port !== undefined && String(config.port).trim() !== '' ? Number(config.port) : undefined;
    const server = (RED as unknown as { server?: http.Server }).server;
    let bus: Promise<BusHandle> | undefined;
    let unprobe: (() => void) | undefined;
    let closing = false;

    node.getBus = () => {
      if (closing) return Promise.reject(new Error('event bus is closing'));
      if (!bus) {
        bus = acquireBus({
          mode: config.mode || 'env',
          url: config.url || undefined,
          username: creds.username,
          password: creds.password,
          port,
          root: config.root || undefined,
          accounts,
          httpServer: config.ws === false ? undefined : server,
          wsPath: '/mqtt',
          log: (line) => node.log(line),
        });
        bus.then(
          (b) => {
            node.log(`events go to the ${b.describe}`);
            const st = () => b.publisher.stats();
            unprobe = registerHealthProbe(`events:${node.id}`, () => ({
              buffered: st().buffered,
              dropped: st().dropped,
              inflight: st().inflight,
            }));
          },
          (err) => {
            node.error(errorMessage(err));
            bus = undefined; // a later use retries (e.g. the port was freed)
          },
        );
      }
      return bus;
    };
    node.getPublisher = () => node.getBus().then((b) => b.publisher);
    // Start at deploy so supervisor controls are listened to even before the first event.
    node.getBus().catch(() => undefined);

    node.on('close', (_removed: boolean, done: () => void) => {
      closing = true;
      unprobe?.();
      const b = bus;
      bus = undefined;
      if (!b) return done();
      b.then(
        (h) => h.release(),
        () => undefined,
      )
        .catch((err: Error) => node.warn(`event bus: close failed: ${err.message}`))
        .finally(done);
    });
  }
  RED.nodes.registerType('ai-dialer-bus', AiDialerBus as unknown as Parameters<NodeAPI['nodes']['registerType']>[1], {
    credentials: {
      username: { type: 'text' },
      password: { type: 'password' },
      writerPassword: { type: 'password' },
      readerPassword: { type: 'password' },
    },
  });
};
