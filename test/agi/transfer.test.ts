/** Transfer to a human: agi-hangup points the dialplan at the destination and leaves the channel up. */
import helper from 'node-red-node-test-helper';
import { runAgiCall } from '../../src/sim/agi-client';
import { parseTransferTarget } from '../../src/agi/transfer';
import { controlBus } from '../../src/events/control-bus';
import { waitFor } from '../helpers/wait';
import { givenCall } from '../helpers/call-token';

import fastagiIn from '../../nodes/fastagi-in/fastagi-in';
import agiHangup from '../../nodes/agi-hangup/agi-hangup';
import changeNode from '@node-red/nodes/core/function/15-change.js';

helper.init(require.resolve('node-red'));

beforeAll((done) => {
  helper.startServer(done);
});
afterAll((done) => {
  helper.stopServer(done);
});
afterEach(() => helper.unload());

describe('parseTransferTarget', () => {
  test('extension alone goes to the default context; extension@context is split', () => {
    expect(parseTransferTarget('sales')).toEqual({ extension: 'sales', context: 'ai-dialer-transfer' });
    expect(parseTransferTarget('2001@agents', 'x')).toEqual({ extension: '2001', context: 'agents' });
    expect(parseTransferTarget('+12125550100', 'queue-in')).toEqual({ extension: '+12125550100', context: 'queue-in' });
  });
  test.each(['', 'sales\nHANGUP', 'a b', 'x@y@z', '"sales"', 'sales,1', 42, undefined])('refuses %p', (d) => {
    expect(() => parseTransferTarget(d)).toThrow(/transfer destination must be/);
  });
});

test('agi-hangup with a transfer action sets context, extension and priority and does not hang up', async () => {
  await helper.load(
    [fastagiIn, agiHangup, changeNode],
    [
      { id: 'f', type: 'tab' },
      { id: 'in', z: 'f', type: 'fastagi-in', host: '127.0.0.1', port: '0', wires: [['set'], []] },
      {
        id: 'set',
        z: 'f',
        type: 'change',
        rules: [
          {
            t: 'set',
            p: 'reply',
            pt: 'msg',
            to: '{"text":"One moment","done":true,"action":{"type":"transfer","destination":"sales"}}',
            tot: 'json',
          },
        ],
        wires: [['hang']],
      },
      { id: 'hang', z: 'f', type: 'agi-hangup', transferContext: 'agents', wires: [['out']] },
      { id: 'out', z: 'f', type: 'helper' },
    ],
  );
  const port = await waitFor(
    () => (helper.getNode('in') as unknown as { port?: number }).port,
    5000,
    'fastagi-in to listen',
  );
  const out: Array<Record<string, any>> = [];
  helper.getNode('out').on('input', (m: Record<string, unknown>) => out.push(m));
  const result = await runAgiCall({
    host: '127.0.0.1',
    port,
    script: 'dialer',
    channel: 'PJSIP/trunk-00000001',
    uniqueid: '1700000000.1',
    variables: { CALL_ID: '77', CALL_TOKEN: givenCall(77) },
    persona: {},
  });
  expect(result.hungUp).toBe(false);
  expect(result.continueAt).toEqual({ context: 'agents', extension: 'sales', priority: '1' });
  await waitFor(() => out.length === 1, 5000, 'the msg after the transfer');
  expect(out[0].call.transferredTo).toBe('sales@agents');
});

test('a supervisor hangup on the control bus hangs up that call only', async () => {
  await helper.load(
    [fastagiIn],
    [
      { id: 'f', type: 'tab' },
      { id: 'in', z: 'f', type: 'fastagi-in', host: '127.0.0.1', port: '0', wires: [['out'], []] },
      { id: 'out', z: 'f', type: 'helper' },
    ],
  );
  const port = await waitFor(
    () => (helper.getNode('in') as unknown as { port?: number }).port,
    5000,
    'fastagi-in to listen',
  );
  const arrived: string[] = [];
  helper.getNode('out').on('input', (m: { call: { id: string } }) => arrived.push(String(m.call.id)));
  const call = (id: string) =>
    runAgiCall({
      host: '127.0.0.1',
      port,
      script: 'dialer',
      channel: `PJSIP/trunk-0000000${id}`,
      uniqueid: `1700000000.${id}`,
      variables: { CALL_ID: id, CALL_TOKEN: givenCall(id) },
      persona: {},
    });
  const a = call('5');
  const b = call('6');
  await waitFor(() => arrived.length === 2, 5000, 'both sessions');
  controlBus.emit('call', { callId: '5', action: 'hangup' });
  const ra = await a;
  expect(ra.hungUp).toBe(true);
  expect(ra.hungUpBy).toBe('agi');
  // call 6 is still up: end it the ordinary way and check it was not the supervisor's hangup
  controlBus.emit('call', { callId: '6', action: 'say', text: 'hello' });
  controlBus.emit('call', { callId: '6', action: 'hangup' });
  const rb = await b;
  expect(rb.hungUpBy).toBe('agi');
  expect(rb.transcript.filter((t) => t.dir === 'cmd' && t.line === 'HANGUP')).toHaveLength(1);
});
