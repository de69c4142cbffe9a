/**
 * Phone numbers and time zones for contacts, DNC lists and caller-ID numbers.
 *
 * - `normalizePhone`: E.164 through libphonenumber-js (full metadata), using the campaign's
 *   default country for national-format input. Never hand-rolled.
 * - `isValidTimeZone`: an IANA zone name the JS runtime knows.
 * - `zoneForNumber`: the time zone a number most likely rings in: North American numbers by
 *   area code (US/CA table below), other countries when the whole country keeps one zone.
 *   Unknown (multi-zone country, split area code, mobile-portable ambiguity): undefined, and the
 *   campaign's own zone applies at claim time.
 * - `refusedNumberType`: toll-fraud guard. Contacts and caller-ID numbers of a type that costs the
 *   caller money per minute or is not a person (premium rate, shared cost, personal numbers, UAN,
 *   pagers, voicemail access, and numbers whose type cannot be told) are refused unless the campaign's
 *   settings say `allowPremium: true`. Fixed line, mobile, fixed-or-mobile, toll free and VoIP pass.
 */
import { parsePhoneNumberFromString, isSupportedCountry, type CountryCode } from 'libphonenumber-js/max';

export type PhoneResult =
  | {
      ok: true;
      e164: string;
      country?: string;
      /** libphonenumber-js getType(); undefined: cannot tell */ type?: string;
    }
  | { ok: false; reason: string };

/**
 * Number types refused for contacts and caller IDs by default (libphonenumber-js `getType()`):
 * PREMIUM_RATE (the toll-fraud target: each minute dialled pays the number's owner), SHARED_COST (the
 * caller pays part of a higher rate), PERSONAL_NUMBER (e.g. UK 070: forwarding numbers billed at high
 * rates, a classic fraud vehicle), UAN (universal access numbers, often billed above a normal call),
 * PAGER and VOICEMAIL (no person to talk to). A valid number of unknown type is refused too.
 */
export const REFUSED_NUMBER_TYPES: readonly string[] = [
  'PREMIUM_RATE',
  'SHARED_COST',
  'PERSONAL_NUMBER',
  'UAN',
  'PAGER',
  'VOICEMAIL',
];

/** The campaign setting that allows the refused number types: `settings.allowPremium === true`. */
export function allowsPremium(settings: unknown): boolean {
  return !!settings && typeof settings === 'object' && (settings as { allowPremium?: unknown }).allowPremium === true;
}

/** Why a normalised number may not be dialled (or shown as caller ID), or undefined when it may. */
export function refusedNumberType(p: { e164: string; type?: string }, allowPremium = false): string | undefined {
  if (allowPremium) return undefined;
  if (p.type === undefined)
    return `${p.e164} is a number of unknown type (refused to prevent toll fraud; the campaign setting allowPremium allows it)`;
  if (REFUSED_NUMBER_TYPES.includes(p.type))
    return `${p.e164} is a ${p.type.toLowerCase().replace(/_/g, ' ')} number (refused to prevent toll fraud; the campaign setting allowPremium allows it)`;
  return undefined;
}

const MAX_INPUT = 64;

