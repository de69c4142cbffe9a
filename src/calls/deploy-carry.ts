/**
 * A live call's msg survives a Deploy. Node-RED drops a message whose next node stopped: the router
 * finds no node under the wire's id in a stopped flow (`preRoute`), or a node closed between routing
 * and delivery has no input handler any more (`onReceive`). For a call under way that msg is the
 * conversation: without it the caller hears silence until the idle watchdog ends the call.
 *
 * This module holds such a message (only one that carries a live call, `msg.call.sessionId`) and hands
 * it to the node's next instance (same id) once the new flows have started; when the node is gone
 * (removed by the Deploy) or no start comes within `lingerMs`, the message is dropped as Node-RED would
 * have, and `onDropped` is told. Messages Node-RED would deliver are never touched. No Node-RED import:
 * the runtime's hooks, events and node look-up come in through `CarryHost`.
 */

/** What this needs of the runtime: `RED.hooks`, `RED.events` and `RED.nodes.getNode`. */
export interface CarryHost {
  hooks: { add(name: string, fn: (event: never) => unknown): void; remove(name: string): void };
  events: {
    on(event: string, fn: (...args: never[]) => void): unknown;
    removeListener(event: string, fn: (...args: never[]) => void): unknown;
  };
  getNode(id: string): unknown;
}

interface RoutedNode {
  receive?(msg: unknown): void;
  _flow?: { getNode?(id: string, cancelBubble?: boolean): unknown };
  _inputCallback?: unknown;
  _inputCallbacks?: unknown;
}

interface SendEvent {
  msg: unknown;
  source?: { id?: string; node?: RoutedNode };
  destination: { id: string; node?: unknown };
  cloneMessage?: boolean;
}

interface ReceiveEvent {
  msg: unknown;
  destination: { id: string; node?: RoutedNode };
}

export interface CarryOptions {
  /** How long a held message waits for the new flows (default 30 s, as the handoff). */
  lingerMs?: number;
  /** A held message found no node to go to: its node was removed, or the flows did not start again. */
  onDropped?(msg: unknown, why: string): void;
  /** A held message went on to the node's next instance. */
  onCarried?(msg: unknown, nodeId: string): void;
}

/** True for a msg of a call with a live AGI session (the only ones held). */
export function carriesLiveCall(msg: unknown): boolean {
  const call = msg && typeof msg === 'object' ? (msg as { call?: { sessionId?: unknown } }).call : undefined;
  return !!call && typeof call === 'object' && typeof call.sessionId === 'string' && call.sessionId !== '';
}

/** The node instance has no input handler: it was closed (Node-RED removes the handlers on close). */
function closed(node: RoutedNode | undefined): boolean {
  return !!node && node._inputCallback == null && node._inputCallbacks == null;
}

const HOOK = 'aiDialerCarry';

/** Install the hooks; returns their removal. */
export function carryAcrossDeploy(host: CarryHost, o: CarryOptions = {}): () => void {
  const lingerMs = o.lingerMs ?? 30_000;
  let deploying = false;
  const held: Array<{ id: string; msg: unknown; at: number }> = [];
  let timer: NodeJS.Timeout | undefined;

  const current = (id: string): RoutedNode | undefined => {
    const n = host.getNode(id) as RoutedNode | null | undefined;
    return n && typeof n.receive === 'function' ? n : undefined;
  };
  const deliver = (id: string, msg: unknown, stale?: unknown): boolean => {
    const n = current(id);
    if (!n || n === stale || closed(n)) return false;
    n.receive!(msg);
    o.onCarried?.(msg, id);
    return true;
  };
  const flush = (): void => {
    clearTimeout(timer);
    timer = undefined;
    for (const h of held.splice(0)) {
      if (!deliver(h.id, h.msg)) o.onDropped?.(h.msg, `node ${h.id} is not in the new flows`);
    }
  };
  const hold = (id: string, msg: unknown): false => {
    held.push({ id, msg, at: Date.now() });
    if (!timer) {
      timer = setTimeout(() => {
        timer = undefined;
        deploying = false;
        for (const h of held.splice(0)) o.onDropped?.(h.msg, `the flows did not start again within ${lingerMs} ms`);
      }, lingerMs);
      timer.unref();
    }
    return false;
  };

  // routing: the source's flow would find no node under the wire's id (it stopped)
  const preRoute = (e: SendEvent): unknown => {
    if (!carriesLiveCall(e.msg)) return undefined;
    const flow = e.source?.node?._flow;
    const routed = flow && typeof flow.getNode === 'function' ? flow.getNode(e.destination.id) : undefined;
    if (routed) return undefined;
    if (!flow && !deploying) return undefined; // nothing known to be wrong
    const msg = e.cloneMessage ? structuredCloneSafe(e.msg) : e.msg;
    if (deploying) return hold(e.destination.id, msg);
    return deliver(e.destination.id, msg) ? false : undefined;
  };
  // delivery: the instance it was routed to closed in between (no input handler)
  const onReceive = (e: ReceiveEvent): unknown => {
    if (!carriesLiveCall(e.msg) || !closed(e.destination.node)) return undefined;
    if (deploying) return hold(e.destination.id, e.msg);
    return deliver(e.destination.id, e.msg, e.destination.node) ? false : undefined;
  };
  const stopping = (): void => {
    deploying = true;
  };
  const started = (): void => {
    deploying = false;
    flush();
  };

  host.hooks.add(`preRoute.${HOOK}`, preRoute as (e: never) => unknown);
  host.hooks.add(`onReceive.${HOOK}`, onReceive as (e: never) => unknown);
  host.events.on('flows:stopping', stopping);
  host.events.on('flows:started', started);
  return () => {
    host.hooks.remove(`*.${HOOK}`);
    host.events.removeListener('flows:stopping', stopping);
    host.events.removeListener('flows:started', started);
    clearTimeout(timer);
    held.length = 0;
  };
}

/** A copy of a msg that was to be cloned by the router (Node-RED clones all but the first of a fan-out). */
function structuredCloneSafe(msg: unknown): unknown {
  try {
    return structuredClone(msg);
  } catch {
    return msg;
  }
}
