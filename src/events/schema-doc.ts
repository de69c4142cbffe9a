/**
 * The payload section of docs/reference/mqtt-events.md, rendered from the event schemas, so the
 * documentation cannot drift from what `validateEvent` accepts. `node scripts/docs.js` rewrites the
 * section between the markers; test/docs/docs.test.ts fails when the file and this output differ.
 */
import { EVENT_TYPES, eventSchemas, type JsonSchema } from './schema';

export const GENERATED_BEGIN =
  '<!-- BEGIN GENERATED: event payloads (from src/events/schema.ts; node scripts/docs.js) -->';
export const GENERATED_END = '<!-- END GENERATED: event payloads -->';

function typeText(s: JsonSchema): string {
  if (s.const !== undefined) return `\`${JSON.stringify(s.const)}\``;
  const types = s.type === undefined ? [] : Array.isArray(s.type) ? s.type : [s.type];
  return types.join(' \\| ');
}

function ruleText(s: JsonSchema): string {
  const rules: string[] = [];
  if (s.enum)
    rules.push(
      `one of ${s.enum
        .filter((v) => v !== null)
        .map((v) => `\`${String(v)}\``)
        .join(', ')}`,
    );
  if (s.minimum !== undefined && s.maximum !== undefined) rules.push(`${s.minimum} to ${s.maximum}`);
  else if (s.minimum !== undefined) rules.push(`>= ${s.minimum}`);
  else if (s.maximum !== undefined) rules.push(`<= ${s.maximum}`);
  if (s.maxLength !== undefined) rules.push(`at most ${s.maxLength} characters`);
  if (s.pattern) rules.push(`matches \`${s.pattern.replace(/\|/g, '\\|')}\``);
  if (s.maxItems !== undefined) rules.push(`at most ${s.maxItems} items`);
  if (s.description) rules.push(s.description);
  return rules.join('; ');
}

function rows(props: Record<string, JsonSchema>, required: string[], prefix: string): string[] {
  const out: string[] = [];
  for (const [name, s] of Object.entries(props)) {
    const field = prefix + name;
    out.push(`| \`${field}\` | ${typeText(s)} | ${required.includes(name) ? 'yes' : 'no'} | ${ruleText(s)} |`);
    if (s.properties) out.push(...rows(s.properties, s.required ?? [], `${field}.`));
    if (s.items?.properties) out.push(...rows(s.items.properties, s.items.required ?? [], `${field}[].`));
  }
  return out;
}

/** The markdown between the markers (markers included). */
export function renderEventPayloads(): string {
  const parts: string[] = [GENERATED_BEGIN, ''];
  for (const type of EVENT_TYPES) {
    const s = eventSchemas[type];
    parts.push(`### ${type}`, '', s.description ?? '', '');
    parts.push('| field | type | required | rule |', '|---|---|---|---|');
    parts.push(...rows(s.properties ?? {}, s.required ?? [], ''));
    parts.push('');
  }
  parts.push(GENERATED_END);
  return parts.join('\n');
}

/** `doc` with its generated section replaced by the current rendering. */
export function updateEventPayloads(doc: string): string {
  const a = doc.indexOf(GENERATED_BEGIN);
  const b = doc.indexOf(GENERATED_END);
  if (a < 0 || b < a) throw new Error('docs/reference/mqtt-events.md has no generated event payload section');
  return doc.slice(0, a) + renderEventPayloads() + doc.slice(b + GENERATED_END.length);
}
