/** Turning model output into something a phone voice can say, and parsing the model's actions. */
import { StageError } from '../util/errors';
import { ACTION_TYPES, type LlmAction, type LlmActionType } from './types';

/** Longest reply spoken, in characters. */
export const MAX_REPLY_CHARS = 600;

/**
 * Clean a model reply for speech: drop reasoning blocks (`<think>...</think>`) some local models emit,
 * markdown emphasis, headings and code fences, control characters; one line; capped at a sentence end.
 */
export function cleanReplyText(raw: unknown): string {
  if (typeof raw !== 'string') return '';
  let s = raw.replace(/<think>[\s\S]*?(<\/think>|$)/gi, ' ');
  s = s
    .replace(/```[a-z]*\n?|```/gi, ' ')
    .replace(/[*`]+/g, '')
    .replace(/(^|\n)\s*(#+|>+|[-•]\s)/g, '$1 ');
  s = s
    .replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ')
    .replace(/\s{2,}/g, ' ')
    .trim();
  if (s.length > MAX_REPLY_CHARS) {
    const cut = s.slice(0, MAX_REPLY_CHARS);
    const end = Math.max(cut.lastIndexOf('. '), cut.lastIndexOf('? '), cut.lastIndexOf('! '));
    s = end > MAX_REPLY_CHARS / 2 ? cut.slice(0, end + 1) : cut.trimEnd();
  }
  return s;
}

/** A dialplan destination: extension, `exten@context`, or a queue name. Nothing else reaches the flow. */
export const DESTINATION = /^[A-Za-z0-9_+*#.-]{1,40}(@[A-Za-z0-9_-]{1,40})?$/;

export interface ActionPolicy {
  /** Destinations the model may transfer to (empty: only `defaultTransfer`). */
  transferTargets: string[];
  /** Used when the model asks for a transfer without a (valid, allowed) destination. */
  defaultTransfer?: string;
}

/** True when transfers are possible at all under this policy. */
export function transferAllowed(p: ActionPolicy): boolean {
  return p.transferTargets.length > 0 || !!p.defaultTransfer;
}

/**
 * Build a validated action from a name and arguments as a model gave them. Unknown names give
 * undefined (ignored); a transfer nowhere allowed, or a callback without a time, is a bad_response.
 */
export function buildAction(name: unknown, args: unknown, policy: ActionPolicy, engine: string): LlmAction | undefined {
  if (typeof name !== 'string' || !(ACTION_TYPES as readonly string[]).includes(name)) return undefined;
  const a = (args && typeof args === 'object' ? args : {}) as Record<string, unknown>;
  const type = name as LlmActionType;
  switch (type) {
    case 'end_call':
      return typeof a.reason === 'string' && a.reason.trim()
        ? { type, reason: a.reason.trim().slice(0, 200) }
        : { type };
    case 'add_to_dnc':
      return { type };
    case 'transfer': {
      const want = typeof a.destination === 'string' ? a.destination.trim() : '';
      const ok =
        want && DESTINATION.test(want) && (policy.transferTargets.includes(want) || want === policy.defaultTransfer);
      // the model's summary for the agent: one line, bounded (it is spoken to the agent, never run)
      const summary =
        typeof a.summary === 'string'
          ? a.summary
              .replace(/[\u0000-\u001f]+/g, ' ')
              .trim()
              .slice(0, 300)
          : '';
      const extra = summary ? { summary } : {};
      if (ok) return { type, destination: want, ...extra };
      if (policy.defaultTransfer) return { type, destination: policy.defaultTransfer, ...extra };
      throw new StageError(
        'llm',
        'bad_response',
        `model asked to transfer to ${want ? `"${want.slice(0, 40)}", which is not an allowed destination` : 'no destination'}`,
        { engine },
      );
    }
    case 'schedule_callback': {
      const time =
        typeof a.time === 'string'
          ? a.time
              .replace(/[\u0000-\u001f]+/g, ' ')
              .trim()
              .slice(0, 100)
          : '';
      if (!time)
        throw new StageError('llm', 'bad_response', 'model asked to schedule a callback without a time', { engine });
      // Only an ISO 8601 date(-time) becomes `at`: Date.parse reads "10" as the year 2001.
      const ms = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(time)
        ? Date.parse(time)
        : NaN;
      return Number.isFinite(ms) ? { type, time, at: new Date(ms).toISOString() } : { type, time };
    }
  }
}

/** Parse tool-call arguments: a JSON string (OpenAI, vLLM), an object (some Ollama versions) or empty. */
export function parseArguments(raw: unknown, engine: string, tool: string): Record<string, unknown> {
  if (raw === undefined || raw === null || raw === '') return {};
  if (typeof raw === 'object') return raw as Record<string, unknown>;
  if (typeof raw !== 'string')
    throw new StageError('llm', 'bad_response', `arguments of ${tool} are not JSON`, { engine });
  try {
    const v = JSON.parse(raw);
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    /* fall through */
  }
  throw new StageError('llm', 'bad_response', `arguments of ${tool} are not a JSON object: ${raw.slice(0, 80)}`, {
    engine,
  });
}

/** What to say when the model took an action without saying anything. */
export const DEFAULT_ACTION_LINES: Record<LlmActionType | 'voicemail', string> = {
  end_call: 'Thank you for your time. Goodbye.',
  transfer: 'Please hold while I transfer you.',
  schedule_callback: 'Thank you, we will call you back then. Goodbye.',
  add_to_dnc: 'I understand. We will not call you again. Goodbye.',
  voicemail: '',
};
