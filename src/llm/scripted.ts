/**
 * The scripted engine: no model, an editable list of intents. Each intent matches keywords (comma
 * separated, whole words, case and punctuation ignored) or a regular expression (`/.../flags`), and
 * has a reply (a template) and an action. Misses get the fallback line; after `maxFallbacks` misses
 * in a row the call ends with the goodbye. Good for reminders, confirmations and short surveys.
 */
import { StageError } from '../util/errors';
import { renderTemplate } from '../util/template';
import { buildAction, DESTINATION } from './reply-text';
import {
  ACTION_TYPES,
  type LlmAction,
  type LlmActionType,
  type LlmDecision,
  type LlmEngine,
  type LlmRequest,
} from './types';

export interface ScriptIntent {
  name?: string;
  /** `yes, sure, that works` (keywords) or `/\b(yes|yeah)\b/i` (regular expression). */
  match: string;
  reply: string;
  action?: LlmActionType | 'none' | '';
  /** For `transfer`. */
  destination?: string;
  /** For `schedule_callback`: the time; empty takes the caller's words. */
  time?: string;
}

export interface Script {
  greeting?: string;
  fallback?: string;
  goodbye?: string;
  intents: ScriptIntent[];
  /** Misses in a row before the goodbye (default 2). */
  maxFallbacks?: number;
}

export const DEFAULT_SCRIPT: Required<Script> = {
  greeting:
    'Hello {{contact.name|there}}, this is a reminder call from {{campaign.name|our office}}. Can you still make your appointment?',
  fallback: "Sorry, I didn't catch that. Could you say that again?",
  goodbye: 'Thank you for your time. Goodbye.',
  maxFallbacks: 2,
  intents: [
    {
      name: 'yes',
      match: 'yes, yeah, yep, sure, correct, that works, i can, i will, of course',
      reply: 'Great, we will see you then. Goodbye.',
      action: 'end_call',
    },
    {
      name: 'no',
      match: "no, nope, can't, cannot, won't, not able",
      reply: 'No problem. When would suit you better?',
      action: 'none',
    },
    {
      name: 'callback',
      match: '/\\b(call (me )?(back|later)|another time|not a good time|busy right now)\\b/i',
      reply: 'Of course, we will call you back later. Goodbye.',
      action: 'schedule_callback',
    },
  ],
};

interface Compiled {
  intent: ScriptIntent;
  test: (normalised: string, raw: string) => boolean;
}

