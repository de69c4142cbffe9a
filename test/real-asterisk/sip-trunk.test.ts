/**
 * Two real Asterisks on loopback: ours with the shipped asterisk-config (trunk = the other one) and a
 * test SIP provider that logs the From / P-Asserted-Identity it receives and answers busy (486),
 * congestion (503), rings forever, or answers. Proves the outcome mapping over real SIP, the caller
 * ID the carrier sees, and the inbound caller's number.
 */
import fs from 'fs';
import path from 'path';
import type { FastAgiSession } from '../../src/agi/session';
import { waitFor } from '../helpers/wait';
import {
  ROOT,
  describeReal,
  startShipped,
  startPlain,
  startDialerSide,
  stopAll,
  freePort,
  problems,
  type DialerSide,
  type Instance,
} from './asterisk';

const d = describeReal();

const TRUNK_USER = 'dialer-trunk';
const TRUNK_PASSWORD = 'trunk-pw-' + Math.random().toString(36).slice(2, 10);

/** The shipped core files without deployment placeholders (logger, cdr, indications, ...). */
function coreFiles(): Record<string, string> {
  const dir = path.join(ROOT, 'asterisk-config');
  const out: Record<string, string> = {};
  for (const f of fs.readdirSync(dir)) {
    const text = fs.readFileSync(path.join(dir, f), 'utf8');
    if (f.endsWith('.conf') && !/\$\{[A-Z_]+\}/.test(text.replace(/;.*$/gm, '')) && !/^(extensions|http)/.test(f))
      out[f] = text;
  }
  return out;
}

function providerFiles(providerPort: number, dialerPort: number, rtp: number): Record<string, string> {
  return {
    ...coreFiles(),
    'modules.conf':
      fs
        .readFileSync(path.join(ROOT, 'asterisk-config', 'modules.conf'), 'utf8')
        .split('\n')
        .filter((l) => !/ari|stasis|http_websocket/.test(l))
        .map((l) => l.replace(/^require\b/, 'load'))
        .join('\n') +
      ['app_playtones', 'res_clioriginate', 'res_pjsip_registrar', 'res_pjsip_endpoint_identifier_user']
        .map((m) => `\nload = ${m}.so`)
        .join('') +
      '\n',
    'rtp.conf': `[general]\nrtpstart = ${rtp}\nrtpend = ${rtp + 98}\n`,
    'pjsip.conf': [
      '[udp]',
      'type = transport',
      'protocol = udp',
      `bind = 127.0.0.1:${providerPort}`,
      `[${TRUNK_USER}]`,
      'type = auth',
      'auth_type = userpass',
      `username = ${TRUNK_USER}`,
      `password = ${TRUNK_PASSWORD}`,
      `[${TRUNK_USER}]`,
      'type = aor',
      'max_contacts = 1',
      `contact = sip:${TRUNK_USER}@127.0.0.1:${dialerPort}`,
      `[${TRUNK_USER}]`,
      'type = endpoint',
      'context = provider-in',
      'disallow = all',
      'allow = ulaw',
      `auth = ${TRUNK_USER}`,
      `aors = ${TRUNK_USER}`,
      'identify_by = username',
      '',
    ].join('\n'),
    'extensions.conf': [
      '[provider-in]',
      'exten => _+X.,1,Log(NOTICE,PROVIDER-INVITE exten=${EXTEN} from=${PJSIP_HEADER(read,From)} pai=${PJSIP_HEADER(read,P-Asserted-Identity)})',
      ' same => n,Goto(${EXTEN:-3},1)',
      'exten => 486,1,Hangup(17)',
      'exten => 503,1,Hangup(34)',
      'exten => 408,1,Ringing()',
      ' same => n,Wait(60)',
      'exten => 200,1,Answer()',
      ' same => n,Playtones(0)',
      ' same => n,Wait(2)',
      ' same => n,Hangup()',
      '; an inbound call to the dialer, from a caller whose number must survive',
      '[provider-out]',
      'exten => call,1,Set(CALLERID(all)="Caller" <+13105550000>)',
      ` same => n,Dial(PJSIP/+13125559001@${TRUNK_USER},10)`,
      '',
    ].join('\n'),
  };
}

