/**
 * Shared steps of the goodbye tests (record mode in test/controllers/agi.test.ts, stream mode in
 * test/media/stream-goodbye.test.ts).
 */
import { AgiHangupController } from '../../src/controllers/agi-hangup';
import { endCallPolitely } from '../../src/calls/goodbye';
import type { DialerMsg } from '../../src/types/msg';
import { keys, recordingView } from '../controllers/view';

/** A call whose goodbye voice waits for `voiced()`; `heardGoodbyeThenHangup` asserts what the callee lived. */
export interface CallAwaitingGoodbye {
  voiced(): void;
  heardGoodbyeThenHangup(): Promise<void>;
}

/**
 * A drain ends call `id` politely while its goodbye is still being synthesised; the flow's next step is
 * refused, so it reaches its hangup node (`msg`): the node waits for the session's own end, the goodbye
 * is heard in full, then AGI hangs up, and the node's output says so.
 */
export async function hangupNodeDuringGoodbye(c: CallAwaitingGoodbye, id: number, msg: DialerMsg): Promise<void> {
  expect(endCallPolitely(id, 'the dialer is shutting down')).toBe(1);
  const hangingUp = new AgiHangupController({}, recordingView(), keys, undefined, {}).handle(msg);
  let handled = false;
  void hangingUp.then(() => (handled = true));
  await new Promise((r) => setImmediate(r));
  expect(handled).toBe(false); // it waits for the session's own end
  c.voiced();
  const [out] = await hangingUp;
  await c.heardGoodbyeThenHangup();
  expect(out?.call).toMatchObject({ hungUp: true, hungUpBy: 'agi' });
}