/** Normalise one phone number to E.164. `defaultCountry` is an ISO 3166-1 alpha-2 code (e.g. 'US'). */
export function normalizePhone(input: unknown, defaultCountry = 'US'): PhoneResult {
  if (input === null || input === undefined) return { ok: false, reason: 'phone number is missing' };
  if (typeof input === 'number') input = String(input);
  if (typeof input !== 'string') return { ok: false, reason: 'phone number must be text' };
  const raw = input.trim();
  if (!raw) return { ok: false, reason: 'phone number is empty' };
  if (raw.length > MAX_INPUT) return { ok: false, reason: `phone number is too long (${raw.length} characters)` };
  if (/[\r\n\0]/.test(raw)) return { ok: false, reason: 'phone number contains control characters' };
  if (!/\d/.test(raw)) return { ok: false, reason: `"${raw}" is not a phone number (no digits)` };
  const country = defaultCountry.toUpperCase();
  const cc = isSupportedCountry(country) ? (country as CountryCode) : undefined;
  // "00" international prefix is common in European lists: treat it as "+".
  const text = raw.startsWith('00') ? '+' + raw.slice(2) : raw;
  let parsed;
  try {
    parsed = parsePhoneNumberFromString(text, cc ? { defaultCountry: cc } : undefined);
  } catch {
    parsed = undefined;
  }
  if (!parsed) {
    return {
      ok: false,
      reason: cc ? `"${raw}" is not a phone number (default country ${cc})` : `"${raw}" is not a phone number`,
    };
  }
  if (!parsed.isValid()) {
    const where = parsed.country ?? (cc && !text.startsWith('+') ? cc : `+${parsed.countryCallingCode}`);
    return { ok: false, reason: `"${raw}" is not a valid number for ${where}` };
  }
  return { ok: true, e164: parsed.number, country: parsed.country, type: parsed.getType() };
}

/** ISO country codes libphonenumber-js knows. */
export function isCountryCode(c: unknown): c is string {
  return typeof c === 'string' && /^[A-Za-z]{2}$/.test(c) && isSupportedCountry(c.toUpperCase() as CountryCode);
}

const zoneCache = new Map<string, boolean>();

/** True for an IANA zone name the runtime knows (`America/New_York`, `UTC`, ...). */
export function isValidTimeZone(tz: unknown): tz is string {
  if (typeof tz !== 'string' || !tz || tz.length > 64 || !/^[A-Za-z][A-Za-z0-9_+\-/]*$/.test(tz)) return false;
  let ok = zoneCache.get(tz);
  if (ok === undefined) {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: tz });
      ok = true;
    } catch {
      ok = false;
    }
    if (zoneCache.size < 5000) zoneCache.set(tz, ok);
  }
  return ok;
}

