import type { NodeAPI, Node, NodeDef } from 'node-red';
import { TtsSpeakController, type TtsSpeakConfig } from '../../src/controllers/tts-speak';
import { dialerEnv, onInput, registerNode, translator } from '../lib/kit';
import { callRecords } from '../lib/config-nodes';

type TtsSpeakDef = NodeDef & TtsSpeakConfig & { store?: string };
interface Creds {
  apiKey?: string;
}

export = function (RED: NodeAPI): void {
  const t = translator(RED, 'tts-speak');
  function TtsSpeak(this: Node<Creds>, config: TtsSpeakDef) {
    RED.nodes.createNode(this, config);
    const ctl = new TtsSpeakController(
      { ...config, apiKey: this.credentials?.apiKey },
      this,
      t,
      callRecords(RED, config.store, this),
      dialerEnv(RED),
    );
    onInput(this, (msg, { signal }) => ctl.handle(msg, signal).then((m) => [m, null]), {
      failureOutput: 1,
      outputs: 2,
      stage: 'tts',
      onFailure: (err) => ctl.failed(err),
    });
    this.on('close', () => this.status({}));
  }
  registerNode<TtsSpeakDef, Creds>(RED, 'tts-speak', TtsSpeak, {
    credentials: { apiKey: { type: 'password' } },
  });
};
