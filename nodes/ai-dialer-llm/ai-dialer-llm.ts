import type { Node, NodeAPI, NodeDef } from 'node-red';
import type { ActionMode } from '../../src/llm';
import { parseOptionalNumber } from '../../src/util/config';
import { registerNode } from '../lib/kit';
import type { LlmServerNode } from '../lib/config-nodes';

interface LlmServerDef extends NodeDef {
  baseUrl: string;
  model: string;
  temperature: string;
  maxTokens: string;
  mode: string;
}
interface Creds {
  apiKey?: string;
}

export = function (RED: NodeAPI): void {
  function AiDialerLlm(this: LlmServerNode & Node<Creds>, config: LlmServerDef) {
    RED.nodes.createNode(this, config);
    // empty values fall back to LLM_* environment variables in llm-turn
    this.settings = () => ({
      baseUrl: config.baseUrl || undefined,
      model: config.model || undefined,
      apiKey: this.credentials?.apiKey || undefined,
      temperature: parseOptionalNumber(config.temperature),
      maxTokens: parseOptionalNumber(config.maxTokens),
      mode: (config.mode as ActionMode) || undefined,
    });
  }
  registerNode<LlmServerDef, Creds, LlmServerNode & Node<Creds>>(RED, 'ai-dialer-llm', AiDialerLlm);
};
