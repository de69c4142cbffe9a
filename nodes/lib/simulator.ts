/**
 * The built-in Asterisk simulator for an ai-dialer-asterisk node in simulator mode: the one the
 * runtime injects (`settings.aiDialer.startSimulator`, set by `npm start`), else, under a stock
 * Node-RED, the package's own, loaded only when a simulator is actually started. This is the only
 * place outside src/sim and src/runtime that loads the simulator.
 */
import type { NodeAPI } from 'node-red';
import type { StartSimulator } from '../../src/types/settings';
import { dialerSettings } from './kit';

export function simulatorStarter(RED: NodeAPI): StartSimulator {
  return (
    dialerSettings(RED).startSimulator ??
    ((o) => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { startSimulator } = require('../../src/sim/index') as typeof import('../../src/sim/index');
      return startSimulator(o);
    })
  );
}
