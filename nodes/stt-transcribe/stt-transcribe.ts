import type { NodeAPI, Node, NodeDef, NodeMessage } from 'node-red';
import { SttTranscribeController, type SttTranscribeConfig } from '../../src/controllers/stt-transcribe';
import { dialerEnv, onInput, registerNode, translator } from '../lib/kit';

type SttDef = NodeDef & SttTranscribeConfig;
interface Creds {
  apiKey?: string;
}

export = function (RED: NodeAPI): void {
  const t = translator(RED, 'stt-transcribe');
  function SttTranscribe(this: Node<Creds>, config: SttDef) {
    RED.nodes.createNode(this, config);
    const ctl = new SttTranscribeController(
      { ...config, apiKey: this.credentials?.apiKey },
      this,
      t,
      dialerEnv(RED),
      (partial) => this.send([null, null, partial as NodeMessage]),
    );
    onInput(this, (msg, { signal }) => ctl.handle(msg, signal).then((m) => [m, null, null]), {
      failureOutput: 1,
      outputs: 3,
      stage: 'stt',
      onFailure: (err) => ctl.failed(err),
    });
    this.on('close', () => {
      ctl.close();
      this.status({});
    });
  }
  registerNode<SttDef, Creds>(RED, 'stt-transcribe', SttTranscribe, {
    credentials: { apiKey: { type: 'password' } },
  });
};
