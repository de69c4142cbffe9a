/**
 * Security settings of the embedded runtime (`npm start`): the editor login (Node-RED adminAuth), the
 * refusal to listen on a non-loopback address without authentication, and the removal of Node-RED's
 * `Access-Control-Allow-Origin: *`. No Node-RED import: main.ts hands the results to Node-RED.
 * See docs/operations/security.md.
 */
import fs from 'fs';
import path from 'path';
import { randomBytes } from 'crypto';
import type { IncomingMessage, ServerResponse } from 'http';
import { parseFlag } from '../util/config';

/** Where the generated editor login is kept (bcrypt hash only, mode 600). */
export const EDITOR_CREDENTIALS_FILE = 'editor-credentials.json';

/** True for an address only this machine can reach: 127.0.0.0/8, ::1, localhost. */
export function isLoopback(host: string | undefined): boolean {
  if (!host) return true;
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}

interface Bcrypt {
  hashSync(s: string, rounds: number): string;
  compareSync(s: string, hash: string): boolean;
}

/**
 * bcryptjs as Node-RED itself loads it (its editor-api compares adminAuth passwords with it): resolved
 * from Node-RED's own install, so the hash format is the one Node-RED checks.
 */
export function loadBcrypt(): Bcrypt {
  const bases: string[] = [];
  for (const p of ['@node-red/editor-api/package.json', 'node-red/package.json']) {
    try {
      bases.push(path.dirname(require.resolve(p)));
    } catch {
      /* not installed there */
    }
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(require.resolve('bcryptjs', { paths: [...bases, __dirname] })) as Bcrypt;
}

const BCRYPT_HASH = /^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$/;

export interface EditorAuth {
  /** false: EDITOR=off, no editor and no admin API (httpAdminRoot false). */
  enabled: boolean;
  /** Node-RED's adminAuth setting (credentials type, one user with every permission). */
  adminAuth?: { type: 'credentials'; users: Array<{ username: string; password: string; permissions: string }> };
  username?: string;
  /** Where the password comes from. */
  source?: 'EDITOR_PASSWORD' | 'EDITOR_PASSWORD_HASH' | 'generated' | 'stored';
  /** The password generated on this start: printed once in the banner, never stored in clear. */
  generatedPassword?: string;
  /** The file holding the generated password's hash. */
  file?: string;
}

/** The user and password were given explicitly (what a non-loopback bind requires), or the editor is off. */
export function explicitEditorAuth(env: NodeJS.ProcessEnv): boolean {
  return isEditorOff(env) || !!env.EDITOR_PASSWORD || !!env.EDITOR_PASSWORD_HASH;
}

function isEditorOff(env: NodeJS.ProcessEnv): boolean {
  const v = (env.EDITOR ?? '').trim().toLowerCase();
  return v !== '' && !parseFlag(v, true);
}

/**
 * The editor login: EDITOR=off disables the editor; EDITOR_USER (default `admin`) with EDITOR_PASSWORD
 * (hashed here) or EDITOR_PASSWORD_HASH (a bcrypt hash); else the login generated on first start and kept
 * hashed in DATA_DIR/editor-credentials.json. Throws a one-line Error for bad settings.
 */
export function editorAuthFromEnv(env: NodeJS.ProcessEnv, dataDir: string): EditorAuth {
  if (isEditorOff(env)) return { enabled: false };
  const username = (env.EDITOR_USER || 'admin').trim();
  if (!/^[\x21-\x7e]{1,64}$/.test(username))
    throw new Error('EDITOR_USER must be 1-64 printable characters without spaces');
  const wrap = (hash: string, source: EditorAuth['source'], extra: Partial<EditorAuth> = {}): EditorAuth => ({
    enabled: true,
    username,
    source,
    adminAuth: { type: 'credentials', users: [{ username, password: hash, permissions: '*' }] },
    ...extra,
  });
  if (env.EDITOR_PASSWORD_HASH) {
    const h = env.EDITOR_PASSWORD_HASH.trim();
    if (!BCRYPT_HASH.test(h))
      throw new Error(
        'EDITOR_PASSWORD_HASH must be a bcrypt hash ($2b$...), e.g. from: npx node-red admin hash-pw (or leave it unset and set EDITOR_PASSWORD)',
      );
    return wrap(h, 'EDITOR_PASSWORD_HASH');
  }
  if (env.EDITOR_PASSWORD) {
    const pw = env.EDITOR_PASSWORD;
    if (pw.length < 8) throw new Error('EDITOR_PASSWORD must be at least 8 characters');
    if (/^change-?me/i.test(pw)) throw new Error('EDITOR_PASSWORD is still the placeholder from .env.example');
    return wrap(loadBcrypt().hashSync(pw, 10), 'EDITOR_PASSWORD');
  }
  const file = path.join(dataDir, EDITOR_CREDENTIALS_FILE);
  const stored = readStored(file);
  if (stored && stored.username === username) return wrap(stored.hash, 'stored', { file });
  // First start (or EDITOR_USER changed, or the file was deleted to reset the password): a new one.
  const password = randomBytes(15).toString('base64url'); // 20 characters, 120 bits
  const hash = loadBcrypt().hashSync(password, 10);
  fs.writeFileSync(file, JSON.stringify({ username, hash }, null, 2) + '\n', { mode: 0o600 });
  return wrap(hash, 'generated', { file, generatedPassword: password });
}

function readStored(file: string): { username: string; hash: string } | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const v = JSON.parse(text) as { username?: unknown; hash?: unknown };
    if (typeof v.username === 'string' && typeof v.hash === 'string' && BCRYPT_HASH.test(v.hash))
      return { username: v.username, hash: v.hash };
  } catch {
    /* unreadable: replaced by a new one */
  }
  return undefined;
}

