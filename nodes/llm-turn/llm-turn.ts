import type { NodeAPI, Node, NodeDef } from 'node-red';
import { LlmTurnController, type LlmTurnConfig } from '../../src/controllers/llm-turn';
import { dialerEnv, onInput, registerNode, translator } from '../lib/kit';
import { callRecords, llmServerNode, storeNode } from '../lib/config-nodes';

type LlmTurnDef = NodeDef & LlmTurnConfig & { server?: string; store?: string };
interface Creds {
  apiKey?: string;
}

export = function (RED: NodeAPI): void {
  const t = translator(RED, 'llm-turn');
  function LlmTurn(this: Node<Creds>, config: LlmTurnDef) {
    RED.nodes.createNode(this, config);
    // An ai-dialer-llm config node, when chosen, supplies the endpoint (and implies the openai engine).
    const server = config.server ? (llmServerNode(RED, config.server)?.settings() ?? null) : undefined;
    const store = storeNode(RED, config.store);
    const ctl = new LlmTurnController({ ...config, apiKey: this.credentials?.apiKey }, this, t, {
      server,
      getDb: store && (() => store.getDb()),
      records: callRecords(RED, config.store, this),
      env: dialerEnv(RED),
    });
    onInput(this, (msg, { signal }) => ctl.handle(msg, signal).then((m) => m && [m, null]), {
      failureOutput: 1,
      outputs: 2,
      stage: 'llm',
      onFailure: (err) => ctl.failed(err),
    });
    this.on('close', () => this.status({}));
  }
  registerNode<LlmTurnDef, Creds>(RED, 'llm-turn', LlmTurn, {
    credentials: { apiKey: { type: 'password' } },
  });
};
