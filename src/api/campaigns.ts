/**
 * Campaign input for the HTTP API: validation of create/patch bodies (the SQL is in
 * src/store/campaign-admin.ts).
 */
import { isCountryCode, isValidTimeZone } from '../campaign/phone';
import { DEFAULT_RETRY_POLICY, getCampaign, type CampaignRow } from '../store/campaigns';
import { ApiError } from './errors';
import { checkCallSettings } from '../campaign/call-settings';
import { errorMessage } from '../util/errors';
import type { CampaignValues } from '../store/campaign-admin';

export { getCampaign, type CampaignRow, type CampaignValues };
export {
  createCampaign,
  updateCampaign,
  listCampaigns,
  campaignStatus,
  type CampaignStatus,
} from '../store/campaign-admin';

export { ApiError };

export const RETRY_KEYS = ['busy', 'no_answer', 'failed', 'congestion', 'cancelled', 'machine'] as const;
export const CALLER_ID_STRATEGIES = ['round_robin', 'least_recently_used', 'local_presence'] as const;
const MAX_SETTINGS_BYTES = 64 * 1024;
const MAX_RETRY_SECONDS = 30 * 24 * 3600;

const FIELDS = [
  'name',
  'timezone',
  'window_start',
  'window_end',
  'max_concurrent',
  'calls_per_second',
  'max_attempts',
  'retry_policy',
  'caller_id_strategy',
  'default_country',
  'amd_enabled',
  'settings',
] as const;

const snake = (k: string): string => k.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());

function bad(message: string): ApiError {
  return new ApiError(400, message);
}

function intIn(v: unknown, name: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    throw bad(`${name} must be an integer from ${min} to ${max}`);
  return v;
}

function time(v: unknown, name: string): string {
  if (typeof v !== 'string') throw bad(`${name} must be a time "HH:MM"`);
  const m = /^([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$/.exec(v.trim());
  if (!m) throw bad(`${name} must be a time "HH:MM" (00:00 to 23:59), got ${JSON.stringify(v).slice(0, 40)}`);
  return `${m[1]}:${m[2]}:${m[3] ?? '00'}`;
}

/**
 * Validate campaign input (snake_case or camelCase keys). `partial` for PATCH (only given keys);
 * `current` (PATCH) is used to check the window and to merge retry_policy / settings.
 */
export function validateCampaignInput(
  body: unknown,
  opts: { partial: boolean; current?: CampaignRow },
): CampaignValues {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw bad('the body must be a JSON object');
  const input: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body as Record<string, unknown>)) {
    const key = snake(k);
    if (key === 'id' || key === 'status' || key === 'created_at' || key === 'updated_at') {
      if (key === 'status')
        throw bad('status cannot be set here: use POST /api/v1/calls/automated/start|stop|pause|resume');
      throw bad(`${k} cannot be set`);
    }
    if (!(FIELDS as readonly string[]).includes(key))
      throw bad(`unknown field "${k.slice(0, 60)}" (allowed: ${FIELDS.join(', ')})`);
    input[key] = v;
  }
  const out: CampaignValues = {};
  if (!opts.partial && input.name === undefined) throw bad('name is required');
  if (input.name !== undefined) {
    if (typeof input.name !== 'string' || !input.name.trim() || input.name.trim().length > 200)
      throw bad('name must be text of 1 to 200 characters');
    out.name = input.name.trim();
  }
  if (input.timezone !== undefined) {
    if (!isValidTimeZone(input.timezone))
      throw bad(
        `timezone must be an IANA time zone such as "America/New_York", got ${JSON.stringify(input.timezone).slice(0, 60)}`,
      );
    out.timezone = input.timezone;
  }
  if (input.window_start !== undefined) out.window_start = time(input.window_start, 'window_start');
  if (input.window_end !== undefined) out.window_end = time(input.window_end, 'window_end');
  const ws = out.window_start ?? opts.current?.window_start ?? '09:00:00';
  const we = out.window_end ?? opts.current?.window_end ?? '20:00:00';
  if (ws >= we) throw bad(`window_start (${ws.slice(0, 5)}) must be before window_end (${we.slice(0, 5)})`);
  if (input.max_concurrent !== undefined) out.max_concurrent = intIn(input.max_concurrent, 'max_concurrent', 1, 10000);
  if (input.calls_per_second !== undefined) {
    const v = input.calls_per_second;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v > 1000)
      throw bad('calls_per_second must be a number above 0 and at most 1000');
    out.calls_per_second = v;
  }
  if (input.max_attempts !== undefined) out.max_attempts = intIn(input.max_attempts, 'max_attempts', 1, 100);
  if (input.retry_policy !== undefined) {
    const rp = input.retry_policy;
    if (!rp || typeof rp !== 'object' || Array.isArray(rp))
      throw bad(`retry_policy must be an object of seconds per outcome (${RETRY_KEYS.join(', ')})`);
    const merged: Record<string, number> = {
      ...DEFAULT_RETRY_POLICY,
      ...(opts.current?.retry_policy ?? {}),
    };
    for (const [k, v] of Object.entries(rp)) {
      if (!(RETRY_KEYS as readonly string[]).includes(k))
        throw bad(`retry_policy.${k.slice(0, 40)} is not an outcome (allowed: ${RETRY_KEYS.join(', ')})`);
      merged[k] = intIn(v, `retry_policy.${k}`, 0, MAX_RETRY_SECONDS);
    }
    out.retry_policy = merged;
  }
  if (input.caller_id_strategy !== undefined) {
    if (
      typeof input.caller_id_strategy !== 'string' ||
      !(CALLER_ID_STRATEGIES as readonly string[]).includes(input.caller_id_strategy)
    ) {
      throw bad(`caller_id_strategy must be one of ${CALLER_ID_STRATEGIES.join(', ')}`);
    }
    out.caller_id_strategy = input.caller_id_strategy as CampaignRow['caller_id_strategy'];
  }
  if (input.default_country !== undefined) {
    if (!isCountryCode(input.default_country))
      throw bad('default_country must be a two-letter ISO country code such as "US"');
    out.default_country = input.default_country.toUpperCase();
  }
  if (input.amd_enabled !== undefined) {
    if (typeof input.amd_enabled !== 'boolean') throw bad('amd_enabled must be true or false');
    out.amd_enabled = input.amd_enabled;
  }
  if (input.settings !== undefined) {
    const s = input.settings;
    if (!s || typeof s !== 'object' || Array.isArray(s))
      throw bad('settings must be an object (e.g. {"greeting": "...", "prompt": "..."})');
    const merged: Record<string, unknown> = { ...(opts.current?.settings ?? {}) };
    for (const [k, v] of Object.entries(s)) {
      if (v === null) delete merged[k];
      else merged[k] = v;
    }
    if (Buffer.byteLength(JSON.stringify(merged)) > MAX_SETTINGS_BYTES)
      throw bad(`settings must stay under ${MAX_SETTINGS_BYTES / 1024} KB`);
    for (const k of ['greeting', 'prompt', 'voice']) {
      if (merged[k] !== undefined && typeof merged[k] !== 'string') throw bad(`settings.${k} must be text`);
    }
    // toll fraud (src/campaign/phone.ts): only `true` allows premium-rate numbers; say so for "yes" or 1
    if (merged.allowPremium !== undefined && typeof merged.allowPremium !== 'boolean')
      throw bad('settings.allowPremium must be true or false');
    // the telephony settings (AMD parameters, voicemail, recording): src/campaign/call-settings.ts
    try {
      checkCallSettings(merged);
    } catch (err) {
      throw bad(errorMessage(err));
    }
    out.settings = merged;
  }
  return out;
}
