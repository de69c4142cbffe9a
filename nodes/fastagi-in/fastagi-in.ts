import type { NodeAPI, Node, NodeDef, NodeMessage } from 'node-red';
import { FastAgiInController, type FastAgiInConfig } from '../../src/controllers/fastagi-in';
import { dialerEnv, keepAcrossDeploy, registerNode, translator, type DialerMsg } from '../lib/kit';
import { callRecords } from '../lib/config-nodes';

type FastAgiInDef = NodeDef & FastAgiInConfig & { store?: string };
interface Creds {
  secret?: string;
}

export = function (RED: NodeAPI): void {
  const t = translator(RED, 'fastagi-in');
  function FastAgiIn(this: Node<Creds> & { port?: number }, config: FastAgiInDef) {
    RED.nodes.createNode(this, config);
    const hooks = {
      send: (port: 0 | 1, msg: DialerMsg) =>
        this.send(port === 0 ? [msg as NodeMessage, null] : [null, msg as NodeMessage]),
      listening: (a: { host: string; port: number }) => {
        this.port = a.port;
        this.emit('listening', a);
      },
    };
    const records = callRecords(RED, config.store, this);
    const { host, port, allow, maxSessions, envTimeout, commandTimeout, answer } = config;
    const { media, bargeIn, endSilence, minSpeech, maxUtterance } = config;
    const { audioSocketHost, audioSocketPort, audioSocketAddress } = config;
    const cfg: FastAgiInConfig = {
      host,
      port,
      allow,
      maxSessions,
      envTimeout,
      commandTimeout,
      answer,
      media,
      bargeIn,
      endSilence,
      minSpeech,
      maxUtterance,
      audioSocketHost,
      audioSocketPort,
      audioSocketAddress,
      secret: this.credentials?.secret,
    };
    // the server and its live sessions outlive a redeploy: calls in conversation go on in the new flows
    const kept = keepAcrossDeploy(
      this,
      cfg,
      () => new FastAgiInController(cfg, this, t, hooks, records, dialerEnv(RED)),
      (c) => c.close(),
      { attach: (c) => c.attach(this, hooks, records) },
    );
    // a changed node listens once the old server is closed (same port)
    if (!kept.adopted) void kept.ready.then(() => kept.value.listen());
  }
  registerNode<FastAgiInDef, Creds>(RED, 'fastagi-in', FastAgiIn, {
    credentials: { secret: { type: 'password' } },
  });
};
