/**
 * The process-wide registry of live AGI sessions. Node-RED clones msgs, so nodes carry only
 * `msg.call.sessionId` and look the live session up here.
 *
 * Sessions register themselves when their environment block has been read (the server does it),
 * and unregister when their socket closes. Lookups are O(1); `sessionsByCallId` uses a secondary
 * index kept in step with the main one.
 */
import type { AgiSession } from './types';

const sessions = new Map<string, AgiSession>();
const byCall = new Map<string, Set<string>>();
const callOf = new Map<string, string>();

/** The call id a session belongs to: its `callId` property when the session carries one. */
function callIdOf(s: AgiSession): string | undefined {
  const v = (s as AgiSession & { callId?: string | number }).callId;
  return v === undefined || v === null || v === '' ? undefined : String(v);
}

function unindex(id: string): void {
  const call = callOf.get(id);
  if (call === undefined) return;
  callOf.delete(id);
  const set = byCall.get(call);
  if (set) {
    set.delete(id);
    if (set.size === 0) byCall.delete(call);
  }
}

/** Add (or replace) a session under its id; re-registering refreshes its call-id index. */
export function registerSession(s: AgiSession): void {
  unindex(s.id);
  sessions.set(s.id, s);
  const call = callIdOf(s);
  if (call !== undefined) {
    callOf.set(s.id, call);
    let set = byCall.get(call);
    if (!set) byCall.set(call, (set = new Set()));
    set.add(s.id);
  }
}

/** The live session with this id, or undefined once it ended (or never existed). */
export function getSession(id: string): AgiSession | undefined {
  return sessions.get(id);
}

/** Remove a session; unknown ids are ignored. */
export function unregisterSession(id: string): void {
  unindex(id);
  sessions.delete(id);
}

/** Live sessions of one call (a call may run AGI more than once, e.g. after a transfer). */
export function sessionsByCallId(callId: string): AgiSession[] {
  const set = byCall.get(String(callId));
  if (!set) return [];
  const out: AgiSession[] = [];
  for (const id of set) {
    const s = sessions.get(id);
    if (s) out.push(s);
  }
  return out;
}

/** Number of registered sessions. */
export function activeSessionCount(): number {
  return sessions.size;
}

/** Whether a session is ending on our side (endPolitely: its goodbye still to be heard), its caller still there. */
export function anySessionEnding(): boolean {
  for (const s of sessions.values()) if (s.ending && !s.hungUp) return true;
  return false;
}
