/**
 * The node kit: Node-RED policy in one place, so every node file stays thin (read config, wire
 * events, set status, call send/done).
 *
 * - `onInput`: input -> handler -> send/done, with an AbortSignal that fires when the node closes,
 *   and the failure rule of the package: a failure goes to the node's failure output (with
 *   `msg.error`) when that output is wired, else `done(err)` so a Catch node sees it; never both.
 * - `getConfigNode<T>`: a typed look-up of a config node.
 * - `translator`: `RED._` memoised for texts without variables.
 * - `registerNode`: `RED.nodes.registerType` without casts at every call site.
 *
 * Logic lives in src/ (no Node-RED import there); this folder is the only Node-RED-aware code
 * besides the node files themselves.
 */
import path from 'path';
import type { Node, NodeAPI, NodeDef, NodeMessage, NodeMessageInFlow } from 'node-red';
import { StageError, errorMessage, toStageError, type Stage } from '../../src/util/errors';
import { memoTranslate, type Translate } from '../../src/util/i18n';
import type { DialerMsg } from '../../src/types/msg';
import { failureInfo } from '../../src/speech/failure';
import { settingsEnv, type DialerSettings } from '../../src/types/settings';
import { adopt, announce, disposeParked, handoffKey, park, retire, successor } from '../../src/util/handoff';
import { carryAcrossDeploy, type CarryHost } from '../../src/calls/deploy-carry';
import { getSession } from '../../src/agi/registry';
import { endSessionPolitely } from '../../src/calls/goodbye';
import { LazyAbort } from '../../src/util/lazy-abort';

export type { DialerMsg } from '../../src/types/msg';
export type { Translate } from '../../src/util/i18n';
export { status } from '../../src/controllers/view';
export { toStageError, failureInfo };

/** What a handler returns: one msg per output (null for none), or nothing to send. */
export type Outputs = (DialerMsg | DialerMsg[] | null)[] | DialerMsg | null | undefined | void;

export interface InputContext {
  /** Aborted when the node closes (deploy, shutdown): pass it to every engine and I/O call. */
  signal: AbortSignal;
  /** Send more messages before the handler returns (e.g. progress); the final result is sent on return. */
  send(out: Outputs): void;
}

export interface InputOptions {
  /** Index of the failure output (0-based). When it is wired, failures go there with `msg.error`. */
  failureOutput?: number;
  /** Total outputs of the node, used to build the output array for the failure output. */
  outputs?: number;
  /**
   * Stage named in errors that are not StageErrors (they become kind `internal` under it); without
   * it, errors reach done(err) as thrown.
   */
  stage?: Stage;
  /** Called with every failure before it is routed (status, counters). */
  onFailure?(err: StageError | Error, msg: DialerMsg): void;
}

/** True when output `index` of the node has at least one wire. */
export function outputWired(node: Node, index: number): boolean {
  const wires = (node as unknown as { wires?: unknown[][] }).wires;
  return Array.isArray(wires) && Array.isArray(wires[index]) && wires[index].length > 0;
}

type Send = (m: NodeMessage | (NodeMessage | NodeMessage[] | null)[]) => void;

/** The failure rule: to the failure output with `msg.error` when it is wired, else done(err); never both. */
function routeFailure(
  node: Node,
  opts: InputOptions,
  err: unknown,
  msg: DialerMsg,
  send: Send,
  done: (err?: Error) => void,
): void {
  const e = opts.stage ? toStageError(err, opts.stage) : err instanceof Error ? err : new Error(String(err));
  try {
    opts.onFailure?.(e, msg);
  } catch {
    /* a status callback never changes the routing */
  }
  const idx = opts.failureOutput;
  if (idx === undefined || !outputWired(node, idx)) return done(e);
  msg.error = failureInfo(toStageError(e, opts.stage ?? 'agi'));
  const out: (DialerMsg | null)[] = new Array(Math.max(opts.outputs ?? idx + 1, idx + 1)).fill(null);
  out[idx] = msg;
  send(out as NodeMessage[]);
  done();
}

/**
 * Wire a node's input and close events. The handler's result is sent and done() called; a thrown
 * error is routed by the failure rule.
 *
 * Redeploy: when the node closes without being removed (a full Deploy, or one that changed it), the
 * handlers in flight go on (a RECORD, a playback, an engine call of a live call) and what they send,
 * like any msg that still reaches this instance, goes through the node's next instance (same id) in
 * the new flows: a conversation goes on through the redeployed flow. Handlers still running when no
 * next instance came within HANDOFF_LINGER_MS, or when the node is removed, are aborted (their abort
 * error is dropped).
 */