// ---------------------------------------------------------------------------------------------
// North American Numbering Plan: area code -> zone (US and Canada).
// Only area codes whose subscribers are (almost) all in one zone. Split area codes (e.g. 208 Idaho,
// 270 western Kentucky, 308 Nebraska, 605 South Dakota, 701 North Dakota, 807 NW Ontario,
// 812/930 southern Indiana, 850/448 Florida panhandle, 867 northern territories, 906 Upper
// Michigan) are left out on purpose: they fall back to the campaign's zone.
// ---------------------------------------------------------------------------------------------
const NANP_ZONES: Record<string, string> = {};
function nanp(zone: string, codes: string): void {
  for (const c of codes.trim().split(/\s+/)) NANP_ZONES[c] = zone;
}
// Eastern (US)
nanp(
  'America/New_York',
  `
  203 475 860 959
  302
  202 771
  239 305 321 324 352 386 407 561 656 689 727 754 772 786 813 863 904 941 954
  229 404 470 478 678 706 762 770 912 943
  207
  227 240 301 410 443 667
  339 351 413 508 617 774 781 857 978
  603
  201 551 609 640 732 848 856 862 908 973
  212 315 332 347 363 516 518 585 607 631 646 680 716 718 838 845 914 917 929 934
  252 336 472 704 743 828 910 919 980 984
  216 220 234 326 330 380 419 436 440 513 567 614 740 937
  215 223 267 272 412 445 484 570 582 610 717 724 814 835 878
  401
  803 821 839 843 854 864
  802
  276 434 540 571 686 703 757 804 826 948
  304 681
  606 859
  423 865
`,
);
nanp('America/Detroit', '231 248 269 313 517 586 616 679 734 810 947 989');
nanp('America/Indiana/Indianapolis', '260 317 463 574 765');
nanp('America/Kentucky/Louisville', '502');
// Central (US)
nanp(
  'America/Chicago',
  `
  205 251 256 334 659 938
  327 479 501 870
  217 224 309 312 331 447 464 618 630 708 730 773 779 815 847 861 872
  219
  319 515 563 641 712
  316 913
  225 318 337 457 504 985
  218 320 507 612 651 763 952
  228 601 662 769
  314 417 557 573 636 660 816 975
  402 531
  405 539 572 580 918
  210 214 254 281 325 346 361 409 430 432 469 512 682 713 726 737 806 817 830 832 903 936 940 945 956 972 979
  262 274 353 414 534 608 715 920
  615 629 731 901 931
`,
);
// Mountain (US)
nanp(
  'America/Denver',
  `
  303 719 720 970 983
  406
  505 575
  385 435 801
  307
  915
`,
);
nanp('America/Phoenix', '480 520 602 623 928');
// Pacific (US)
nanp(
  'America/Los_Angeles',
  `
  209 213 279 310 323 341 350 369 408 415 424 442 510 530 559 562 619 626 628 650 657 661 669 707 714
  747 760 805 818 820 831 840 858 909 916 925 949 951
  702 725 775
  458 503 541 971
  206 253 360 425 509 564
`,
);
nanp('America/Anchorage', '907');
nanp('Pacific/Honolulu', '808');
// US territories inside the NANP that libphonenumber reports as US-ish regions
nanp('America/Puerto_Rico', '787 939');
nanp('America/St_Thomas', '340');
nanp('Pacific/Guam', '671');
nanp('Pacific/Saipan', '670');
nanp('Pacific/Pago_Pago', '684');
// Canada
nanp(
  'America/Toronto',
  `
  226 249 289 343 365 382 416 437 519 548 613 647 683 705 742 753 905 942
  263 354 367 418 438 450 468 514 579 581 819 873
`,
);
nanp('America/Winnipeg', '204 431 584');
nanp('America/Regina', '306 474 639');
nanp('America/Edmonton', '368 403 587 780 825');
nanp('America/Vancouver', '236 250 604 672 778');
nanp('America/Halifax', '782 902');
nanp('America/Moncton', '428 506');
nanp('America/St_Johns', '709 879');

