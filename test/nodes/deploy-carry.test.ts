/**
 * A live call's msg in flight between two nodes when a Deploy stops the flows (src/calls/deploy-carry.ts,
 * installed by the node kit): on the real Node-RED runtime, with a real FastAGI session. Stock Node-RED
 * drops such a msg (the wire's node is stopped, or closed before delivery) and the caller hears silence
 * until the idle watchdog; here it reaches the node's next instance, and when the Deploy removed that
 * node the call is ended politely at once.
 */
import helper from 'node-red-node-test-helper';
import type { Node, NodeAPI } from 'node-red';
import { runAgiCall } from '../../src/sim/agi-client';
import { waitFor } from '../helpers/wait';
import { givenCall } from '../helpers/call-token';

import fastagiIn from '../../nodes/fastagi-in/fastagi-in';
import agiHangup from '../../nodes/agi-hangup/agi-hangup';
import functionNode from '@node-red/nodes/core/function/10-function.js';

helper.init(require.resolve('node-red'));

/**
 * The test helper's RED has no `hooks`; a real runtime's RED.hooks is @node-red/util's hooks (what
 * the flows' router triggers): give the nodes that one, as Node-RED does.
 */
function withRuntimeHooks(RED: NodeAPI): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  (RED as unknown as { hooks?: unknown }).hooks ??= require('@node-red/util').hooks;
}

type Msg = Record<string, any>;

/** Holds the msgs it gets; sends them as it closes (a msg on its way at the instant the flows stop). */
function holdNode(RED: NodeAPI): void {
  function Hold(this: Node, config: object) {
    RED.nodes.createNode(this, config as never);
    const kept: Msg[] = [];
    (this as unknown as { kept: Msg[] }).kept = kept;
    this.on('input', (m: Msg, _send: unknown, done: () => void) => {
      kept.push(m);
      done();
    });
    this.on('close', () => {
      for (const m of kept.splice(0)) this.send(m as never);
    });
  }
  RED.nodes.registerType('carry-hold', Hold as never);
}

beforeAll((done) => {
  helper.startServer(done);
});
afterAll((done) => {
  helper.stopServer(done);
});
afterEach(() => helper.unload());

const tab = (nodes: object[]) => [{ id: 'f1', type: 'tab' }, ...nodes.map((n) => ({ z: 'f1', ...n }))];
const fastagi = { id: 'in', type: 'fastagi-in', host: '127.0.0.1', port: '0', media: 'record', wires: [['hold']] };
const hold = (to: string) => ({ id: 'hold', type: 'carry-hold', wires: [[to]] });
/** A core node between the hold and the hang-up: what it passes on is what the next hop gets. */
const pass = { id: 'pass', type: 'function', func: 'msg.passed = true; return msg;', outputs: 1, wires: [['hang']] };
const hang = { id: 'hang', type: 'agi-hangup', wires: [['done']] };
const done = { id: 'done', type: 'helper' };
const nodes = [withRuntimeHooks, fastagiIn, agiHangup, functionNode, holdNode];

function call(port: number) {
  return runAgiCall({
    host: '127.0.0.1',
    port,
    script: 'dialer',
    channel: 'Local/+12125550091@callees-00000091;1',
    uniqueid: '1732486000.91',
    variables: { CALL_ID: '91', CALL_TOKEN: givenCall(91), CONTACT_PHONE: '+12125550091', CAMPAIGN_ID: '3' },
    // the callee stays on the line: only the dialer ends this call
    persona: { utterances: [{ text: 'Hello?', pauseMs: 60000 }] },
  });
}

async function heldCall(flow: object[]) {
  await helper.load(nodes, tab(flow));
  const port = await waitFor(() => (helper.getNode('in') as { port?: number }).port, 5000, 'fastagi-in to listen');
  const r = call(port);
  // the session's msg sits in the hold node (the flow has sent no AGI command yet)
  await waitFor(() => helper.getNode('hold').kept.length === 1, 5000, 'the call msg in the hold node');
  return { ended: r }; // not the promise itself: an async function would wait for it
}

describe.each([
  // stopped after the hold node: the msg is routed to it, and it closes before delivery (onReceive)
  ['the next node is ours (agi-hangup), stopped after the msg is routed', [fastagi, hold('hang'), hang, done]],
  ['the next node is a core function node, then ours', [fastagi, hold('pass'), pass, hang, done]],
  // stopped before the hold node: the router finds no node under the wire's id (preRoute)
  ['the next node stopped before the msg is sent', [fastagi, hang, done, hold('hang')]],
])('a full Deploy while a live call msg is on its way: %s', (_what, flow) => {
  test('the msg goes on through the new flows: the call is hung up by the flow, not left silent', async () => {
    const next = flow.some((n) => n.id === 'pass') ? 'pass' : 'hang';
    const { ended } = await heldCall(flow);
    await helper.setFlows(tab(flow), 'full');
    const out: Msg[] = [];
    helper.getNode('done')?.on('input', (m: Msg) => out.push(m));
    const result = await ended;
    expect(result.hungUpBy).toBe('agi');
    // after the call's variables (GET VARIABLE), the flow's own hang-up: no goodbye of a watchdog
    const cmds = result.transcript.filter((t) => t.dir === 'cmd').map((t) => t.line.split(' ')[0]);
    expect(cmds.filter((c) => c !== 'GET')).toEqual(['HANGUP']);
    const m = await waitFor(() => out[0], 5000, 'the msg past agi-hangup');
    expect(m.call.id).toBe(91);
    if (next === 'pass') expect(m.passed).toBe(true);
  }, 30000);
});

test('a msg that carries no live call is left to Node-RED (dropped at the Deploy, as before)', async () => {
  const flow = [{ ...hold('pass'), wires: [['pass']] }, { ...pass, wires: [['done']] }, done];
  await helper.load(nodes, tab(flow));
  helper.getNode('hold').receive({ payload: 'no call here' });
  helper.getNode('hold').receive({ payload: 'a finished call', call: { id: 5 } });
  await new Promise((res) => setImmediate(res));
  await helper.setFlows(tab(flow), 'full');
  const out: Msg[] = [];
  helper.getNode('done').on('input', (m: Msg) => out.push(m));
  helper.getNode('pass').receive({ payload: 'after' });
  await waitFor(() => out.length > 0, 5000, 'the msg sent after the Deploy');
  expect(out.map((m) => m.payload)).toEqual(['after']);
});

test('a Deploy that removes the node the msg was going to ends the call politely at once (not after the idle watchdog)', async () => {
  const { ended } = await heldCall([fastagi, hold('hang'), hang, done]);
  await helper.setFlows(tab([fastagi, hold('hang'), done]), 'full');
  // ended by the Deploy itself: this test's 40 s are well under AGI_IDLE_TIMEOUT (60 s)
  const result = await ended;
  expect(result.hungUpBy).toBe('agi');
  const cmds = result.transcript.filter((t) => t.dir === 'cmd').map((t) => t.line.split(' ')[0]);
  expect(cmds[cmds.length - 1]).toBe('HANGUP');
  const warned = helper
    .log()
    .args.map((a: unknown[]) => JSON.stringify(a))
    .filter((s: string) => s.includes('lost at a Deploy'));
  expect(warned.length).toBe(1);
  expect(helper.log().args.some((a: unknown[]) => JSON.stringify(a).includes('sent no command'))).toBe(false);
}, 40000);
