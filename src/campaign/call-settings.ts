/**
 * The telephony settings of a campaign, kept in its free-form `settings` (HTTP API / dashboard):
 *
 *   amd:       AMD() parameters (any subset; the rest are the defaults below)
 *   voicemail: {message, beepSilenceMs, beepTimeoutSeconds}: the message left on an answering machine
 *              after its beep (no message: hang up without one); outcome `machine` either way
 *   recording: {enabled, retentionDays}: whole-call recording (MixMonitor) and how long files are kept
 *
 * One parser per setting, used by the API (a bad value is a 400) and at run time (a bad value stored
 * before validation existed falls back to the default).
 */
import { DialerError } from '../util/errors';

export interface AmdParams {
  initialSilenceMs: number;
  greetingMs: number;
  afterGreetingSilenceMs: number;
  totalAnalysisMs: number;
  minWordLengthMs: number;
  betweenWordsSilenceMs: number;
  maxWords: number;
  silenceThreshold: number;
  maxWordLengthMs: number;
}

/**
 * The shipped defaults (asterisk-config/extensions-agi.conf has the same), leaning towards "human":
 * Asterisk's own maximumNumberOfWords (2-3) calls "Hello, this is Ann speaking" a machine; 5 does not
 * (test/real-asterisk/voicemail-recording.test.ts, spoken greetings on a real Asterisk).
 */
export const AMD_DEFAULTS: Readonly<AmdParams> = Object.freeze({
  initialSilenceMs: 3500,
  greetingMs: 2000,
  afterGreetingSilenceMs: 1000,
  totalAnalysisMs: 5000,
  minWordLengthMs: 120,
  betweenWordsSilenceMs: 50,
  maxWords: 5,
  silenceThreshold: 256,
  maxWordLengthMs: 5000,
});

/** AMD()'s argument order, with the accepted range of each. */
const AMD_ORDER: Array<[keyof AmdParams, number, number]> = [
  ['initialSilenceMs', 500, 10000],
  ['greetingMs', 500, 10000],
  ['afterGreetingSilenceMs', 200, 5000],
  ['totalAnalysisMs', 1000, 15000],
  ['minWordLengthMs', 20, 1000],
  ['betweenWordsSilenceMs', 20, 1000],
  ['maxWords', 1, 20],
  ['silenceThreshold', 1, 32767],
  ['maxWordLengthMs', 500, 15000],
];

function bad(message: string): DialerError {
  return new DialerError('campaign_bad_setting', message);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return !!v && typeof v === 'object' && !Array.isArray(v);
}

/** `settings.amd` merged over the defaults; throws for an unknown key or a value out of range. */
export function parseAmdSettings(v: unknown): AmdParams {
  if (v === undefined || v === null) return { ...AMD_DEFAULTS };
  if (!isObject(v)) throw bad('settings.amd must be an object, e.g. {"maxWords": 5}');
  const out: AmdParams = { ...AMD_DEFAULTS };
  for (const [k, val] of Object.entries(v)) {
    const spec = AMD_ORDER.find((x) => x[0] === k);
    if (!spec)
      throw bad(`settings.amd.${k.slice(0, 40)} is not an AMD parameter (${AMD_ORDER.map((x) => x[0]).join(', ')})`);
    if (typeof val !== 'number' || !Number.isInteger(val) || val < spec[1] || val > spec[2])
      throw bad(`settings.amd.${k} must be an integer from ${spec[1]} to ${spec[2]}`);
    out[spec[0]] = val;
  }
  if (out.totalAnalysisMs <= out.greetingMs)
    throw bad('settings.amd.totalAnalysisMs must be longer than settings.amd.greetingMs');
  return out;
}

/** AMD()'s argument list (the AMD_PARAMS channel variable): nine integers. */
export function amdArgs(p: AmdParams): string {
  return AMD_ORDER.map(([k]) => String(Math.round(p[k]))).join(',');
}