/** Countries that keep a single zone for (practically) every number. */
const COUNTRY_ZONES: Record<string, string> = {
  GB: 'Europe/London',
  IE: 'Europe/Dublin',
  FR: 'Europe/Paris',
  DE: 'Europe/Berlin',
  IT: 'Europe/Rome',
  NL: 'Europe/Amsterdam',
  BE: 'Europe/Brussels',
  LU: 'Europe/Luxembourg',
  CH: 'Europe/Zurich',
  AT: 'Europe/Vienna',
  PL: 'Europe/Warsaw',
  CZ: 'Europe/Prague',
  SK: 'Europe/Bratislava',
  HU: 'Europe/Budapest',
  SI: 'Europe/Ljubljana',
  HR: 'Europe/Zagreb',
  RS: 'Europe/Belgrade',
  RO: 'Europe/Bucharest',
  BG: 'Europe/Sofia',
  GR: 'Europe/Athens',
  DK: 'Europe/Copenhagen',
  SE: 'Europe/Stockholm',
  NO: 'Europe/Oslo',
  FI: 'Europe/Helsinki',
  EE: 'Europe/Tallinn',
  LV: 'Europe/Riga',
  LT: 'Europe/Vilnius',
  IS: 'Atlantic/Reykjavik',
  MT: 'Europe/Malta',
  CY: 'Asia/Nicosia',
  TR: 'Europe/Istanbul',
  IL: 'Asia/Jerusalem',
  JP: 'Asia/Tokyo',
  KR: 'Asia/Seoul',
  IN: 'Asia/Kolkata',
  CN: 'Asia/Shanghai',
  HK: 'Asia/Hong_Kong',
  SG: 'Asia/Singapore',
  TW: 'Asia/Taipei',
  PH: 'Asia/Manila',
  TH: 'Asia/Bangkok',
  VN: 'Asia/Ho_Chi_Minh',
  MY: 'Asia/Kuala_Lumpur',
  PK: 'Asia/Karachi',
  BD: 'Asia/Dhaka',
  LK: 'Asia/Colombo',
  NP: 'Asia/Kathmandu',
  AE: 'Asia/Dubai',
  SA: 'Asia/Riyadh',
  QA: 'Asia/Qatar',
  KW: 'Asia/Kuwait',
  BH: 'Asia/Bahrain',
  OM: 'Asia/Muscat',
  JO: 'Asia/Amman',
  LB: 'Asia/Beirut',
  EG: 'Africa/Cairo',
  ZA: 'Africa/Johannesburg',
  NG: 'Africa/Lagos',
  KE: 'Africa/Nairobi',
  GH: 'Africa/Accra',
  MA: 'Africa/Casablanca',
  TN: 'Africa/Tunis',
  DZ: 'Africa/Algiers',
  NZ: 'Pacific/Auckland',
  BY: 'Europe/Minsk',
  MD: 'Europe/Chisinau',
  GE: 'Asia/Tbilisi',
  AM: 'Asia/Yerevan',
  AZ: 'Asia/Baku',
  CO: 'America/Bogota',
  PE: 'America/Lima',
  VE: 'America/Caracas',
  UY: 'America/Montevideo',
  PY: 'America/Asuncion',
  BO: 'America/La_Paz',
  CR: 'America/Costa_Rica',
  PA: 'America/Panama',
  GT: 'America/Guatemala',
  SV: 'America/El_Salvador',
  HN: 'America/Tegucigalpa',
  NI: 'America/Managua',
  CU: 'America/Havana',
  JM: 'America/Jamaica',
  DO: 'America/Santo_Domingo',
  PR: 'America/Puerto_Rico',
  TT: 'America/Port_of_Spain',
  BS: 'America/Nassau',
  BB: 'America/Barbados',
  BM: 'Atlantic/Bermuda',
  KY: 'America/Cayman',
  AG: 'America/Antigua',
  AI: 'America/Anguilla',
  VG: 'America/Tortola',
  VI: 'America/St_Thomas',
  GD: 'America/Grenada',
  LC: 'America/St_Lucia',
  DM: 'America/Dominica',
  VC: 'America/St_Vincent',
  KN: 'America/St_Kitts',
  MS: 'America/Montserrat',
  TC: 'America/Grand_Turk',
  SX: 'America/Lower_Princes',
  GU: 'Pacific/Guam',
  MP: 'Pacific/Saipan',
  AS: 'Pacific/Pago_Pago',
  AR: 'America/Argentina/Buenos_Aires',
};

/**
 * The zone a number (E.164) most likely rings in, or undefined when it cannot be told from the
 * number alone. `country` is the region libphonenumber-js reported, when known.
 */
export function zoneForNumber(e164: string, country?: string): string | undefined {
  if (e164.startsWith('+1') && e164.length === 12) {
    const zone = NANP_ZONES[e164.slice(2, 5)];
    if (zone) return zone;
    if (country && country !== 'US' && country !== 'CA') return COUNTRY_ZONES[country];
    return undefined;
  }
  if (!country) return undefined;
  if (country === 'ES') {
    // Canary Islands landlines (+34 828/822/928/922) keep Atlantic/Canary time; the rest of Spain is Madrid.
    return /^\+34(8|9)2[28]/.test(e164) ? 'Atlantic/Canary' : 'Europe/Madrid';
  }
  if (country === 'PT') {
    // Azores landlines (+351 292/295/296) are one hour behind Lisbon.
    return /^\+35129[256]/.test(e164) ? 'Atlantic/Azores' : 'Europe/Lisbon';
  }
  return COUNTRY_ZONES[country];
}

/** For tests and docs: the NANP area codes the table covers. */
export function nanpAreaCodes(): Record<string, string> {
  return { ...NANP_ZONES };
}