/** Lower case, straight apostrophes, clause punctuation to ` | `, other punctuation to spaces, single spaces, padded for whole-word tests. */
export function normaliseForMatch(s: string): string {
  return (
    ' ' +
    s
      .toLowerCase()
      .replace(/[\u2018\u2019\u02bc`]/g, "'")
      .replace(/[.,;:!?]+/g, ' | ') // clause boundaries: phrases never match across them
      .replace(/[^\p{L}\p{N}'| ]+/gu, ' ')
      .replace(/\s+/g, ' ')
      .trim() +
    ' '
  );
}

/** Compile one intent's match rule; a clear not_configured error for an invalid one. */
export function compileMatch(match: string, label: string): Compiled['test'] {
  const m = /^\/(.+)\/([a-z]*)$/s.exec(match.trim());
  if (m) {
    const flags = [...new Set(m[2].replace(/[^imsu]/g, ''))].join('');
    let re: RegExp;
    try {
      re = new RegExp(m[1], flags);
    } catch (err) {
      throw new StageError(
        'llm',
        'not_configured',
        `intent "${label}": invalid regular expression: ${(err as Error).message}`,
        { engine: 'scripted' },
      );
    }
    return (_n, raw) => re.test(raw.slice(0, 2000));
  }
  const words = match
    .split(',')
    .map((k) => normaliseForMatch(k).trim())
    .filter((k) => k);
  if (!words.length)
    throw new StageError('llm', 'not_configured', `intent "${label}" has no keywords`, { engine: 'scripted' });
  const padded = words.map((w) => ` ${w} `);
  return (n) => padded.some((w) => n.includes(w));
}

/** Phrases that always mean "do not call me again" (checked before any engine: compliance is code). */
const DNC_PATTERNS: RegExp[] = [
  // "do not call me", "stop calling this number", "never phone us again"
  /\b(do not|don't|dont|never|stop|quit) (ever )?(call|calling|ring|ringing|phone|phoning|contact|contacting) (me|us|this number|my number|here)\b/,
  // "stop calling", "please don't call again" (the request is the whole end of the sentence)
  /\b(do not|don't|dont|never|stop|quit|no more) (ever )?(call|calling|ring|ringing|phone|phoning|contact|contacting)(( \|)?( again| anymore| any more| please| thanks| thank you))*( \|)* $/,
  /\b(take|remove|delete|put) (me|my number|this number|us) (off|from|on) (your|the|this) (list|do not call list|calling list|database)\b/,
  /\bdo not call list\b/,
  /\bunsubscribe\b/,
];

/** True when the caller asks not to be called again. */
export function isDoNotCallRequest(text: string): boolean {
  const n = normaliseForMatch(text);
  return DNC_PATTERNS.some((re) => re.test(n));
}

export class ScriptedEngine implements LlmEngine {
  readonly name = 'scripted';
  readonly label = 'scripted';
  readonly script: Required<Script>;
  private readonly compiled: Compiled[];

  constructor(script: Partial<Script> = {}) {
    const s: Required<Script> = {
      greeting: script.greeting?.trim() || DEFAULT_SCRIPT.greeting,
      fallback: script.fallback?.trim() || DEFAULT_SCRIPT.fallback,
      goodbye: script.goodbye?.trim() || DEFAULT_SCRIPT.goodbye,
      maxFallbacks: script.maxFallbacks ?? DEFAULT_SCRIPT.maxFallbacks,
      intents: script.intents ?? DEFAULT_SCRIPT.intents,
    };
    if (!Number.isInteger(s.maxFallbacks) || s.maxFallbacks < 0 || s.maxFallbacks > 20) {
      throw new StageError('llm', 'not_configured', `max fallbacks must be 0..20 (got ${s.maxFallbacks})`, {
        engine: this.name,
      });
    }
    this.script = s;
    this.compiled = s.intents.map((intent, i) => {
      const label = intent.name || `#${i + 1}`;
      if (typeof intent.match !== 'string' || typeof intent.reply !== 'string') {
        throw new StageError('llm', 'not_configured', `intent "${label}" needs a match and a reply`, {
          engine: this.name,
        });
      }
      const action = intent.action || 'none';
      if (action !== 'none' && !(ACTION_TYPES as readonly string[]).includes(action)) {
        throw new StageError('llm', 'not_configured', `intent "${label}": unknown action "${action}"`, {
          engine: this.name,
        });
      }
      if (action === 'transfer' && !(intent.destination && DESTINATION.test(intent.destination))) {
        throw new StageError(
          'llm',
          'not_configured',
          `intent "${label}": transfer needs a destination (extension, exten@context or queue), got "${intent.destination ?? ''}"`,
          { engine: this.name },
        );
      }
      return { intent, test: compileMatch(intent.match, label) };
    });
  }

  /** The first intent matching `text`, if any. */
  match(text: string): ScriptIntent | undefined {
    const n = normaliseForMatch(text);
    return this.compiled.find((c) => c.test(n, text))?.intent;
  }

  async decide(req: LlmRequest): Promise<LlmDecision> {
    const say = (t: string) => renderTemplate(t, req.context);
    if (req.greeting) return { text: say(this.script.greeting) };
    const intent = this.match(req.userText);
    if (!intent) {
      const misses = ((req.state.fallbacks as number) ?? 0) + 1;
      req.state.fallbacks = misses;
      if (misses > this.script.maxFallbacks)
        return { text: say(this.script.goodbye), action: { type: 'end_call', reason: 'not understood' } };
      return { text: say(this.script.fallback) };
    }
    req.state.fallbacks = 0;
    const text = say(intent.reply) || say(this.script.goodbye);
    const type = intent.action || 'none';
    if (type === 'none') return { text };
    let action: LlmAction | undefined;
    if (type === 'transfer') {
      action = { type: 'transfer', destination: intent.destination as string };
    } else if (type === 'schedule_callback') {
      action = buildAction(
        'schedule_callback',
        { time: intent.time || req.userText },
        { transferTargets: [] },
        this.name,
      );
    } else action = { type } as LlmAction;
    return { text, action };
  }

  /** Stream mode: the same decision, its reply handed over word by word (as a model would stream it). */
  async stream(req: LlmRequest, onText: (delta: string) => void): Promise<LlmDecision> {
    const d = await this.decide(req);
    for (const piece of d.text.match(/\S+\s*/g) ?? []) onText(piece);
    return d;
  }
}
