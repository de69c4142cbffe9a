import type { NodeAPI, Node, NodeDef } from 'node-red';
import { acquireDb, releaseDb, type Db, type StoreOptions } from '../../src/store/db';
import { resolveStoreOptions, type StoreMode } from '../../src/runtime/env';

interface StoreDef extends NodeDef {
  mode: StoreMode;
  dataDir: string;
}
interface StoreCreds {
  url?: string;
}
interface StoreConfigNode extends Node<StoreCreds> {
  /** The shared database (migrated); rejects with a clear error when it cannot be opened. */
  getDb(): Promise<Db>;
  /** Where the data lives, without secrets. */
  description: string;
}

export = function (RED: NodeAPI): void {
  function AiDialerStore(this: StoreConfigNode, config: StoreDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    let opts: StoreOptions | undefined;
    let opened: Promise<Db> | undefined;
    let optsError: Error | undefined;
    try {
      opts = resolveStoreOptions(config.mode, config.dataDir, node.credentials?.url);
      node.description = opts.url ? 'postgresql' : `embedded (${opts.dataDir})`;
    } catch (err) {
      optsError = err as Error;
      node.description = 'not configured';
      node.error(optsError.message);
    }
    node.getDb = () => {
      if (optsError || !opts) return Promise.reject(optsError);
      if (!opened) {
        opened = acquireDb(opts);
        opened.catch((err: Error) => {
          node.error(err.message);
          opened = undefined;
        });
      }
      return opened;
    };
    node.on('close', (_removed: boolean, done: () => void) => {
      const o = opts;
      const wasOpened = opened;
      opened = undefined;
      if (!o || !wasOpened) return done();
      wasOpened
        .then(
          () => releaseDb(o),
          () => undefined,
        )
        .catch((err: Error) => node.warn(`store: close failed: ${err.message}`))
        .finally(done);
    });
  }
  RED.nodes.registerType(
    'ai-dialer-store',
    AiDialerStore as unknown as Parameters<NodeAPI['nodes']['registerType']>[1],
    {
      credentials: { url: { type: 'password' } },
    },
  );
};