/** Banner lines for the editor login (the generated password appears here once, never in a log line). */
export function editorBannerLines(a: EditorAuth, dataDir: string): string[] {
  if (!a.enabled) return ['  Editor:             off (EDITOR=off: no editor, no admin API)'];
  const file = a.file ?? path.join(dataDir, EDITOR_CREDENTIALS_FILE);
  switch (a.source) {
    case 'generated':
      return [
        `  Editor login:       ${a.username} / ${a.generatedPassword}`,
        '                      (generated now and shown only this once; stored hashed in',
        `                      ${file}. To change it: set EDITOR_PASSWORD, or delete that file and restart)`,
      ];
    case 'stored':
      return [
        `  Editor login:       ${a.username} (password shown at first start; to reset: delete ${file} and restart, or set EDITOR_PASSWORD)`,
      ];
    default:
      return [`  Editor login:       ${a.username} (password from ${a.source})`];
  }
}

export interface BindCheck {
  /** Non-loopback addresses the runtime would listen on (HOST, AGI_HOST, MQTT_HOST). */
  exposed: string[];
  /** What is missing for that, as setting names. */
  missing: string[];
  insecure: boolean;
}

/**
 * Listening beyond loopback needs authentication for what is exposed: HOST (editor, HTTP API, dashboard,
 * MQTT over WebSocket) needs API_TOKEN, explicit editor credentials (or EDITOR=off) and, with the embedded
 * broker, MQTT accounts; MQTT_HOST (embedded broker over TCP) needs MQTT accounts; AGI_HOST needs AGI_SECRET.
 */
export function checkBind(env: NodeJS.ProcessEnv): BindCheck {
  const http = env.HOST || '127.0.0.1';
  const agi = env.AGI_HOST || '127.0.0.1';
  const mqtt = env.MQTT_HOST || '127.0.0.1';
  const exposed: string[] = [];
  const missing = new Set<string>();
  const mqttAccounts = () => {
    if (env.MQTT_URL) return; // an external broker has its own accounts
    if (!env.MQTT_WRITER_USER || !env.MQTT_WRITER_PASSWORD) missing.add('MQTT_WRITER_USER/MQTT_WRITER_PASSWORD');
    if (!env.MQTT_READER_USER || !env.MQTT_READER_PASSWORD) missing.add('MQTT_READER_USER/MQTT_READER_PASSWORD');
  };
  if (!isLoopback(http)) {
    exposed.push(`HOST=${http}`);
    if (!env.API_TOKEN) missing.add('API_TOKEN');
    if (!explicitEditorAuth(env)) missing.add('EDITOR_PASSWORD (or EDITOR_PASSWORD_HASH, or EDITOR=off)');
    mqttAccounts();
  }
  if (!env.MQTT_URL && !isLoopback(mqtt)) {
    exposed.push(`MQTT_HOST=${mqtt}`);
    mqttAccounts();
  }
  if (!isLoopback(agi)) {
    exposed.push(`AGI_HOST=${agi}`);
    if (!env.AGI_SECRET) missing.add('AGI_SECRET');
  }
  return { exposed, missing: [...missing], insecure: parseFlag(env.ALLOW_INSECURE, false) };
}

/** The one line printed when the bind check refuses to start. */
export function bindRefusal(c: BindCheck): string {
  return (
    `refusing to listen on ${c.exposed.join(', ')} without authentication: set ${c.missing.join(', ')} ` +
    `(or ALLOW_INSECURE=1 if your own authenticating proxy or firewall guards it)`
  );
}

/** The loud banner warning of ALLOW_INSECURE=1. */
export function insecureBannerLines(c: BindCheck): string[] {
  if (!c.insecure || !c.exposed.length || !c.missing.length) return [];
  const bar = '!'.repeat(100);
  return [
    '',
    bar,
    `!! INSECURE (ALLOW_INSECURE=1): listening on ${c.exposed.join(', ')} WITHOUT ${c.missing.join(', ')}.`,
    '!! Anyone who reaches these ports can read phone numbers and transcripts and control calls.',
    '!! Only run this way behind your own authenticating proxy or firewall.',
    bar,
  ];
}

/**
 * Express middleware for everything the runtime serves: drops `Access-Control-Allow-Origin: *` (Node-RED's
 * admin API sets it on every route, unconditionally) and the preflight headers that go with it, so no page
 * on another origin can read or drive the editor's API. A specific origin someone configured stays.
 */
export function dropWildcardCors(_req: IncomingMessage, res: ServerResponse, next: () => void): void {
  const setHeader = res.setHeader.bind(res);
  let dropped = false;
  res.setHeader = ((name: string, value: number | string | readonly string[]) => {
    const n = name.toLowerCase();
    if (n === 'access-control-allow-origin' && String(value).trim() === '*') {
      dropped = true;
      return res;
    }
    if (dropped && n.startsWith('access-control-')) return res;
    return setHeader(name, value);
  }) as typeof res.setHeader;
  next();
}
