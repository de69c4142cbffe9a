/**
 * The config nodes of the package as the nodes that use them see them, and typed look-ups
 * (getConfigNode<T> plus a check that the node is the kind expected).
 */
import type { Node, NodeAPI } from 'node-red';
import type { Db } from '../../src/store/db';
import type { AriService } from '../../src/ari/service';
import type { AriConnection } from '../../src/ari/client';
import type { BusHandle } from '../../src/events/bus';
import type { Publisher } from '../../src/events/publisher';
import type { LlmServerSettings } from '../../src/llm';
import { CallRecords, type RecordTexts } from '../../src/calls/records';
import { getConfigNode, translator } from './kit';

/** ai-dialer-store */
export interface StoreConfigNode extends Node {
  /** The shared database (migrated); rejects with a clear error when it cannot be opened. */
  getDb(): Promise<Db>;
  /** Where the data lives, without secrets. */
  description: string;
}

/** ai-dialer-asterisk */
export interface AsteriskConfigNode extends Node {
  /** The shared ARI service (state events, connect(), close). */
  service: AriService;
  /** The shared connection (starts it on first use). */
  connect(): Promise<AriConnection>;
}

/** ai-dialer-bus */
export interface BusConfigNode extends Node {
  /** The shared publisher (connected or buffering); rejects with one clear line when the bus cannot start. */
  getPublisher(): Promise<Publisher>;
  /** The shared bus handle (publisher, embedded broker if any). */
  getBus(): Promise<BusHandle>;
}

/** ai-dialer-llm */
export interface LlmServerNode extends Node {
  /** The endpoint settings; empty values fall back to LLM_* environment variables in llm-turn. */
  settings(): LlmServerSettings;
}

/** The store config node `id`, when set and deployed. */
export function storeNode(RED: NodeAPI, id: string | undefined): StoreConfigNode | undefined {
  const n = getConfigNode<StoreConfigNode>(RED, id);
  return n && typeof n.getDb === 'function' ? n : undefined;
}

/** The asterisk config node `id`, when set and deployed. */
export function asteriskNode(RED: NodeAPI, id: string | undefined): AsteriskConfigNode | undefined {
  const n = getConfigNode<AsteriskConfigNode>(RED, id);
  return n && n.service && typeof n.connect === 'function' ? n : undefined;
}

/** The bus config node `id`, when set and deployed. */
export function busNode(RED: NodeAPI, id: string | undefined): BusConfigNode | undefined {
  const n = getConfigNode<BusConfigNode>(RED, id);
  return n && typeof n.getPublisher === 'function' ? n : undefined;
}

/** The LLM server config node `id`, when set and deployed. */
export function llmServerNode(RED: NodeAPI, id: string | undefined): LlmServerNode | undefined {
  const n = getConfigNode<LlmServerNode>(RED, id);
  return n && typeof n.settings === 'function' ? n : undefined;
}

/** The call-record service over the store node `id` (undefined without a store), warning through `node`. */
export function callRecords(RED: NodeAPI, id: string | undefined, node: Node): CallRecords | undefined {
  const store = storeNode(RED, id);
  if (!store) return undefined;
  const t = translator(RED, 'ai-dialer-store');
  const texts: RecordTexts = {
    turnFailed: (error) => t('warn.turnFailed', { error }),
    dncFailed: (error) => t('warn.dncFailed', { error }),
    finaliseFailed: (callId, error) => t('warn.finaliseFailed', { id: callId, error }),
  };
  return new CallRecords(
    () => store.getDb(),
    (w) => node.warn(w),
    texts,
  );
}
