/**
 * Per-call conversation state, process-wide, keyed by call id: the chat history (user/assistant
 * turns) and small counters. Bounded three ways so a call that never says goodbye cannot leak:
 * dropped when a turn ends the call (or `dropConversation` at hang-up), evicted after an idle time,
 * and the least recently used call goes when the number of calls reaches the cap.
 */
import type { ChatMessage } from './types';

export interface Conversation {
  history: ChatMessage[];
  state: Record<string, unknown>;
  lastUsed: number;
}

export interface ConversationStoreOptions {
  maxCalls?: number;
  idleMs?: number;
  now?: () => number;
}

export class ConversationStore {
  private readonly calls = new Map<string, Conversation>();
  private readonly maxCalls: number;
  private readonly idleMs: number;
  private readonly now: () => number;

  constructor(opts: ConversationStoreOptions = {}) {
    this.maxCalls = opts.maxCalls ?? 20000;
    this.idleMs = opts.idleMs ?? 2 * 60 * 60 * 1000;
    this.now = opts.now ?? Date.now;
  }

  /** The conversation of a call, created on first use. */
  get(callId: string): Conversation {
    const id = String(callId);
    const t = this.now();
    let c = this.calls.get(id);
    if (c && t - c.lastUsed > this.idleMs) {
      this.calls.delete(id);
      c = undefined;
    }
    if (c) {
      this.calls.delete(id); // move to the most recently used end
    } else {
      this.sweep(t);
      c = { history: [], state: {}, lastUsed: t };
    }
    c.lastUsed = t;
    this.calls.set(id, c);
    return c;
  }

  has(callId: string): boolean {
    return this.calls.has(String(callId));
  }

  drop(callId: string): boolean {
    return this.calls.delete(String(callId));
  }

  get size(): number {
    return this.calls.size;
  }

  clear(): void {
    this.calls.clear();
  }

  private sweep(t: number): void {
    for (const [id, c] of this.calls) {
      if (this.calls.size < this.maxCalls && t - c.lastUsed <= this.idleMs) break; // oldest first: the rest are newer
      this.calls.delete(id);
    }
  }
}

/** Drop the oldest messages until the history fits `budgetChars` (the newest message always stays). */
export function trimHistory(history: ChatMessage[], budgetChars: number): ChatMessage[] {
  let total = 0;
  let start = history.length;
  for (let i = history.length - 1; i >= 0; i--) {
    const len = history[i].content.length + 16; // role and framing overhead
    if (total + len > budgetChars && start < history.length) break;
    total += len;
    start = i;
  }
  return history.slice(start);
}

/** The process-wide store used by llm-turn nodes. */
export const conversations = new ConversationStore();

/** Forget a call's conversation (call ended). Safe to call for unknown ids. */
export function dropConversation(callId: string | number): void {
  conversations.drop(String(callId));
}