export function onInput(
  node: Node,
  handler: (msg: DialerMsg, ctx: InputContext) => Promise<Outputs> | Outputs,
  opts: InputOptions = {},
): void {
  const inflight = new Set<LazyAbort>();
  const slot = `node:${node.id}`;
  let closed = false;
  let removedNode = false;
  announce(slot, node);
  const next = (): Promise<Node | undefined> =>
    removedNode ? Promise.resolve(undefined) : successor<Node>(slot, node);
  /** Send through this instance, or once it is closed through the next one (dropped when none comes). */
  const sendVia =
    (send: Send): Send =>
    (out) => {
      if (!closed) return send(out);
      void next().then((n) => n?.send(out));
    };
  node.on('input', (raw: NodeMessageInFlow, nodeSend: Send, done: (err?: Error) => void) => {
    const msg = raw as unknown as DialerMsg;
    if (closed) {
      // a msg on its way when the flows stopped: the node's next instance takes it
      void next().then((n) => (n as (Node & { receive?(m: unknown): void }) | undefined)?.receive?.(raw));
      return done();
    }
    const send = sendVia(nodeSend);
    const ac = new LazyAbort();
    inflight.add(ac);
    const ctx: InputContext = {
      get signal() {
        return ac.signal; // made on first read: most handlers never read it
      },
      send: (out) => {
        if (out !== undefined && out !== null) send(out as NodeMessage);
      },
    };
    const finish = (out: Outputs) => {
      inflight.delete(ac);
      if (out !== undefined && out !== null) send(out as NodeMessage);
      done();
    };
    const fail = (err: unknown) => {
      inflight.delete(ac);
      if (closed && ac.aborted) done();
      else routeFailure(node, opts, err, msg, send, done);
    };
    try {
      const r = handler(msg, ctx);
      if (r && typeof (r as Promise<Outputs>).then === 'function') (r as Promise<Outputs>).then(finish, fail);
      else finish(r as Outputs);
    } catch (err) {
      fail(err);
    }
  });
  node.on('close', (removed: boolean, done: () => void) => {
    closed = true;
    removedNode = removed;
    retire(slot, node, removed);
    const abortAll = () => {
      for (const ac of inflight) ac.abort();
      inflight.clear();
    };
    if (removed) abortAll();
    else if (inflight.size) {
      // the work of live calls goes on; what is still running when no next instance came is aborted
      void next().then((n) => {
        if (!n) abortAll();
      });
    }
    done();
  });
}

/**
 * Something a node holds that must outlive the instance across a redeploy (a server and its live
 * sessions, a connection and the calls it follows, a database): `make()` it, or adopt the one the
 * node's previous instance parked when `settings` are the same (a changed node gets a new one, the old
 * one is released first: `ready`). On close: released when the node is removed, else parked for the
 * next instance (released after HANDOFF_LINGER_MS when none comes). `detach` runs when it is parked
 * (listeners of this instance off), `attach` for every instance that uses it.
 */
export function keepAcrossDeploy<T>(
  node: Node,
  settings: unknown,
  make: () => T,
  release: (value: T) => Promise<void> | void,
  hooks: { attach?(value: T): void; detach?(value: T): void } = {},
): { value: T; adopted: boolean; ready: Promise<void> } {
  const slot = `kept:${node.type}:${node.id}`;
  const key = handoffKey(settings);
  const got = adopt<T>(slot, key);
  const value = got.value !== undefined ? got.value : make();
  hooks.attach?.(value);
  node.on('close', (removed: boolean, done: () => void) => {
    try {
      hooks.detach?.(value);
    } catch (err) {
      node.warn(errorMessage(err));
    }
    if (!removed) {
      park(slot, key, value, () => release(value));
      return done();
    }
    Promise.resolve()
      .then(() => release(value))
      .catch((err: unknown) => node.warn(errorMessage(err)))
      .finally(() => done());
  });
  return { value, adopted: got.value !== undefined, ready: got.disposed };
}

/** Add a close handler that runs `release` (sockets, timers, subscriptions) and clears the status. */
export function onClose(node: Node, release: (removed: boolean) => Promise<void> | void): void {
  node.on('close', (removed: boolean, done: () => void) => {
    Promise.resolve()
      .then(() => release(removed))
      .catch((err: unknown) => node.warn(errorMessage(err)))
      .finally(() => {
        node.status({});
        done();
      });
  });
}

/** The config node with `id`, typed; undefined when not set or not deployed. */
export function getConfigNode<T>(RED: NodeAPI, id: string | undefined): T | undefined {
  if (!id) return undefined;
  return (RED.nodes.getNode(id) as unknown as T | null) ?? undefined;
}