d('a real PJSIP trunk between two Asterisks', () => {
  let ours: Instance;
  let provider: Awaited<ReturnType<typeof startPlain>>;
  let side: DialerSide;
  const sessions: FastAgiSession[] = [];

  beforeAll(async () => {
    // SIP ports of the two Asterisks: named in their configuration (see freePort)
    const [providerPort, dialerPort] = [await freePort(true), await freePort(true)];
    const rtp = 30000 + Math.floor(Math.random() * 300) * 100;
    [ours, provider] = await Promise.all([
      startShipped({
        env: {
          TRUNK_HOST: '127.0.0.1',
          TRUNK_PORT: String(providerPort),
          TRUNK_USERNAME: TRUNK_USER,
          TRUNK_PASSWORD,
          TRUNK_CALLER_ID: '+13125559001',
          SIP_PORT: String(dialerPort),
        },
      }),
      startPlain(providerFiles(providerPort, dialerPort, rtp)),
    ]);
    side = await startDialerSide(ours, 'PJSIP/{phone}@trunk');
    side.onSession = (s) => {
      sessions.push(s);
      // the conversation: hang up after a moment, then close (Asterisk waits for the close)
      setTimeout(() => void s.hangup().finally(() => s.close()), 300);
    };
  }, 170_000);

  afterAll(() => stopAll({ side, asterisks: [ours, provider] }), 60_000);

  test('486 -> busy (17), 503 -> congestion (34), no answer -> no_answer, answer -> completed', async () => {
    const cid = '+13125550001';
    await side.tracker.originate({ id: 'busy', phone: '+15550486', callerId: cid });
    await side.tracker.originate({ id: 'cong', phone: '+15550503', callerId: cid });
    await side.tracker.originate({ id: 'noans', phone: '+15550408', callerId: cid, timeoutSec: 3 });
    await side.tracker.originate({ id: 'talk', phone: '+15550200', callerId: cid });
    await waitFor(() => side.outcomes.length >= 4, 40_000, 'four outcomes');
    const by = Object.fromEntries(side.outcomes.map((o) => [o.callId, o]));
    expect(by.busy).toMatchObject({ outcome: 'busy', hangupCause: 17, dialStatus: 'BUSY' });
    expect(by.cong).toMatchObject({ outcome: 'congestion', hangupCause: 34, dialStatus: 'CONGESTION' });
    expect(by.noans).toMatchObject({ outcome: 'no_answer' });
    expect(by.talk).toMatchObject({ outcome: 'completed' });
    expect(problems(ours.output()).filter((l) => !/registration/.test(l))).toEqual([]);
  }, 60_000);

  test('the carrier sees the campaign caller ID (P-Asserted-Identity), not only the trunk username', () => {
    const seen = provider
      .output()
      .split('\n')
      .filter((l) => l.includes('PROVIDER-INVITE'));
    expect(seen.length).toBeGreaterThanOrEqual(4);
    for (const l of seen) {
      expect(l).toMatch(/pai=.*<sip:\+13125550001@/);
      // the From user stays the account the provider knows the trunk by
      expect(l).toMatch(/from=.*<sip:dialer-trunk@127\.0\.0\.1>/);
    }
    process.stdout.write(`provider received:\n${seen.join('\n')}\n`);
  });

  test("an inbound call keeps the caller's own number", async () => {
    const before = sessions.length;
    const r = provider.cli('channel originate Local/call@provider-out application Wait 5');
    expect(r).not.toMatch(/No such command|Unable/);
    const s = await waitFor(() => sessions.length > before && sessions[sessions.length - 1], 20_000, 'inbound AGI');
    expect(s.env.callerid).toBe('+13105550000');
  }, 30_000);
});
