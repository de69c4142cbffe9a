/**
 * fastagi-in: the FastAGI server. One msg per AGI session on output 1 (the call's identity, its
 * record created or moved to in_progress through the call-record service), one on output 2 when
 * the session ends; a supervisor's hangup on the control bus ends that call's sessions.
 */
import { AgiServer, resolveServerOptions, type Refusal } from '../agi/server';
import { callIdOfEnv } from '../agi/refusals';
import { recordRefusal } from '../campaign/refusals';
import { readCallAndToken, type AgiCall } from '../agi/call';
import { envArgs, parseNetworkScript } from '../agi/protocol';
import { registerSession, sessionsByCallId } from '../agi/registry';
import type { FastAgiSession } from '../agi/session';
import { admitSession, type CallRecords } from '../calls/records';
import { endPolitelyAndWait, endSessionPolitely, forgetCall } from '../calls/goodbye';
import { controlBus, type CallControl } from '../events/control-bus';
import { errorMessage } from '../util/errors';
import { parseDurationMs } from '../util/config';
import type { Translate } from '../util/i18n';
import type { DialerMsg, MsgCall } from '../types/msg';
import { status, statusOf, throttled, type NodeView } from './view';
import { MediaPath, type MediaConfig } from '../media/path';
import { endMedia } from '../media/handoff';
import { getMedia } from '../media/registry';
import type { MediaEndpointer } from '../media/session';

export interface FastAgiInConfig extends MediaConfig {
  host?: string;
  port?: string;
  allow?: string;
  maxSessions?: string;
  envTimeout?: string;
  commandTimeout?: string;
  answer?: boolean;
  secret?: string;
}

export interface FastAgiInHooks {
  /** Send `msg` on output `port` (0: session started, 1: session ended). */
  send(port: 0 | 1, msg: DialerMsg): void;
  /** The server listens (the node exposes the port). */
  listening?(address: { host: string; port: number }): void;
  /** Stream mode's endpointer (tests pass a double; default: the VAD endpointer). */
  endpointer?: () => MediaEndpointer | Promise<MediaEndpointer>;
}

export class FastAgiInController {
  private server?: AgiServer;
  private address?: { host: string; port: number };
  private media?: MediaPath;
  private where = '';
  private active = 0;
  /** AGI_IDLE_TIMEOUT (default 60 s; 0: off): see watchIdle. */
  private idleTimeoutMs = 60_000;
  private readonly refresh = throttled(() => this.showStatus());
  private readonly onControl = (c: CallControl): void => this.control(c);

  constructor(
    private readonly cfg: FastAgiInConfig,
    private view: NodeView,
    private readonly t: Translate,
    private hooks: FastAgiInHooks,
    private records?: CallRecords,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    let opts: ReturnType<typeof resolveServerOptions>;
    try {
      opts = resolveServerOptions(
        { host: cfg.host, port: cfg.port, allow: cfg.allow, secret: cfg.secret, maxSessions: cfg.maxSessions },
        env,
      );
      this.media = new MediaPath(
        { ...cfg, audioSocketHost: cfg.audioSocketHost || cfg.host || undefined },
        { warn: (m) => view.warn(m) },
        env,
        hooks.endpointer,
      );
    } catch (err) {
      view.status(status.error(t('status.badConfig')));
      view.error(errorMessage(err));
      return;
    }
    const idle = (env.AGI_IDLE_TIMEOUT ?? '').trim();
    this.idleTimeoutMs = idle === '0' ? 0 : parseDurationMs(idle, 60_000);
    this.server = new AgiServer({
      ...opts,
      envTimeoutMs: parseDurationMs(cfg.envTimeout, 5000),
      commandTimeoutMs: parseDurationMs(cfg.commandTimeout, 5000),
      log: { info: (m) => view.log(m), warn: (m) => view.warn(m) },
    });
    this.server.on('session', (s: FastAgiSession) => void this.onSession(s));
    // a refused session is not a conversation: its call is recorded failed with the reason, and retried
    // (only a refusal for capacity: a session refused for what it sent (malformed, wrong token, closed
    // call, driven elsewhere, unknown call) may be an impostor and must not change the call it named)
    this.server.on('refused', (r: Refusal) => {
      if (r.reason === 'too_many_sessions') void this.refused(r.callId, r.reason);
    });
    controlBus.on('call', this.onControl);
  }

  /** Start listening (a no-op after a configuration error). */
  async listen(): Promise<void> {
    if (!this.server) return;
    try {
      await this.media?.start();
      const a = await this.server.listen();
      this.address = a;
      this.where = `${a.host}:${a.port}`;
      // one line in the log: where Asterisk's AGI() must point (the port may have been chosen: 0)
      this.view.log(this.t('log.listening', { where: this.where }));
      this.showStatus();
      this.hooks.listening?.(a);
    } catch (err) {
      this.view.status(status.error(this.t('status.listenFailed')));
      this.view.error(errorMessage(err));
    }
  }

  /**
   * A redeploy: the node's new instance takes over this server. Live sessions go on (the conversation
   * nodes find them by msg.call.sessionId); their end, and new sessions, leave through the new instance.
   */
  attach(view: NodeView, hooks: FastAgiInHooks, records?: CallRecords): void {
    this.view = view;
    this.hooks = hooks;
    this.records = records;
    if (this.address) {
      this.showStatus();
      hooks.listening?.(this.address);
    }
  }

