/**
 * The end-to-end campaign: 21 contacts whose simulated callees cover every path of the default flow,
 * and a calling window computed at test time so that one time zone is inside it and another outside.
 */
import type { Persona } from '../../src/sim/persona';

export type Kind =
  | 'talker'
  | 'flaky'
  | 'busy'
  | 'no_answer'
  | 'hangup_mid_turn'
  | 'asks_dnc'
  | 'machine'
  | 'on_dnc_list'
  | 'out_of_window';

export interface Contact {
  phone: string;
  name: string;
  kind: Kind;
  timezone: string;
}

export const TALKER_WORDS = ['Yes, this is me.', 'Tuesday at ten works for me.', 'No, that is all, thank you.'];
export const FLAKY_WORDS = ['Hello, the line is flaky.', 'Yes, Tuesday works.', 'No, that is all, thank you.'];
export const HANGUP_WORDS = ['Who is this?', 'Hold on, I have to'];
export const DNC_WORDS = ['Please do not call me again.'];
/** The campaign's voicemail message (settings.voicemail.message), left after an answering machine's beep. */
export const VOICEMAIL_MESSAGE = 'Hi {{contact.name}}, this is the e2e line. Please call us back.';
/** The contact whose first LLM request fails (HTTP 500). */
export const FLAKY_NAME = 'Flaky Fred';

const ring = { ringMs: 300 };

export function personaFor(kind: Kind): Persona {
  switch (kind) {
    case 'talker':
      return { name: kind, dial: { behaviour: 'answer', ...ring }, utterances: TALKER_WORDS };
    case 'flaky':
      return { name: kind, dial: { behaviour: 'answer', ...ring }, utterances: FLAKY_WORDS };
    case 'busy':
      return { name: kind, dial: { behaviour: 'busy', ...ring } };
    case 'no_answer':
      return { name: kind, dial: { behaviour: 'no_answer' } };
    case 'hangup_mid_turn':
      return {
        name: kind,
        dial: { behaviour: 'answer', ...ring },
        utterances: [HANGUP_WORDS[0], { text: HANGUP_WORDS[1], hangup: true }],
      };
    case 'asks_dnc':
      return { name: kind, dial: { behaviour: 'answer', ...ring }, utterances: DNC_WORDS };
    case 'machine':
      // an answering machine: AMD says MACHINE; its greeting and beep go on after AMD returned
      return {
        name: kind,
        dial: { behaviour: 'answer', ...ring },
        amd: 'MACHINE',
        voicemail: { greetingMs: 1500, beepMs: 300 },
      };
    default:
      // Never dialled; if they were, they would talk (and the test would see the call).
      return { name: kind, dial: { behaviour: 'answer', ...ring }, utterances: TALKER_WORDS };
  }
}

/** Zones spread around the clock (whole-hour and odd offsets, both hemispheres). */
const ZONES = [
  'Pacific/Kiritimati',
  'Pacific/Auckland',
  'Australia/Sydney',
  'Asia/Tokyo',
  'Asia/Shanghai',
  'Asia/Bangkok',
  'Asia/Kolkata',
  'Asia/Dubai',
  'Europe/Moscow',
  'Europe/Berlin',
  'Europe/London',
  'Atlantic/Azores',
  'America/Sao_Paulo',
  'America/New_York',
  'America/Chicago',
  'America/Denver',
  'America/Los_Angeles',
  'America/Anchorage',
  'Pacific/Honolulu',
  'Pacific/Pago_Pago',
];

/** Minutes since local midnight in `zone` at `now`. */
export function localMinutes(zone: string, now = new Date()): number {
  const parts = new Intl.DateTimeFormat('en-GB', {
    timeZone: zone,
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  }).formatToParts(now);
  const n = (t: string) => Number(parts.find((p) => p.type === t)!.value);
  return n('hour') * 60 + n('minute');
}

const hhmm = (m: number) => `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;

/**
 * A zone where it is now between 02:00 and 19:59 (calls go out: the window is from two hours before
 * to four hours after the current hour there) and a zone whose local time is at least an hour outside
 * that window (its contacts must never be dialled).
 */
export function callingWindow(now = new Date()): {
  inside: string;
  outside: string;
  windowStart: string;
  windowEnd: string;
} {
  for (const inside of ZONES) {
    const m = localMinutes(inside, now);
    const h = Math.floor(m / 60);
    if (h < 2 || h > 19) continue;
    const start = (h - 2) * 60;
    const end = (h + 4) * 60;
    const outside = ZONES.find((z) => {
      const o = localMinutes(z, now);
      return o < start - 60 || o > end + 60;
    });
    if (outside) return { inside, outside, windowStart: hhmm(start), windowEnd: hhmm(end) };
  }
  throw new Error('no pair of time zones inside / outside a calling window (the zone list is too short)');
}

/** 22 contacts: 6 talkers, 1 with an engine failing once, 3 busy, 3 no answer, 2 hang up mid-turn, 2 ask for DNC, 1 answering machine, 2 already on the DNC list, 2 outside calling hours. */
export function buildContacts(prefix: string, zones: { inside: string; outside: string }): Contact[] {
  const plan: Array<[Kind, number]> = [
    ['talker', 6],
    ['flaky', 1],
    ['busy', 3],
    ['no_answer', 3],
    ['hangup_mid_turn', 2],
    ['asks_dnc', 2],
    ['machine', 1],
    ['on_dnc_list', 2],
    ['out_of_window', 2],
  ];
  const out: Contact[] = [];
  let n = 10;
  for (const [kind, count] of plan) {
    for (let i = 0; i < count; i++, n++) {
      const name =
        kind === 'flaky' ? FLAKY_NAME : `${kind.replace(/_/g, ' ')} ${i + 1}`.replace(/^\w/, (c) => c.toUpperCase());
      out.push({
        phone: `${prefix}${String(n).padStart(2, '0')}`,
        name,
        kind,
        timezone: kind === 'out_of_window' ? zones.outside : zones.inside,
      });
    }
  }
  return out;
}

export function contactsCsv(contacts: Contact[]): string {
  return ['phone,name,timezone', ...contacts.map((c) => `${c.phone},"${c.name}",${c.timezone}`)].join('\r\n') + '\r\n';
}