type Catalogue = { [k: string]: string | Catalogue };

/** The English catalogue of node `ns` (nodes/<ns>/locales/en-US/<ns>.json), {} when absent. */
function englishCatalogue(ns: string): Catalogue {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const all = require(path.join(__dirname, '..', ns, 'locales', 'en-US', `${ns}.json`)) as Record<string, Catalogue>;
    return all[ns] ?? {};
  } catch {
    return {};
  }
}

/**
 * `RED._` for node `ns` (keys relative to it: `status.live`), memoised for texts without
 * variables (status texts are set every turn), with the node's English catalogue as the fallback
 * when the runtime has none loaded (a test helper). Without `ns`, keys are full (`ns.group.key`).
 */
export function translator(RED: NodeAPI, ns?: string): Translate {
  const en = ns ? englishCatalogue(ns) : {};
  return memoTranslate((key, vars) => {
    const full = ns ? `${ns}.${key}` : key;
    const s = RED._(full, vars as Record<string, string> | undefined);
    if (s && s !== full) return s;
    let v: string | Catalogue | undefined = en;
    for (const part of key.split('.')) v = typeof v === 'object' ? v[part] : undefined;
    if (typeof v !== 'string') return key;
    return v.replace(/__(\w+)__/g, (_m, name: string) => String(vars?.[name] ?? ''));
  });
}

/** The runtime's settings for the nodes (`settings.aiDialer`); {} under a stock Node-RED. */
export function dialerSettings(RED: NodeAPI): DialerSettings {
  const s = (RED.settings as unknown as { aiDialer?: DialerSettings } | undefined)?.aiDialer;
  return s && typeof s === 'object' ? s : {};
}

/** The environment for "from environment" modes: process.env with the runtime's settings laid over it. */
export function dialerEnv(RED: NodeAPI): NodeJS.ProcessEnv {
  return settingsEnv(dialerSettings(RED), process.env);
}

let watchingStops = false;

/**
 * What nodes parked for their next instance (keepAcrossDeploy) is released when the flows stop for
 * good (the runtime stops, or the flows are stopped), not by a Deploy.
 */
function releaseParkedOnStop(RED: NodeAPI): void {
  const events = (RED as unknown as { events?: NodeJS.EventEmitter }).events;
  if (watchingStops || !events || typeof events.on !== 'function') return;
  watchingStops = true;
  events.on('runtime-event', (e: { id?: string; payload?: { state?: string; deploy?: boolean } }) => {
    if (e?.id === 'runtime-state' && e.payload?.state === 'stop' && !e.payload.deploy) void disposeParked();
  });
}

const carrying = new WeakSet<object>();

/**
 * A live call's msg on its way between two nodes when a Deploy stops the flows goes on to the node's
 * next instance (src/calls/deploy-carry.ts); one whose node the Deploy removed ends its call politely
 * at once (goodbye + hangup, recorded) instead of leaving the caller in silence until the idle watchdog.
 */
function carryLiveCalls(RED: NodeAPI): void {
  const r = RED as unknown as Partial<CarryHost> & { nodes: NodeAPI['nodes'] };
  if (!r.hooks || !r.events || carrying.has(r.hooks)) return;
  carrying.add(r.hooks);
  carryAcrossDeploy(
    { hooks: r.hooks, events: r.events, getNode: (id) => RED.nodes.getNode(id) },
    {
      onCarried: (msg, nodeId) => {
        const call = (msg as DialerMsg).call;
        RED.log.info(
          `call ${call?.id ?? call?.sessionId}: its message went on to node ${nodeId} in the new flows (Deploy)`,
        );
      },
      onDropped: (msg, why) => {
        const call = (msg as DialerMsg).call;
        const s = call?.sessionId ? getSession(call.sessionId) : undefined;
        const reason = `its message was lost at a Deploy (${why})`;
        if (s && endSessionPolitely(s, reason)) RED.log.warn(`call ${call?.id ?? s.id}: ${reason}; ending it politely`);
      },
    },
  );
}

/** Register a node constructor with Node-RED (one cast here instead of one per node). */
export function registerNode<
  C extends NodeDef,
  Creds extends object = Record<string, never>,
  This extends Node<Creds> = Node<Creds>,
>(
  RED: NodeAPI,
  type: string,
  ctor: (this: This, config: C) => void,
  opts?: Parameters<NodeAPI['nodes']['registerType']>[2],
): void {
  releaseParkedOnStop(RED);
  carryLiveCalls(RED);
  RED.nodes.registerType(type, ctor as unknown as Parameters<NodeAPI['nodes']['registerType']>[1], opts);
}
