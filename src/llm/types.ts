/** The LLM turn contract shared by the engines, the conversation layer and the llm-turn node. */

export type LlmActionType = 'end_call' | 'transfer' | 'schedule_callback' | 'add_to_dnc';
export const ACTION_TYPES: readonly LlmActionType[] = ['end_call', 'transfer', 'schedule_callback', 'add_to_dnc'];

export type LlmAction =
  | { type: 'end_call'; reason?: string }
  /** `summary`: the model's short summary for the agent (an attended transfer's whisper). */
  | { type: 'transfer'; destination: string; summary?: string }
  /** `time` as the model or caller said it; `at` when it parses as a date-time (ISO 8601). */
  | { type: 'schedule_callback'; time: string; at?: string }
  | { type: 'add_to_dnc' }
  /** Not an engine's action: the call reached an answering machine (AMD); `drop`: a message is left. */
  | { type: 'voicemail'; drop: boolean };

export interface ChatMessage {
  role: 'user' | 'assistant';
  content: string;
}

export interface LlmRequest {
  callId: string;
  /** What the caller said ('' never reaches an engine: silence is handled before). */
  userText: string;
  /** True for the opening line of the call (no user text yet). */
  greeting: boolean;
  /** Template context: contact, campaign, call. */
  context: Record<string, unknown>;
  /** Earlier turns of this call, oldest first, trimmed to the budget. */
  history: ChatMessage[];
  /** Per-call scratch state an engine may keep (e.g. the scripted engine's fallback count). */
  state: Record<string, unknown>;
  timeoutMs: number;
  signal?: AbortSignal;
}

export interface LlmDecision {
  text: string;
  action?: LlmAction;
}

export interface LlmEngine {
  /** `openai` or `scripted`. */
  readonly name: string;
  /** Engine and model for the turn record, e.g. `openai:llama3.2`. */
  readonly label: string;
  decide(req: LlmRequest): Promise<LlmDecision>;
  /**
   * Optional: the same decision, with the reply's speakable text handed to `onText` piece by piece as the
   * engine generates it (stream mode speaks it sentence by sentence). Engines without it are streamed as
   * one piece by `streamDecision` (src/llm/stream.ts).
   */
  stream?(req: LlmRequest, onText: (delta: string) => void): Promise<LlmDecision>;
}

/** Where a reply came from. */
export type ReplySource = 'engine' | 'greeting' | 'supervisor' | 'dnc' | 'silence' | 'voicemail';

export interface LlmReply {
  text: string;
  /** True when the AI part of the call is over (any action ends it). */
  done: boolean;
  action?: LlmAction;
  engine: string;
  source: ReplySource;
  elapsedMs: number;
  /** Stream mode: ms from the start of the turn to the first piece of reply text. */
  firstTokenMs?: number;
}
