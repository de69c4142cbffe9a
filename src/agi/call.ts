/**
 * What a FastAGI session tells us about its call: msg.call per docs/reference/msg.md, from AGI arguments
 * (`key=value` or a bare first argument = call id) and channel variables (CALL_ID, CONTACT_PHONE,
 * CAMPAIGN_ID, CONTACT_ID, AMDSTATUS, AMDCAUSE, AMD_PATH) read in one GET FULL VARIABLE (one by one when that fails).
 */
import { envArgs, parseNetworkScript } from './protocol';
import type { AgiSession } from './types';

export type AmdStatus = 'HUMAN' | 'MACHINE' | 'NOTSURE' | 'HANGUP' | 'NOTRUN';

export interface AgiCall {
  id?: number | string;
  sessionId: string;
  channel?: string;
  uniqueid?: string;
  phone: string;
  callerId?: string;
  campaignId: number | null;
  contactId: number | null;
  direction: 'outbound' | 'inbound';
  /** AMD's result; `path` is what the flow acts on: machine (voicemail) or human (the conversation). */
  amd?: { status: AmdStatus; cause?: string; path?: 'machine' | 'human' };
}

const AMD = new Set(['HUMAN', 'MACHINE', 'NOTSURE', 'HANGUP', 'NOTRUN']);

/** Argument names accepted as `key=value` (case-insensitive) and the variable each stands for. */
const ARG_KEYS: Record<string, string> = {
  call_id: 'CALL_ID',
  callid: 'CALL_ID',
  phone: 'CONTACT_PHONE',
  contact_phone: 'CONTACT_PHONE',
  campaign_id: 'CAMPAIGN_ID',
  campaign: 'CAMPAIGN_ID',
  contact_id: 'CONTACT_ID',
};

function intOrNull(v: string | undefined): number | null {
  if (v === undefined || !/^\d{1,15}$/.test(v.trim())) return null;
  return Number(v.trim());
}

/** Number when it is all digits (calls.id), else the string as given, else undefined. */
function callIdValue(v: string | undefined): number | string | undefined {
  if (v === undefined) return undefined;
  const t = v.trim();
  if (t === '') return undefined;
  return /^\d{1,15}$/.test(t) ? Number(t) : t;
}

/** `"Name" <+12125550101>` or a bare number -> the number; `unknown` -> undefined. */
export function callerNumber(callerid: string | undefined): string | undefined {
  if (!callerid || callerid === 'unknown') return undefined;
  const m = /<([^>]*)>/.exec(callerid);
  const n = (m ? m[1] : callerid).trim();
  return n === '' || n === 'unknown' ? undefined : n;
}

/** Values given as AGI arguments / URL parameters, keyed by variable name. */
export function valuesFromArgs(env: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  const args = envArgs(env);
  args.forEach((a, i) => {
    const eq = a.indexOf('=');
    if (eq > 0) {
      const key = ARG_KEYS[a.slice(0, eq).toLowerCase()];
      if (key) out[key] = a.slice(eq + 1);
    } else if (i === 0 && a.trim() !== '') out.CALL_ID = a;
  });
  for (const [k, v] of parseNetworkScript(env.network_script).params) {
    const key = ARG_KEYS[k.toLowerCase()];
    if (key && out[key] === undefined) out[key] = v;
  }
  return out;
}

/** The channel variables that describe a call, read when the AGI arguments do not give them. */
const CALL_VARIABLES = [
  'CALL_DIRECTION',
  'CALL_ID',
  'CONTACT_PHONE',
  'CAMPAIGN_ID',
  'CONTACT_ID',
  'AMDSTATUS',
  'AMDCAUSE',
  'AMD_PATH',
] as const;

/** Between the values of one GET FULL VARIABLE (a value holding it makes the reply unreadable: read one by one). */
const JOIN = '|';

/**
 * Channel variables in one round trip: `GET FULL VARIABLE "${A}|${B}|..."` (an unset variable reads as empty,
 * as GET VARIABLE's unset reads here). When the reply does not split into exactly one value per name (a value
 * holding `|`, a refused command), each is read with its own GET VARIABLE. Empty values are left out.
 */
export async function readVariables(s: AgiSession, names: readonly string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  if (!names.length) return out;
  let parts: string[] | undefined;
  if (names.length > 1) {
    const joined = await s.getFullVariable(names.map((n) => `\${${n}}`).join(JOIN)).catch(() => undefined);
    parts = joined?.split(JOIN);
  }
  if (parts?.length === names.length) {
    names.forEach((n, i) => {
      if (parts![i] !== '') out[n] = parts![i];
    });
    return out;
  }
  for (const n of names) {
    const v = await s.getVariable(n);
    if (v !== undefined && v !== '') out[n] = v;
  }
  return out;
}

/** Read the call's identity from the session: arguments first, then channel variables. */
export async function readCall(s: AgiSession): Promise<AgiCall> {
  return (await readCallAndToken(s, false)).call;
}

/**
 * The call's identity and, for a call that names one (not inbound), its FastAGI token: every variable the
 * arguments do not give, in one round trip. The token (channel variable CALL_TOKEN, set at originate) is read
 * from the channel only, never from AGI arguments (they show in Asterisk's logs), and is kept out of msg.call.
 */
export async function readCallAndToken(
  s: AgiSession,
  withToken = true,
): Promise<{ call: AgiCall; token: string | undefined }> {
  const vals = valuesFromArgs(s.env);
  const names: string[] = CALL_VARIABLES.filter((n) => vals[n] === undefined);
  if (withToken) names.push('CALL_TOKEN');
  const read = await readVariables(s, names);
  const token = read.CALL_TOKEN;
  delete read.CALL_TOKEN;
  Object.assign(vals, read);
  const call = callOf(s, vals);
  return { call, token: call.id === undefined ? undefined : token };
}

function callOf(s: AgiSession, vals: Record<string, string>): AgiCall {
  // An inbound call (the dialplan's CALL_DIRECTION=inbound) gets a fresh record: it cannot name an existing one.
  const inbound = vals.CALL_DIRECTION?.trim().toLowerCase() === 'inbound';
  const id = inbound ? undefined : callIdValue(vals.CALL_ID);
  const callerId = callerNumber(s.env.callerid);
  const direction = id === undefined ? 'inbound' : 'outbound';
  const phone = vals.CONTACT_PHONE || (direction === 'inbound' ? callerId : s.env.extension) || '';
  const call: AgiCall = {
    id,
    sessionId: s.id,
    channel: s.env.channel,
    uniqueid: s.env.uniqueid,
    phone,
    callerId,
    campaignId: intOrNull(vals.CAMPAIGN_ID),
    // nor an existing contact: llm-turn would load its name and fields into the conversation
    contactId: direction === 'inbound' ? null : intOrNull(vals.CONTACT_ID),
    direction,
  };
  const amd = vals.AMDSTATUS?.toUpperCase();
  if (amd && AMD.has(amd)) {
    // AMD_PATH (the dialplan's verdict, NOTSURE resolved by AMD_NOTSURE); without it MACHINE alone is a machine
    const p = vals.AMD_PATH?.trim().toLowerCase();
    const path = p === 'machine' || p === 'human' ? p : amd === 'MACHINE' ? 'machine' : 'human';
    call.amd = { status: amd as AmdStatus, ...(vals.AMDCAUSE ? { cause: vals.AMDCAUSE } : {}), path };
  }
  return call;
}
