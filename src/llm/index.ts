/** LLM engines and the conversation turn: the public surface of `src/llm`. */
import { StageError } from '../util/errors';
import { OpenAiChatEngine, type ActionMode } from './openai';
import { ScriptedEngine, type Script } from './scripted';
import type { LlmEngine } from './types';

import { parseOptionalNumber } from '../util/config';
export * from './types';
export { OpenAiChatEngine, DEFAULT_SYSTEM_PROMPT, type ActionMode, type OpenAiChatOptions } from './openai';
export { ScriptedEngine, DEFAULT_SCRIPT, isDoNotCallRequest, type Script, type ScriptIntent } from './scripted';
export { runTurn, TURN_DEFAULTS, type TurnSettings, type TurnInput } from './turn';
export { conversations, dropConversation, trimHistory, ConversationStore } from './history';

/** What an `ai-dialer-llm` config node supplies to llm-turn nodes. */
export interface LlmServerSettings {
  baseUrl?: string;
  model?: string;
  apiKey?: string;
  temperature?: number;
  maxTokens?: number;
  mode?: ActionMode;
}

export interface LlmConfig {
  /** `openai` or `scripted`; empty: LLM_ENGINE, else scripted. */
  engine?: string;
  openai?: {
    baseUrl?: string;
    model?: string;
    apiKey?: string;
    temperature?: number;
    maxTokens?: number;
    systemPrompt?: string;
    mode?: ActionMode;
    transferTargets?: string[];
    defaultTransfer?: string;
  };
  script?: Partial<Script>;
}

export function resolveLlmEngineName(
  configured: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): 'openai' | 'scripted' {
  const raw = (configured && configured.trim()) || (env.LLM_ENGINE && env.LLM_ENGINE.trim()) || 'scripted';
  const n = raw.toLowerCase();
  if (n === 'scripted' || n === 'script') return 'scripted';
  if (n === 'openai' || n === 'openai-compatible' || n === 'ollama' || n === 'vllm' || n === 'llamacpp')
    return 'openai';
  throw new StageError('llm', 'not_configured', `unknown LLM engine "${raw}" (openai or scripted)`, { engine: raw });
}

/** Build an engine; empty settings fall back to LLM_* environment variables. */
export function createLlmEngine(cfg: LlmConfig, env: NodeJS.ProcessEnv = process.env): LlmEngine {
  if (resolveLlmEngineName(cfg.engine, env) === 'scripted') return new ScriptedEngine(cfg.script ?? {});
  const o = cfg.openai ?? {};
  const targets = (o.transferTargets ?? (env.LLM_TRANSFER_TARGETS ?? '').split(','))
    .map((s) => s.trim())
    .filter((s) => s);
  return new OpenAiChatEngine({
    baseUrl: o.baseUrl || env.LLM_BASE_URL || '',
    model: o.model || env.LLM_MODEL || '',
    apiKey: o.apiKey || env.LLM_API_KEY || undefined,
    temperature: o.temperature ?? parseOptionalNumber(env.LLM_TEMPERATURE),
    maxTokens: o.maxTokens ?? parseOptionalNumber(env.LLM_MAX_TOKENS),
    systemPrompt: o.systemPrompt || env.LLM_SYSTEM_PROMPT || '',
    mode: o.mode || (env.LLM_ACTION_MODE as ActionMode | undefined) || 'tools',
    transferTargets: targets,
    defaultTransfer: o.defaultTransfer || env.LLM_TRANSFER_DEFAULT || undefined,
  });
}
