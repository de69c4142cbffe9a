/**
 * Safe `{{path.to.value}}` templates for prompts, greetings and replies.
 *
 * What a template can do is deliberately tiny: look up a dotted path of OWN properties in a context
 * object (`{{contact.name}}`, `{{contact.fields.plan}}`, `{{campaign.name}}`) with an optional default
 * (`{{contact.name|there}}`). A bare name is the contact's (`{{name}}` is `{{contact.name}}`, `{{plan}}` its
 * custom field). A placeholder that names nothing is reported (see UNKNOWN_PLACEHOLDER) and its hole
 * tidied, never spoken as "Hi , this is". No expressions, no function calls, no prototype access, one pass only
 * (a value that itself contains `{{...}}` is never expanded).
 *
 * Values come from contact records and callers, so they are untrusted: every inserted value is made
 * one line (CR, LF, Unicode line/paragraph separators, tabs and other control characters become a
 * space), stripped of template braces, trimmed and capped in length. A contact name with quotes or
 * newlines therefore cannot start a new line of a system prompt, and (because audio file names are
 * built from hashes, never from text) can never reach an AGI command.
 */

export interface TemplateOptions {
  /** Longest inserted value, in characters (default 200). Longer values are cut. */
  maxValueLength?: number;
  /** Longest result, in characters (default 8000). */
  maxLength?: number;
}

/**
 * A context may carry a reporter under this symbol (not reachable from a template path): it is called
 * with each placeholder that names nothing in the context and has no default.
 */
export const UNKNOWN_PLACEHOLDER = Symbol('ai-dialer.template.unknown');
type Reporter = (path: string, template: string) => void;

const TOKEN = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\s*(?:\|([^{}]*))?\}\}/g;
const FORBIDDEN = new Set(['__proto__', 'prototype', 'constructor']);

/** Make an untrusted value safe to insert: one line, no control characters, no template braces, capped. */
export function sanitizeValue(value: unknown, maxLength = 200): string {
  if (value === undefined || value === null) return '';
  let s: string;
  if (typeof value === 'string') s = value;
  else if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') s = String(value);
  else if (value instanceof Date) s = Number.isNaN(value.getTime()) ? '' : value.toISOString();
  else return ''; // objects and arrays are not inserted (no accidental JSON dumps of records)
  s = s
    // C0/C1 controls (incl. CR, LF, TAB), DEL, line/paragraph separators, bidi overrides and isolates
    .replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]+/g, ' ')
    .replace(/\{\{|\}\}/g, ' ')
    .replace(/ {2,}/g, ' ')
    .trim();
  if (s.length > maxLength) s = s.slice(0, maxLength).trimEnd();
  return s;
}

/** Walk a dotted path of own properties: undefined when any step is missing or forbidden. */
function walk(ctx: unknown, path: string): { value: unknown } | undefined {
  let cur: unknown = ctx;
  for (const key of path.split('.')) {
    if (FORBIDDEN.has(key)) return undefined;
    if (cur === null || typeof cur !== 'object') return undefined;
    if (!Object.prototype.hasOwnProperty.call(cur, key)) return undefined;
    cur = (cur as Record<string, unknown>)[key];
  }
  return { value: cur };
}

/** Look up a dotted path of own properties; undefined when any step is missing or forbidden. */
export function lookupPath(ctx: unknown, path: string): unknown {
  return walk(ctx, path)?.value;
}

/** What `path` names in `ctx` (a bare name: the contact's), and whether it names anything. */
function resolve(ctx: unknown, path: string): { found: boolean; value: unknown } {
  const hit = walk(ctx, path) ?? (path.includes('.') ? undefined : walk(ctx, `contact.${path}`));
  return hit ? { found: true, value: hit.value } : { found: false, value: undefined };
}

/**
 * Render `{{path}}` / `{{path|default}}` tokens from `ctx`. An empty value renders its default or
 * nothing; a path that names nothing is also reported to the context's UNKNOWN_PLACEHOLDER reporter.
 * A hole left by an empty value is tidied ("Hi , this" -> "Hi, this").
 */
export function renderTemplate(template: string, ctx: unknown, opts: TemplateOptions = {}): string {
  const maxValue = opts.maxValueLength ?? 200;
  const maxLength = opts.maxLength ?? 8000;
  const tpl = String(template ?? '');
  const report =
    ctx && typeof ctx === 'object' ? ((ctx as Record<symbol, unknown>)[UNKNOWN_PLACEHOLDER] as Reporter) : undefined;
  const HOLE = '\u0000';
  let holes = false;
  let out = tpl.replace(TOKEN, (_m, path: string, def: string | undefined) => {
    const r = resolve(ctx, path);
    const v = sanitizeValue(r.value, maxValue);
    if (v !== '') return v;
    if (def !== undefined) return sanitizeValue(def, maxValue);
    if (!r.found && typeof report === 'function') report(path, tpl);
    holes = true;
    return HOLE;
  });
  if (holes)
    out = out
      .replace(/ *\u0000 *([,.!?;:])/g, '$1')
      .replace(/ *\u0000 */g, ' ')
      .replace(/^ +| +$/g, '');
  return out.length > maxLength ? out.slice(0, maxLength) : out;
}

/** The warning a node gives for a placeholder that names nothing. */
export function unknownPlaceholderText(path: string): string {
  return `template placeholder {{${path}}} names nothing (use {{name}} / {{contact.name}}, {{contact.<field>}}, {{campaign.name}}, or {{${path}|default}}): left out`;
}

/** Attach a reporter of unknown placeholders to a template context (see UNKNOWN_PLACEHOLDER). */
export function reportUnknown<T extends object>(ctx: T, report: Reporter): T {
  Object.defineProperty(ctx, UNKNOWN_PLACEHOLDER, { value: report, enumerable: false });
  return ctx;
}

/** The paths a template refers to (for editor hints and validation). */
export function templatePaths(template: string): string[] {
  const paths: string[] = [];
  for (const m of String(template ?? '').matchAll(TOKEN)) paths.push(m[1]);
  return paths;
}

/**
 * The context templates see, built from the msg contract: `contact` (name, phone, timezone and the
 * custom fields, also reachable flat as `contact.<field>`), `campaign` and `call`.
 */
export function templateContext(msg: {
  call?: {
    id?: unknown;
    phone?: unknown;
    callerId?: unknown;
    contact?: Record<string, unknown> | null;
    campaignId?: unknown;
  } | null;
  campaign?: Record<string, unknown> | null;
}): Record<string, unknown> {
  const call = msg.call ?? {};
  const contact = (call.contact ?? {}) as Record<string, unknown>;
  const fields =
    contact.fields && typeof contact.fields === 'object' ? (contact.fields as Record<string, unknown>) : {};
  const flatContact: Record<string, unknown> = {};
  // custom fields first, so the record's own name/phone win over a custom field of the same name
  for (const [k, v] of Object.entries(fields)) if (!FORBIDDEN.has(k)) flatContact[k] = v;
  for (const [k, v] of Object.entries(contact)) if (!FORBIDDEN.has(k)) flatContact[k] = v;
  if (flatContact.phone === undefined && call.phone !== undefined) flatContact.phone = call.phone;
  const campaign = (msg.campaign ?? {}) as Record<string, unknown>;
  return {
    contact: flatContact,
    campaign: { id: call.campaignId, ...campaign },
    call: { id: call.id, phone: call.phone, callerId: call.callerId },
  };
}
