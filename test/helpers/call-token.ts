/**
 * Tests that play Asterisk's side of a FastAGI session themselves (not through ari-originate) give the
 * call a token the way ari-originate does: CALL_TOKEN on the channel, its hash remembered in this process.
 */
import { newCallToken, rememberCallToken } from '../../src/agi/call-token';

/** A CALL_TOKEN for `callId`, as if this process had originated the call. */
export function givenCall(callId: string | number): string {
  const token = newCallToken();
  rememberCallToken(callId, token);
  return token;
}