  /**
   * Stop the server. Calls still in conversation (the node was removed or changed by a Deploy) are
   * ended politely first, goodbye + hangup, and calls already ending so are let finish, for up to
   * POLITE_CLOSE_MS (endPolitelyAndWait).
   */
  async close(): Promise<void> {
    this.refresh.cancel();
    controlBus.off('call', this.onControl);
    const s = this.server;
    this.server = undefined;
    if (!s) {
      await this.media?.close();
      return;
    }
    void s.stopAccepting(); // the port is free at once
    // and calls already saying their goodbye (a shutdown drain ended them; the drain returned as their
    // flows ended, before the goodbye was heard) are waited for too, not cut
    await endPolitelyAndWait(s.liveSessions(), 'the FastAGI node was redeployed');
    await s.close();
    await this.media?.close();
  }

  /** The AudioSocket address when stream mode is on (tests, the runtime banner). */
  get mediaMode(): string {
    return this.media?.mode ?? 'record';
  }

  /**
   * The idle watchdog: a call whose flow sent no AGI command for AGI_IDLE_TIMEOUT (a msg lost between
   * nodes, e.g. by Node-RED at the instant a Deploy stops the flows) is ended politely, goodbye + hangup,
   * and recorded, instead of holding the channel and its contact forever. In stream mode the call sits
   * in EXEC AudioSocket, so the clock is the media's: the flow's last listen, playback or read of it.
   */
  private watchIdle(s: FastAgiSession): void {
    const idleMs = this.idleTimeoutMs;
    if (idleMs <= 0) return;
    const timer = setInterval(
      () => {
        if (s.closed || s.ending) return clearInterval(timer);
        // stream mode: the EXEC AudioSocket is in flight the whole call; the media knows when the flow last asked
        const media = getMedia(s.id);
        if ((media ? media.idleMs : s.idleMs) < idleMs) return;
        clearInterval(timer);
        const why = `the flow sent no command for ${Math.round(idleMs / 1000)} s`;
        if (endSessionPolitely(s, why)) this.view.warn(`call ${s.callId ?? s.id}: ${why}; ending it politely`);
      },
      Math.max(50, Math.min(5000, Math.floor(idleMs / 4))),
    );
    timer.unref();
    s.once('close', () => clearInterval(timer));
  }

  /** Record a refused / failed session on its call (in memory at least, when no store is set). */
  private refused(callId: number | undefined, reason: string): Promise<unknown> {
    return this.records ? this.records.refused(callId, reason) : recordRefusal(undefined, { callId, reason });
  }

  private showStatus(): void {
    this.view.status(
      statusOf(
        'green',
        this.active > 0 ? 'dot' : 'ring',
        this.t('status.listening', { where: this.where, active: this.active }),
      ),
    );
  }

  private async onSession(s: FastAgiSession): Promise<void> {
    let call: AgiCall | undefined;
    try {
      // The call's variables and its token in one round trip. A session drives only a call it was given
      // (src/agi/call-token.ts): refused ones never reach the flow.
      const read = await readCallAndToken(s);
      call = read.call;
      const token = read.token;
      const verdict = await admitSession(this.records, s.id, call, token);
      if (!verdict.ok) {
        this.server?.refuseSession(s, verdict.reason, verdict.message);
        return;
      }
      if (verdict.warning) this.view.warn(verdict.warning);
      if (verdict.created) call.id = verdict.callId as number;
    } catch (err) {
      // Plain English, like every error message in the package: Catch nodes and logs get the cause.
      this.view.error(`AGI session could not start: ${errorMessage(err)}`, { call: call ?? { sessionId: s.id } });
      s.close();
      return;
    }
    this.active++;
    this.refresh();
    const ended = (): void => {
      if (call?.id !== undefined) forgetCall(call.id);
      this.active--;
      this.refresh();
      const reason = s.callerHungUp ? 'caller_hangup' : s.hangupRequested ? 'agi_hangup' : 'closed';
      this.hooks.send(1, {
        topic: 'agi_ended',
        payload: reason,
        call: (call as MsgCall | undefined) ?? { sessionId: s.id },
        agi: { sessionId: s.id, reason },
      });
    };
    if (s.closed) return ended(); // the caller left while the session was admitted
    s.once('close', ended);
    try {
      if (call.id !== undefined) {
        s.callId = String(call.id);
        registerSession(s); // re-index by call id
      }
      if (this.cfg.answer) await s.answer();
      // stream mode: the call's audio goes to AudioSocket now (record mode when that is not possible)
      (call as MsgCall).media = this.media ? await this.media.attach(s) : 'record';
      this.watchIdle(s);
      const script = parseNetworkScript(s.env.network_script);
      this.hooks.send(0, {
        topic: 'agi_session',
        payload: { script: script.path, args: envArgs(s.env) },
        call: call as MsgCall,
        agi: { sessionId: s.id, env: { ...s.env }, script: script.path, args: envArgs(s.env) },
      });
    } catch (err) {
      this.view.error(`AGI session could not start: ${errorMessage(err)}`, { call });
      void this.refused(typeof call.id === 'number' ? call.id : callIdOfEnv(s.env), 'session_failed');
      s.close();
    }
  }

  /** A supervisor's "hangup" for a call (MQTT ai-dialer/v1/calls/<id>/control, checked by the bus node). */
  private control(c: CallControl): void {
    if (c.action !== 'hangup') return;
    for (const sess of sessionsByCallId(String(c.callId))) {
      if (sess.hungUp) continue;
      this.view.log(this.t('log.supervisorHangup', { id: String(c.callId) }));
      endMedia(sess.id)
        .then(() => sess.hangup())
        .then(
          () => sess.close(),
          () => sess.close(),
        );
    }
  }
}
