import type { NodeAPI, Node, NodeDef } from 'node-red';
import type { ActionMode, LlmServerSettings } from '../../src/llm';

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
interface LlmServerNode extends Node<Creds> {
  /** The endpoint settings; empty values fall back to LLM_* environment variables in llm-turn. */
  settings(): LlmServerSettings;
}

const num = (v: string | undefined): number | undefined => (v === undefined || v === '' ? undefined : Number(v));

export = function (RED: NodeAPI): void {
  function AiDialerLlm(this: LlmServerNode, config: LlmServerDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    node.settings = () => ({
      baseUrl: config.baseUrl || undefined,
      model: config.model || undefined,
      apiKey: node.credentials?.apiKey || undefined,
      temperature: num(config.temperature),
      maxTokens: num(config.maxTokens),
      mode: (config.mode as ActionMode) || undefined,
    });
  }
  RED.nodes.registerType('ai-dialer-llm', AiDialerLlm as unknown as Parameters<NodeAPI['nodes']['registerType']>[1], {
    credentials: { apiKey: { type: 'password' } },
  });
};
