/**
 * Stream mode's hand-off: the answered call's AGI session runs `EXEC AudioSocket <uuid>,<host:port>`,
 * which makes Asterisk connect the channel's audio to our AudioSocket server; the conversation then
 * runs on that media while the EXEC waits. Ending the media (`endMedia`, or the caller hanging up)
 * makes AudioSocket() return, the EXEC gets its reply, and the AGI session is the control channel
 * again (transfer, hangup).
 *
 * The uuid is minted here (random, 122 bits), bound to the call and its AGI session (and, by default,
 * to the AGI peer's host), and accepted once: only the Asterisk that runs this call's admitted
 * session (the session passed the CALL_TOKEN check) learns it, so nobody else can attach to the call.
 */
import { randomUUID } from 'crypto';
import { performance } from 'perf_hooks';
import type { FastAgiSession } from '../agi/session';
import type { AgiReply } from '../agi/types';
import { StageError, errorMessage } from '../util/errors';
import { AudioSocketServer, type AudioSocketServerOptions } from './audiosocket';
import { getMedia, registerMedia } from './registry';
import { forgetLiveStt, liveSttFor } from './live-stt';
import { MediaSession, type BargeIn, type MediaEndpointer } from './session';
import { simTextFor } from './sim-text';
import { within } from '../util/within';

export interface MediaHandOffOptions {
  server: AudioSocketServer;
  /** `host:port` Asterisk connects to (the server's own address unless it is reached another way). */
  advertise: string;
  endpointer: () => MediaEndpointer | Promise<MediaEndpointer>;
  bargeIn?: BargeIn;
  /** Time Asterisk has to connect after the EXEC, ms (default 3000; Asterisk gives up after 2000). */
  connectTimeoutMs?: number;
  /** Media must come from the AGI peer's host (default true). */
  sameHost?: boolean;
}

/** The running EXEC AudioSocket of a session (its reply = control is back). */
const execs = new WeakMap<MediaSession, Promise<AgiReply | undefined>>();

/** `host:port`, checked: it goes into a dialplan application argument. */
export function checkAdvertise(v: string): string {
  const s = String(v ?? '').trim();
  if (!/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]{1,253}):\d{1,5}$/.test(s))
    throw new StageError(
      'agi',
      'invalid_input',
      `AudioSocket address must be host:port, got ${JSON.stringify(s).slice(0, 80)}`,
    );
  return s;
}

export async function handOffMedia(session: FastAgiSession, o: MediaHandOffOptions): Promise<MediaSession> {
  const existing = getMedia(session.id);
  if (existing) return existing;
  const uuid = randomUUID();
  const advertise = checkAdvertise(o.advertise);
  const t0 = performance.now();
  const attached = o.server.expect(
    uuid,
    {
      callId: session.callId,
      sessionId: session.id,
      host: o.sameHost === false ? undefined : session.remoteAddress || undefined,
    },
    o.connectTimeoutMs ?? 3000,
  );
  // AudioSocket() runs until the media ends: no command timeout (the session's HANGUP handling still applies)
  const exec = session.run('EXEC', ['AudioSocket', `${uuid},${advertise}`], 0);
  // the EXEC coming back before the connection means Asterisk could not start AudioSocket
  const early = exec.then(
    (r) => {
      o.server.cancel(uuid, `AudioSocket ended before connecting (${r.raw})`);
      return r;
    },
    (err: Error) => {
      o.server.cancel(uuid, `EXEC AudioSocket failed: ${errorMessage(err)}`);
      throw err;
    },
  );
  early.catch(() => undefined);
  let conn;
  try {
    conn = await attached;
  } catch (err) {
    await early.catch(() => undefined);
    throw new StageError('agi', 'network', `media hand-off failed: ${errorMessage(err)}`, { cause: err });
  }
  let endpointer: MediaEndpointer;
  try {
    endpointer = await o.endpointer();
  } catch (err) {
    conn.hangup();
    throw new StageError('agi', 'not_installed', `no endpointer: ${errorMessage(err)}`, { cause: err });
  }
  const media = new MediaSession(conn, {
    endpointer,
    bargeIn: o.bargeIn,
    simText: simTextFor,
    liveStt: (want) => liveSttFor(session.id, want),
  });
  media.once('close', () => forgetLiveStt(session.id));
  media.handOffMs = Math.round(performance.now() - t0);
  execs.set(
    media,
    exec.then(
      (r) => r,
      () => undefined,
    ),
  );
  registerMedia(session.id, media);
  return media;
}

/**
 * End a session's media (if any) and wait until the AGI session has control again (the EXEC's reply,
 * at most `timeoutMs`). Safe to call when there is no media.
 */
export async function endMedia(sessionId: string | undefined, timeoutMs = 3000): Promise<void> {
  const m = getMedia(sessionId);
  if (!m) return;
  m.end();
  const exec = execs.get(m);
  if (!exec) return;
  await within(exec, timeoutMs);
}

/** Shared AudioSocket servers of the process, one per listen address. */
const servers = new Map<string, Promise<AudioSocketServer>>();

export function sharedAudioSocketServer(opts: AudioSocketServerOptions): Promise<AudioSocketServer> {
  const key = `${opts.host ?? '127.0.0.1'}:${opts.port ?? 0}`;
  let p = opts.port ? servers.get(key) : undefined;
  if (!p) {
    const srv = new AudioSocketServer(opts);
    p = srv.listen().then(() => srv);
    if (opts.port) servers.set(key, p);
    p.catch(() => servers.delete(key));
  }
  return p;
}
