/**
 * A session's call identity and token come in one round trip (issue #17: nine GET VARIABLE round trips
 * before the greeting were one per variable): one GET FULL VARIABLE naming every variable the arguments do
 * not give, and each one alone only when that reply cannot be split into one value per variable. Real
 * sockets; the test plays Asterisk.
 */
import { readCall, readCallAndToken } from '../../src/agi/call';
import { connectFarAgi, type FarAgi } from '../helpers/far-agi';
import { waitFor } from '../helpers/wait';

const ALL =
  'GET FULL VARIABLE "${CALL_DIRECTION}|${CALL_ID}|${CONTACT_PHONE}|${CAMPAIGN_ID}|${CONTACT_ID}|${AMDSTATUS}|${AMDCAUSE}|${AMD_PATH}|${CALL_TOKEN}"';

/** Answer the session's next command with `reply` once it is written; returns that command. */
async function answer(far: FarAgi, reply: string): Promise<string> {
  const n = far.lines.length;
  await waitFor(() => far.lines.length > n, 5000, 'a command');
  const line = far.lines[n];
  far.reply(reply);
  return line;
}

test('an outbound call: every variable and the token in one GET FULL VARIABLE', async () => {
  const far = await connectFarAgi();
  try {
    const p = readCallAndToken(far.session);
    expect(
      await answer(far, '200 result=1 (|42|+12125550101|7|9|MACHINE|INITIALSILENCE-2500-2500|human|tok_abc-123)'),
    ).toBe(ALL);
    const { call, token } = await p;
    expect(far.lines).toHaveLength(1);
    expect(call).toMatchObject({
      id: 42,
      phone: '+12125550101',
      campaignId: 7,
      contactId: 9,
      direction: 'outbound',
      amd: { status: 'MACHINE', cause: 'INITIALSILENCE-2500-2500', path: 'human' },
    });
    expect(token).toBe('tok_abc-123');
    expect(JSON.stringify(call)).not.toContain('tok_abc'); // the token stays out of msg.call
  } finally {
    await far.close();
  }
});

test('unset variables read as absent: a session without a call id is inbound and has no token', async () => {
  const far = await connectFarAgi();
  try {
    const p = readCallAndToken(far.session);
    await answer(far, '200 result=1 (||||||||)');
    const { call, token } = await p;
    expect(call).toMatchObject({ id: undefined, direction: 'inbound', campaignId: null, contactId: null });
    expect(call.amd).toBeUndefined();
    expect(token).toBeUndefined();
  } finally {
    await far.close();
  }
});

test('CALL_DIRECTION=inbound: inbound whatever call id it names, and no token is taken', async () => {
  const far = await connectFarAgi();
  try {
    const p = readCallAndToken(far.session);
    await answer(far, '200 result=1 (inbound|42|||||||tok)');
    const { call, token } = await p;
    expect(call).toMatchObject({ id: undefined, direction: 'inbound' });
    expect(token).toBeUndefined();
  } finally {
    await far.close();
  }
});

test('a value holding the separator: each variable is read alone, and nothing is misread', async () => {
  const far = await connectFarAgi();
  try {
    const p = readCallAndToken(far.session);
    // CONTACT_PHONE holds a '|': ten parts for nine names
    await answer(far, '200 result=1 (|42|+1212|555|7|9||||tok)');
    const names = ['CALL_DIRECTION', 'CALL_ID', 'CONTACT_PHONE', 'CAMPAIGN_ID', 'CONTACT_ID'];
    const values = ['', '42', '+1212|555', '7', '9'];
    for (const [i, name] of names.entries())
      expect(await answer(far, values[i] ? `200 result=1 (${values[i]})` : '200 result=0')).toBe(
        `GET VARIABLE "${name}"`,
      );
    for (const name of ['AMDSTATUS', 'AMDCAUSE', 'AMD_PATH'])
      expect(await answer(far, '200 result=0')).toBe(`GET VARIABLE "${name}"`);
    expect(await answer(far, '200 result=1 (tok)')).toBe('GET VARIABLE "CALL_TOKEN"');
    const { call, token } = await p;
    expect(call).toMatchObject({ id: 42, phone: '+1212|555', campaignId: 7, contactId: 9 });
    expect(token).toBe('tok');
  } finally {
    await far.close();
  }
});

test('a refused GET FULL VARIABLE: read one by one', async () => {
  const far = await connectFarAgi();
  try {
    const p = readCall(far.session);
    expect(await answer(far, '510 Invalid or unknown command')).toMatch(/^GET FULL VARIABLE /);
    for (let i = 0; i < 8; i++) await answer(far, i === 1 ? '200 result=1 (5)' : '200 result=0');
    const names = 'CALL_DIRECTION CALL_ID CONTACT_PHONE CAMPAIGN_ID CONTACT_ID AMDSTATUS AMDCAUSE AMD_PATH'.split(' ');
    expect(far.lines.slice(1)).toEqual(names.map((n) => `GET VARIABLE "${n}"`));
    expect((await p).id).toBe(5);
  } finally {
    await far.close();
  }
});
