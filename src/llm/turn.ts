/**
 * One conversational turn, for any engine: what llm-turn runs.
 *
 * Order: a supervisor line queued for the call wins (engine skipped); an answering machine (the
 * campaign's voicemail message, or nothing); the greeting; a do-not-call
 * request (deterministic, before any model: compliance does not depend on a model noticing);
 * silence (no engine call: the no-input line, then goodbye after too many); otherwise the engine.
 * The call's history is kept in the process-wide store, trimmed to a budget, and dropped when the
 * turn ends the call.
 */
import { performance } from 'perf_hooks';
import { takeSupervisorLine } from '../events/control-bus';
import { renderTemplate } from '../util/template';
import { conversations as defaultStore, trimHistory, type ConversationStore } from './history';
import { isDoNotCallRequest } from './scripted';
import type { LlmEngine, LlmReply, ReplySource, LlmAction } from './types';

export interface TurnSettings {
  /** Opening line template; empty: the engine writes it. */
  greeting?: string;
  /** Said when the caller said nothing. */
  noInput?: string;
  /** Said when the call ends (silence limit, do-not-call). */
  goodbye?: string;
  /** Line said when the number is put on the do-not-call list. */
  dncReply?: string;
  /** Silent turns in a row before the goodbye (default 2). */
  maxSilences?: number;
  /** Detect "do not call me" before the engine (default true). */
  dncDetection?: boolean;
  /** The message left on an answering machine (template); empty: none, the call just ends. */
  voicemailMessage?: string;
  /** History budget in characters (default 6000, about 1500 tokens). */
  historyChars?: number;
  timeoutMs?: number;
}

export const TURN_DEFAULTS = {
  noInput: "Sorry, I didn't catch that. Could you say that again?",
  goodbye: 'Thank you for your time. Goodbye.',
  dncReply: 'I understand. We will not call you again. Goodbye.',
  maxSilences: 2,
  historyChars: 6000,
  timeoutMs: 20000,
};

export interface TurnInput {
  callId: string;
  /** undefined or '' = silence (unless greeting). */
  userText?: string;
  greeting: boolean;
  /** AMD said the call reached an answering machine (msg.call.amd.path): the voicemail, not a conversation. */
  machine?: boolean;
  context: Record<string, unknown>;
  signal?: AbortSignal;
  /**
   * Stream mode: the reply's text as it is generated (engine replies piece by piece, rule replies such as
   * the greeting or the do-not-call line in one piece). `firstTokenMs` on the reply times the first piece.
   */
  onText?: (delta: string) => void;
}

export async function runTurn(
  engine: LlmEngine,
  input: TurnInput,
  settings: TurnSettings = {},
  store: ConversationStore = defaultStore,
): Promise<LlmReply> {
  const t0 = performance.now();
  const conv = store.get(input.callId);
  const say = (tpl: string) => renderTemplate(tpl, input.context);
  const userText = (input.userText ?? '').trim();
  const finish = (text: string, source: ReplySource, action?: LlmAction): LlmReply => {
    if (userText && !input.greeting) conv.history.push({ role: 'user', content: userText });
    conv.history.push({ role: 'assistant', content: text });
    const budget = settings.historyChars ?? TURN_DEFAULTS.historyChars;
    if (conv.history.length > 2) conv.history = trimHistory(conv.history, budget);
    const done = action !== undefined;
    if (done) store.drop(input.callId);
    const reply: LlmReply = {
      text,
      done,
      engine:
        source === 'engine' || source === 'greeting'
          ? engine.label
          : source === 'supervisor'
            ? 'supervisor'
            : `rule:${source}`,
      source,
      elapsedMs: performance.now() - t0,
    };
    if (action) reply.action = action;
    if (input.onText) {
      if (firstTokenMs === undefined) {
        firstTokenMs = performance.now() - t0;
        input.onText(text);
      }
      reply.firstTokenMs = firstTokenMs;
    }
    return reply;
  };
  let firstTokenMs: number | undefined;

  const supervisor = takeSupervisorLine(input.callId);
  if (supervisor) return finish(supervisor, 'supervisor');

  if (input.greeting && input.machine) {
    const message = settings.voicemailMessage?.trim() ? say(settings.voicemailMessage) : '';
    return finish(message, 'voicemail', { type: 'voicemail', drop: !!message });
  }

  if (input.greeting) {
    conv.state.silences = 0;
    if (settings.greeting && settings.greeting.trim()) return finish(say(settings.greeting), 'greeting');
  } else {
    if (settings.dncDetection !== false && userText && isDoNotCallRequest(userText)) {
      return finish(say(settings.dncReply || TURN_DEFAULTS.dncReply), 'dnc', { type: 'add_to_dnc' });
    }
    if (!userText) {
      const silences = ((conv.state.silences as number) ?? 0) + 1;
      conv.state.silences = silences;
      if (silences > (settings.maxSilences ?? TURN_DEFAULTS.maxSilences)) {
        return finish(say(settings.goodbye || TURN_DEFAULTS.goodbye), 'silence', {
          type: 'end_call',
          reason: 'no input',
        });
      }
      return finish(say(settings.noInput || TURN_DEFAULTS.noInput), 'silence');
    }
    conv.state.silences = 0;
  }

  const request = {
    callId: input.callId,
    userText,
    greeting: input.greeting,
    context: input.context,
    history: conv.history.slice(),
    state: conv.state,
    timeoutMs: settings.timeoutMs ?? TURN_DEFAULTS.timeoutMs,
    signal: input.signal,
  };
  const onText = input.onText;
  const decision =
    onText && engine.stream
      ? await engine.stream(request, (delta) => {
          if (!delta) return;
          if (firstTokenMs === undefined) firstTokenMs = performance.now() - t0;
          onText(delta);
        })
      : await engine.decide(request);
  return finish(decision.text, input.greeting ? 'greeting' : 'engine', decision.action);
}
