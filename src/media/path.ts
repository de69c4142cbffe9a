/**
 * The media setting of a FastAGI server (fastagi-in): `record` (RECORD FILE / STREAM FILE, the AGI
 * path), `stream` (every call's audio over AudioSocket) or `auto` (stream when the media path works,
 * else record, call by call). Owns the AudioSocket server and the per-call hand-off settings.
 */
import type { FastAgiSession } from '../agi/session';
import { DialerError, errorMessage } from '../util/errors';
import { parseNumber } from '../util/config';
import type { AudioSocketServer } from './audiosocket';
import { Endpointer, endpointerOptions, type EndpointerOptions } from './endpointer';
import { checkAdvertise, handOffMedia, sharedAudioSocketServer } from './handoff';
import { parseBargeIn, type BargeIn, type MediaEndpointer } from './session';
import { vadWasmPath } from './vad';

export type MediaMode = 'record' | 'stream' | 'auto';

export interface MediaConfig {
  /** record | stream | auto (empty: MEDIA_MODE, else record). */
  media?: string;
  /** on | off | after N s (empty: BARGE_IN, else on). */
  bargeIn?: string;
  /** End-of-turn silence, ms (default 600). */
  endSilence?: string;
  /** Shortest speech, ms (default 120). */
  minSpeech?: string;
  /** Longest utterance, s (default 30). */
  maxUtterance?: string;
  audioSocketHost?: string;
  audioSocketPort?: string;
  /** host:port Asterisk connects to (default: the address Asterisk reached FastAGI at, with our port). */
  audioSocketAddress?: string;
}

export function parseMediaMode(v: unknown): MediaMode {
  const s = String(v ?? '')
    .trim()
    .toLowerCase();
  if (s === '' || s === 'record') return 'record';
  if (s === 'stream' || s === 'auto') return s;
  throw new DialerError(
    'agi_bad_config',
    `media must be record, stream or auto, got ${JSON.stringify(s).slice(0, 40)}`,
  );
}

export interface MediaLog {
  warn(m: string): void;
}

export class MediaPath {
  readonly mode: MediaMode;
  readonly bargeIn: BargeIn;
  private server?: AudioSocketServer;
  private readonly host: string;
  private readonly port: number;
  private readonly address?: string;
  private readonly endpointerOpts: EndpointerOptions;
  /** Why stream mode is unavailable (auto fell back to record), when it is. */
  unavailable?: string;

  constructor(
    cfg: MediaConfig,
    private readonly log: MediaLog,
    env: NodeJS.ProcessEnv = process.env,
    /** Endpointer factory (tests pass a double). */
    private readonly makeEndpointer?: () => MediaEndpointer | Promise<MediaEndpointer>,
  ) {
    this.mode = parseMediaMode(cfg.media || env.MEDIA_MODE);
    this.bargeIn = parseBargeIn(cfg.bargeIn || env.BARGE_IN || 'on');
    this.host = (cfg.audioSocketHost || env.AUDIOSOCKET_HOST || env.AGI_HOST || '127.0.0.1').trim();
    const port = Number(cfg.audioSocketPort || env.AUDIOSOCKET_PORT || 0);
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw new DialerError('agi_bad_config', `AudioSocket port must be 0-65535, got ${JSON.stringify(port)}`);
    this.port = port;
    const address = (cfg.audioSocketAddress || env.AUDIOSOCKET_ADDRESS || '').trim();
    this.address = address ? checkAdvertise(address) : undefined;
    // node settings over STREAM_END_SILENCE_MS / STREAM_MIN_SPEECH_MS / STREAM_MAX_UTTERANCE_MS / STREAM_VAD_MODE
    const maxS = parseNumber(cfg.maxUtterance);
    this.endpointerOpts = endpointerOptions(
      {
        endSilenceMs: cfg.endSilence,
        minSpeechMs: cfg.minSpeech,
        maxUtteranceMs: maxS !== undefined && maxS > 0 ? Math.round(maxS * 1000) : undefined,
      },
      env,
    );
  }

  /** Start the AudioSocket server (stream / auto). In auto mode a failure only turns streaming off. */
  async start(): Promise<{ host: string; port: number } | undefined> {
    if (this.mode === 'record') return undefined;
    // the voice activity detector is an optional dependency: missing, stream mode says so (auto: record)
    if (!this.makeEndpointer) {
      try {
        vadWasmPath();
      } catch (err) {
        this.unavailable = errorMessage(err);
        if (this.mode === 'stream') throw err;
        this.log.warn(`${this.unavailable} Calls use record mode.`);
        return undefined;
      }
    }
    try {
      this.server = await sharedAudioSocketServer({ host: this.host, port: this.port, log: this.log });
      return this.server.address();
    } catch (err) {
      this.unavailable = `AudioSocket server could not listen on ${this.host}:${this.port}: ${errorMessage(err)}`;
      if (this.mode === 'stream') throw new DialerError('agi_bad_config', this.unavailable);
      this.log.warn(`${this.unavailable}; calls use record mode`);
      return undefined;
    }
  }

  /** Hand the call's media to AudioSocket; which mode the call runs in. Never throws. */
  async attach(session: FastAgiSession): Promise<'stream' | 'record'> {
    const server = this.server;
    if (!server) return 'record';
    try {
      const advertise = this.address ?? `${hostForUrl(session.localAddress || this.host)}:${server.address().port}`;
      await handOffMedia(session, {
        server,
        advertise,
        bargeIn: this.bargeIn,
        endpointer: this.makeEndpointer ?? (() => Endpointer.create(this.endpointerOpts)),
      });
      return 'stream';
    } catch (err) {
      if (session.hungUp) return 'record';
      this.log.warn(`call ${session.callId ?? session.id}: streaming unavailable, record mode (${errorMessage(err)})`);
      return 'record';
    }
  }

  async close(): Promise<void> {
    // the server is shared by address; a fixed-port one stays for the next deploy, an ephemeral one closes
    if (this.server && this.port === 0) await this.server.close();
    this.server = undefined;
  }
}

function hostForUrl(h: string): string {
  const v = h.replace(/^::ffff:/i, '');
  return v.includes(':') ? `[${v}]` : v;
}
