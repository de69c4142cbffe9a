/**
 * End to end in the Node-RED runtime: ari-originate dials through the built-in simulator; the
 * answered call is continued into the AGI context and reaches fastagi-in with the originate's
 * channel variables and the AMD result; agi-hangup ends it; the originate node reports completed.
 */
import helper from 'node-red-node-test-helper';
import { waitFor } from '../helpers/wait';

import asteriskNode from '../../nodes/ai-dialer-asterisk/ai-dialer-asterisk';
import originateNode from '../../nodes/ari-originate/ari-originate';
import fastagiNode from '../../nodes/fastagi-in/fastagi-in';
import hangupNode from '../../nodes/agi-hangup/agi-hangup';

helper.init(require.resolve('node-red'));

describe('originate -> AGI -> hangup in the Node-RED runtime', () => {
  beforeAll((done) => {
    helper.startServer(done);
  });
  afterAll((done) => {
    helper.stopServer(done);
  });
  afterEach(() => helper.unload());

  test('answered calls reach fastagi-in with CALL_ID, campaign and AMD; the outcome is completed once', async () => {
    await helper.load(
      [asteriskNode, originateNode, fastagiNode, hangupNode],
      [
        {
          id: 'ast',
          type: 'ai-dialer-asterisk',
          mode: 'simulator',
          app: 'e2e',
          simSpeed: '20',
          agiHost: '127.0.0.1',
        },
        {
          id: 'o',
          type: 'ari-originate',
          asterisk: 'ast',
          endpoint: 'PJSIP/{phone}@trunk',
          agiContext: 'ai-dialer-agi',
          timeout: '30',
          amd: 'msg',
          wires: [['answered'], ['outcome']],
        },
        {
          id: 'in',
          type: 'fastagi-in',
          host: '127.0.0.1',
          port: '0', // bound as 0; the simulator's dialplan is pointed at the port read back below
          answer: false,
          envTimeout: '5',
          commandTimeout: '5',
          wires: [['session', 'h'], []],
        },
        { id: 'h', type: 'agi-hangup', wires: [[]] },
        { id: 'answered', type: 'helper' },
        { id: 'outcome', type: 'helper' },
        { id: 'session', type: 'helper' },
      ],
    );
    const sessions: Array<{ call: Record<string, any> }> = [];
    const outcomes: Array<{ call: Record<string, any> }> = [];
    helper.getNode('session').on('input', (m: any) => sessions.push(m));
    helper.getNode('outcome').on('input', (m: any) => outcomes.push(m));
    const ast = helper.getNode('ast') as any;
    await waitFor(() => ast.service.simulator, 5000, 'simulator started');
    const fastagi = helper.getNode('in') as any;
    const agiPort = await waitFor(() => fastagi.port as number | undefined, 5000, 'fastagi-in listening');
    // as extensions-agi.conf names fastagi-in's address: the simulator's AGI target is the port bound
    ast.service.simulator.sim.agi.port = agiPort;
    ast.service.simulator.setPersona('+15552001', { dial: { behaviour: 'answer', ringMs: 200 }, amd: 'MACHINE' });
    ast.service.simulator.setPersona('+15552002', { dial: { behaviour: 'answer', ringMs: 300 } });
    const o = helper.getNode('o');
    o.receive({ call: { id: 701, phone: '+15552001', campaignId: 12, amdEnabled: true } } as any);
    o.receive({ call: { id: 702, phone: '+15552002', campaignId: 12 } } as any);
    await waitFor(() => outcomes.length === 2 || undefined, 20_000, 'two outcomes');
    expect(sessions).toHaveLength(2);
    const s1 = sessions.find((m) => String(m.call.id) === '701') as { call: Record<string, any> };
    const s2 = sessions.find((m) => String(m.call.id) === '702') as { call: Record<string, any> };
    expect(s1.call).toMatchObject({ phone: '+15552001', amd: { status: 'MACHINE' } });
    expect(String(s1.call.campaignId)).toBe('12');
    expect(s1.call.channel).toMatch(/^PJSIP\/trunk-/);
    expect(s2.call.amd).toBeUndefined(); // AMD not requested: AMD() did not run
    expect(outcomes.map((m) => m.call.outcome)).toEqual(['completed', 'completed']);
    expect(new Set(outcomes.map((m) => m.call.id))).toEqual(new Set([701, 702]));
    for (const m of outcomes) expect(m.call.hangupCause).toBe(16);
  });
});