export interface VoicemailSettings {
  /** The message (a template: {{contact.name}}...); empty: no drop, the call just ends. */
  message: string;
  /** Silence after the beep that starts the message, ms. */
  beepSilenceMs: number;
  /** Longest wait for that silence, seconds (then the message is played anyway). */
  beepTimeoutSeconds: number;
}

export const VOICEMAIL_DEFAULTS: Readonly<VoicemailSettings> = Object.freeze({
  message: '',
  beepSilenceMs: 1500,
  beepTimeoutSeconds: 20,
});

export function parseVoicemailSettings(v: unknown): VoicemailSettings {
  if (v === undefined || v === null) return { ...VOICEMAIL_DEFAULTS };
  if (!isObject(v)) throw bad('settings.voicemail must be an object, e.g. {"message": "Please call us back."}');
  const out: VoicemailSettings = { ...VOICEMAIL_DEFAULTS };
  for (const [k, val] of Object.entries(v)) {
    if (k === 'message') {
      if (typeof val !== 'string' || val.length > 1000)
        throw bad('settings.voicemail.message must be text of at most 1000 characters');
      out.message = val.trim();
    } else if (k === 'beepSilenceMs') {
      if (typeof val !== 'number' || !Number.isInteger(val) || val < 200 || val > 10000)
        throw bad('settings.voicemail.beepSilenceMs must be an integer from 200 to 10000');
      out.beepSilenceMs = val;
    } else if (k === 'beepTimeoutSeconds') {
      if (typeof val !== 'number' || !Number.isInteger(val) || val < 1 || val > 120)
        throw bad('settings.voicemail.beepTimeoutSeconds must be an integer from 1 to 120');
      out.beepTimeoutSeconds = val;
    } else
      throw bad(
        `settings.voicemail.${k.slice(0, 40)} is not a voicemail setting (message, beepSilenceMs, beepTimeoutSeconds)`,
      );
  }
  return out;
}

export interface RecordingSettings {
  enabled: boolean;
  /** Files of calls that ended longer ago are deleted; 0: kept until deleted by hand. */
  retentionDays: number;
}

export const RECORDING_DEFAULTS: Readonly<RecordingSettings> = Object.freeze({ enabled: false, retentionDays: 30 });

export function parseRecordingSettings(v: unknown): RecordingSettings {
  if (v === undefined || v === null) return { ...RECORDING_DEFAULTS };
  if (!isObject(v)) throw bad('settings.recording must be an object, e.g. {"enabled": true, "retentionDays": 30}');
  const out: RecordingSettings = { ...RECORDING_DEFAULTS };
  for (const [k, val] of Object.entries(v)) {
    if (k === 'enabled') {
      if (typeof val !== 'boolean') throw bad('settings.recording.enabled must be true or false');
      out.enabled = val;
    } else if (k === 'retentionDays') {
      if (typeof val !== 'number' || !Number.isInteger(val) || val < 0 || val > 3650)
        throw bad('settings.recording.retentionDays must be an integer from 0 (keep) to 3650');
      out.retentionDays = val;
    } else throw bad(`settings.recording.${k.slice(0, 40)} is not a recording setting (enabled, retentionDays)`);
  }
  return out;
}

/** Run time: the parsed setting, or its default when the stored value is bad. */
export function settingOr<T>(parse: (v: unknown) => T, v: unknown): T {
  try {
    return parse(v);
  } catch {
    return parse(undefined);
  }
}

/** Validate the telephony keys of a campaign's settings (the API's create / patch); throws DialerError. */
export function checkCallSettings(settings: Record<string, unknown>): void {
  if (settings.amd !== undefined) parseAmdSettings(settings.amd);
  if (settings.voicemail !== undefined) parseVoicemailSettings(settings.voicemail);
  if (settings.recording !== undefined) parseRecordingSettings(settings.recording);
}
