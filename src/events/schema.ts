/**
 * JSON schemas of the v1 event payloads, and a small validator for the subset of JSON Schema they use
 * (type, properties, required, additionalProperties: false, enum, const, minimum, maximum, minLength,
 * maxLength, pattern, items). The schemas are plain data: dashboards and other consumers can read them
 * (`eventSchemas`) and validate with any JSON Schema library.
 */

export const SCHEMA_VERSION = 1;

export type JsonType = 'string' | 'number' | 'integer' | 'boolean' | 'object' | 'array' | 'null';

export interface JsonSchema {
  $id?: string;
  title?: string;
  description?: string;
  type?: JsonType | JsonType[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean;
  enum?: ReadonlyArray<string | number | boolean | null>;
  const?: string | number | boolean | null;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  items?: JsonSchema;
  maxItems?: number;
}

export const EVENT_TYPES = [
  'call_started',
  'call_answered',
  'status',
  'conversation_turn',
  'call_ended',
  'campaign_progress',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export const CALL_STATUSES = [
  'initiated',
  'ringing',
  'answered',
  'in_progress',
  'completed',
  'failed',
  'no_answer',
  'busy',
  'congestion',
  'cancelled',
  'machine',
] as const;
export const CALL_OUTCOMES = [
  'answered',
  'completed',
  'busy',
  'no_answer',
  'congestion',
  'failed',
  'cancelled',
  'machine',
] as const;

const id: JsonSchema = { type: ['string', 'integer'], pattern: '^[A-Za-z0-9_.:@-]{1,128}$' };
const optId: JsonSchema = { type: ['string', 'integer', 'null'], pattern: '^[A-Za-z0-9_.:@-]{1,128}$' };
const ms: JsonSchema = { type: 'number', minimum: 0 };

function base(type: EventType, extra: Record<string, JsonSchema>, required: string[], description: string): JsonSchema {
  return {
    $id: `ai-dialer/v1/${type}`,
    title: type,
    description,
    type: 'object',
    additionalProperties: false,
    properties: {
      v: { const: SCHEMA_VERSION },
      type: { const: type },
      ts: { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d{1,3})?Z$' },
      ...extra,
    },
    required: ['v', 'type', 'ts', ...required],
  };
}

const callIds: Record<string, JsonSchema> = {
  callId: id,
  campaignId: optId,
  contactId: optId,
  phone: { type: 'string', maxLength: 32 },
};

export const eventSchemas: Record<EventType, JsonSchema> = {
  call_started: base(
    'call_started',
    {
      ...callIds,
      callerId: { type: ['string', 'null'], maxLength: 32 },
      contactName: { type: ['string', 'null'], maxLength: 200 },
    },
    ['callId', 'campaignId', 'phone'],
    'A call was created and is about to be dialed (or an inbound call arrived).',
  ),
  call_answered: base(
    'call_answered',
    {
      ...callIds,
      channel: { type: ['string', 'null'], maxLength: 200 },
      amd: { type: ['string', 'null'], enum: ['HUMAN', 'MACHINE', 'NOTSURE', 'HANGUP', 'NOTRUN', null] },
    },
    ['callId', 'campaignId'],
    'The callee answered; the conversation starts.',
  ),
  status: base(
    'status',
    {
      ...callIds,
      status: { type: 'string', enum: CALL_STATUSES },
      detail: { type: ['string', 'null'], maxLength: 500 },
      writePending: {
        type: 'boolean',
        description:
          'true: writes of this call wait for the database (retried until it is back); false: they are stored',
      },
    },
    ['callId', 'campaignId', 'status'],
    'The call status changed.',
  ),
  conversation_turn: base(
    'conversation_turn',
    {
      ...callIds,
      seq: { type: 'integer', minimum: 0 },
      userText: { type: ['string', 'null'], maxLength: 10000 },
      botText: { type: ['string', 'null'], maxLength: 10000 },
      confidence: { type: ['number', 'null'], minimum: 0, maximum: 1 },
      action: { type: ['string', 'null'], maxLength: 64 },
      simulated: {
        type: 'boolean',
        description:
          "true when userText was read back from the simulator's recording (the demo's sim STT), not recognised from speech",
      },
      timing: {
        type: 'object',
        additionalProperties: false,
        properties: {
          recordMs: ms,
          sttMs: ms,
          llmMs: ms,
          ttsMs: ms,
          playbackMs: ms,
          totalMs: ms,
          endpointMs: {
            ...ms,
            description: 'stream mode: silence waited after the caller spoke before the turn ended',
          },
          llmFirstTokenMs: {
            ...ms,
            description: "stream mode: to the LLM's first token (the whole reply when the engine does not stream)",
          },
          ttsFirstAudioMs: { ...ms, description: 'stream mode: to the first audio of the reply' },
          replyLatencyMs: {
            ...ms,
            description: "stream mode: end of the caller's speech to our first audio frame on the wire",
          },
        },
        required: [],
      },
      media: { type: 'string', enum: ['record', 'stream'], description: 'how the turn was heard and spoken' },
      interrupted: {
        type: 'boolean',
        description: 'stream mode: the caller talked over the reply and it was stopped (barge-in)',
      },
      playedText: {
        type: 'string',
        maxLength: 10000,
        description: 'stream mode, interrupted: the part of botText the caller heard',
      },
      writePending: {
        type: 'boolean',
        description:
          'true: writes of this call wait for the database (retried until it is back); false: they are stored',
      },
    },
    ['callId', 'campaignId', 'seq', 'timing'],
    'One conversation turn: what the caller said, what the bot answered, and how long each stage took.',
  ),
  call_ended: base(
    'call_ended',
    {
      ...callIds,
      outcome: { type: 'string', enum: CALL_OUTCOMES },
      durationMs: { type: 'integer', minimum: 0 },
      hangupCause: { type: ['integer', 'null'], minimum: 0 },
      transcript: {
        type: 'array',
        maxItems: 1000,
        items: {
          type: 'object',
          additionalProperties: false,
          properties: {
            seq: { type: 'integer', minimum: 0 },
            userText: { type: ['string', 'null'], maxLength: 10000 },
            botText: { type: ['string', 'null'], maxLength: 10000 },
          },
          required: ['seq'],
        },
      },
    },
    ['callId', 'campaignId', 'outcome', 'durationMs', 'transcript'],
    'The call ended, with its outcome, duration and whole transcript.',
  ),
  campaign_progress: base(
    'campaign_progress',
    {
      campaignId: id,
      state: { type: ['string', 'null'], enum: ['draft', 'running', 'paused', 'stopped', 'completed', null] },
      total: { type: 'integer', minimum: 0 },
      queued: { type: 'integer', minimum: 0 },
      retrying: { type: 'integer', minimum: 0 },
      nextRetryAt: { type: ['string', 'null'], maxLength: 40 },
      dialing: { type: 'integer', minimum: 0 },
      active: { type: 'integer', minimum: 0 },
      completed: { type: 'integer', minimum: 0 },
      failed: { type: 'integer', minimum: 0 },
      no_answer: { type: 'integer', minimum: 0 },
      busy: { type: 'integer', minimum: 0 },
      machine: { type: 'integer', minimum: 0 },
      dnc_skipped: { type: 'integer', minimum: 0 },
      percent: { type: 'number', minimum: 0, maximum: 100 },
    },
    ['campaignId', 'queued', 'dialing', 'active', 'completed', 'failed', 'no_answer', 'busy', 'dnc_skipped', 'percent'],
    'Counters of a campaign from its database (retained on the campaign status topic): every contact in one bucket, so they add up to total; retrying contacts wait until nextRetryAt.',
  ),
};

function typeOf(v: unknown): JsonType {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v as JsonType;
}

function typeMatches(actual: JsonType, want: JsonType): boolean {
  return actual === want || (want === 'number' && actual === 'integer');
}

const regexCache = new Map<string, RegExp>();
function regex(pattern: string): RegExp {
  let r = regexCache.get(pattern);
  if (!r) {
    r = new RegExp(pattern);
    regexCache.set(pattern, r);
  }
  return r;
}

/** Validate a value against a schema; returns the list of problems (empty = valid). */
export function validate(schema: JsonSchema, value: unknown, path = '$'): string[] {
  const errs: string[] = [];
  const t = typeOf(value);
  if (typeof value === 'number' && !Number.isFinite(value)) return [`${path}: must be a finite number`];
  if ('const' in schema && value !== schema.const) return [`${path}: must be ${JSON.stringify(schema.const)}`];
  if (schema.type) {
    const types = Array.isArray(schema.type) ? schema.type : [schema.type];
    if (!types.some((w) => typeMatches(t, w))) return [`${path}: must be ${types.join(' or ')}, got ${t}`];
  }
  if (schema.enum && !schema.enum.includes(value as never))
    errs.push(`${path}: must be one of ${schema.enum.map((e) => JSON.stringify(e)).join(', ')}`);
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum) errs.push(`${path}: must be >= ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum) errs.push(`${path}: must be <= ${schema.maximum}`);
  }
  if (typeof value === 'string' || typeof value === 'number') {
    const s = String(value);
    if (typeof value === 'string') {
      if (schema.minLength !== undefined && s.length < schema.minLength)
        errs.push(`${path}: shorter than ${schema.minLength}`);
      if (schema.maxLength !== undefined && s.length > schema.maxLength)
        errs.push(`${path}: longer than ${schema.maxLength}`);
    }
    if (schema.pattern !== undefined && !regex(schema.pattern).test(s))
      errs.push(`${path}: does not match ${schema.pattern}`);
  }
  if (t === 'object' && (schema.properties || schema.required)) {
    const obj = value as Record<string, unknown>;
    for (const r of schema.required ?? [])
      if (!(r in obj) || obj[r] === undefined) errs.push(`${path}.${r}: is required`);
    for (const [k, v] of Object.entries(obj)) {
      if (v === undefined) continue;
      const ps = schema.properties?.[k];
      if (ps) errs.push(...validate(ps, v, `${path}.${k}`));
      else if (schema.additionalProperties === false) errs.push(`${path}.${k}: is not allowed`);
    }
  }
  if (t === 'array') {
    const arr = value as unknown[];
    if (schema.maxItems !== undefined && arr.length > schema.maxItems)
      errs.push(`${path}: more than ${schema.maxItems} items`);
    if (schema.items) arr.forEach((item, i) => errs.push(...validate(schema.items!, item, `${path}[${i}]`)));
  }
  return errs;
}

type Check = (v: unknown) => boolean;

/**
 * A schema compiled once into a predicate: true only when `validate` would find no problem (it may say
 * false for a value `validate` accepts, e.g. a key named like an Object.prototype member; the caller then
 * asks `validate`). No array, string or closure is made per value on the way to `true`.
 */
function compile(schema: JsonSchema): Check {
  const hasConst = 'const' in schema;
  const constant = schema.const;
  const types = schema.type === undefined ? undefined : Array.isArray(schema.type) ? schema.type : [schema.type];
  const allows = (t: JsonType) => !types || types.some((w) => typeMatches(t, w));
  const okNull = allows('null');
  const okBool = allows('boolean');
  const okString = allows('string');
  const okNumber = allows('number');
  const okInteger = allows('integer');
  const okObject = allows('object');
  const okArray = allows('array');
  const en = schema.enum;
  const { minimum, maximum, minLength, maxLength, maxItems } = schema;
  const re = schema.pattern === undefined ? undefined : regex(schema.pattern);
  const checkObject = !!(schema.properties || schema.required);
  const required = schema.required ?? [];
  const props = new Map<string, Check>();
  for (const [k, ps] of Object.entries(schema.properties ?? {})) props.set(k, compile(ps));
  const closed = schema.additionalProperties === false;
  const items = schema.items ? compile(schema.items) : undefined;
  return (v) => {
    if (hasConst && v !== constant) return false;
    if (en && !en.includes(v as never)) return false;
    switch (typeof v) {
      case 'number':
        if (!Number.isFinite(v)) return false;
        if (!(okNumber || (okInteger && Number.isInteger(v)))) return false;
        if (minimum !== undefined && v < minimum) return false;
        if (maximum !== undefined && v > maximum) return false;
        return !re || re.test(String(v));
      case 'string':
        if (!okString) return false;
        if (minLength !== undefined && v.length < minLength) return false;
        if (maxLength !== undefined && v.length > maxLength) return false;
        return !re || re.test(v);
      case 'boolean':
        return okBool;
      case 'object': {
        if (v === null) return okNull;
        if (Array.isArray(v)) {
          if (!okArray) return false;
          if (maxItems !== undefined && v.length > maxItems) return false;
          if (items) for (let i = 0; i < v.length; i++) if (!items(v[i])) return false;
          return true;
        }
        if (!okObject) return false;
        if (!checkObject) return true;
        const obj = v as Record<string, unknown>;
        for (let i = 0; i < required.length; i++) if (obj[required[i]] === undefined) return false;
        for (const k in obj) {
          if (!Object.prototype.hasOwnProperty.call(obj, k)) return false;
          const x = obj[k];
          if (x === undefined) continue;
          const c = props.get(k);
          if (c) {
            if (!c(x)) return false;
          } else if (closed) return false;
        }
        return true;
      }
      default:
        return false;
    }
  };
}

const compiled = new Map<string, Check>(EVENT_TYPES.map((t) => [t, compile(eventSchemas[t])]));

/** Validate an event payload against the schema of its `type`. */
export function validateEvent(event: unknown): string[] {
  if (typeOf(event) !== 'object') return ['$: event must be an object'];
  const type = (event as { type?: unknown }).type;
  if (!EVENT_TYPES.includes(type as EventType)) return [`$.type: must be one of ${EVENT_TYPES.join(', ')}`];
  // the compiled predicate answers the common case (valid) without building anything; the walker
  // below names the problems when there are some
  if (compiled.get(type as string)!(event)) return [];
  return validate(eventSchemas[type as EventType], event);
}

export function isEventType(t: unknown): t is EventType {
  return EVENT_TYPES.includes(t as EventType);
}
