/**
 * The simulator's AGI side: connects to a FastAGI server the way Asterisk 22 does when a channel
 * runs `AGI(agi://host:port/script,args...)`, sends the environment block, then executes commands
 * one at a time and answers with Asterisk's exact reply lines (Asterisk facts in docs/contributing/simulator.md). The callee is a
 * Persona: what it says to each RECORD FILE, when it presses a key or hangs up.
 *
 * Differences from a real Asterisk are listed in docs/contributing/simulator.md ("FastAGI side").
 */
import net from 'net';
import fs from 'fs';
import path from 'path';
import { encodeWav, parseWav, toAsteriskWav, wavHeaderInfo } from '../audio/wav';
import { formatEnv, parseArgs } from '../agi/protocol';
import { utteranceAt, type Persona, type Utterance } from './persona';
import { runAudioSocketCallee, type AudioSocketCalleeResult } from './audiosocket-client';
import { isUuid } from '../media/audiosocket';
import { localFiles } from '../util/local-file';
import { FRAME_MS, FRAME_SAMPLES, SIM_RATE, isSilentFrame, utteranceAudio, type SimSpeech } from './audio-utterance';

export interface AgiCallOptions {
  host: string;
  port: number;
  /** Path after host:port/ in the AGI URL (agi_network_script), may carry `?query`. */
  script?: string;
  /** AGI() arguments after the URL: agi_arg_1... */
  args?: string[];
  /** Channel name, e.g. `Local/+12125550101@callees-00000006;1` or `PJSIP/trunk-00000001`. */
  channel: string;
  uniqueid: string;
  callerId?: string;
  callerIdName?: string;
  context?: string;
  extension?: string;
  priority?: number;
  /** Channel variables answered by GET VARIABLE (CALL_ID, CONTACT_PHONE, CAMPAIGN_ID, AMDSTATUS...). */
  variables: Record<string, string>;
  persona: Persona;
  /** Time scale: 10 plays a 3 s file in 300 ms (default 1). */
  speed?: number;
  /** Base directory for relative RECORD FILE paths (Asterisk's spool/sounds dir). */
  recordingsRoot?: string;
  /** Base directory for relative STREAM FILE names (Asterisk's sounds dir); none: relative names do not exist. */
  soundsDir?: string;
  /** Abort = the far end hung up (ARI DELETE /channels, or the callee). */
  signal?: AbortSignal;
  /** Audio of utterances: cheap synthetic signal (default) or espeak-ng. */
  speech?: SimSpeech;
  /** After the channel is gone, how long to wait for the server to close before dropping it, real ms (default 10000). */
  lingerMs?: number;
  /** Connect timeout, ms (Asterisk: 2000). */
  connectTimeoutMs?: number;
  /** Keep a transcript of commands and replies (default true; at most `transcriptMax` entries). */
  transcript?: boolean;
  transcriptMax?: number;
  /** Every command, reply and event line as it happens (journals, tests). */
  onLine?: (dir: AgiTranscriptEntry['dir'], line: string) => void;
}

export interface AgiTranscriptEntry {
  /** `cmd`: a command from the server; `reply`: our reply line; `event`: an unsolicited line (HANGUP). */
  dir: 'cmd' | 'reply' | 'event';
  line: string;
  /** ms since connect (real time). */
  atMs: number;
}

export interface AgiRecordTiming {
  cmdAtMs: number;
  speechEndAtMs: number;
  dueAtMs: number;
}

export interface AgiCallResult {
  /** Why the AGI ended: the server closed its side (normal), could not connect, or we gave up waiting. */
  endedBy: 'server_closed' | 'connect_failed' | 'linger_timeout' | 'socket_error';
  /** Whether the channel was hung up, and by whom (`caller`: persona/far end; `agi`: the HANGUP command). */
  hungUp: boolean;
  hungUpBy?: 'caller' | 'agi';
  error?: string;
  commands: number;
  transcript: AgiTranscriptEntry[];
  /** Files written by RECORD FILE (with extension). */
  recordings: string[];
  /**
   * Each RECORD FILE that ran to its end, in order: when the command arrived, when the callee's speech
   * ended and when Asterisk's silence detection (or the maximum, or the key) ends it, all in real ms
   * since connect: the reference points for "end of speech to the answer" (bench/calls).
   */
  records: AgiRecordTiming[];
  /** Channel variables at the end (after SET VARIABLE). */
  variables: Record<string, string>;
  /** Where the dialplan continues after the AGI, when the server changed it (SET CONTEXT / EXTENSION / PRIORITY). */
  continueAt?: { context?: string; extension?: string; priority?: string };
  durationMs: number;
  /** Each AudioSocket() the call ran (stream mode): what the callee heard and said, timings. */
  audioSocket: AudioSocketCalleeResult[];
  /** Each Dial() run through EXEC (an attended transfer): whom, the whisper the agent heard, how it ended. */
  dials: AgiDialResult[];
}

export interface AgiDialResult {
  /** Dial's first argument, e.g. `Local/sales@ai-dialer-transfer`. */
  target: string;
  timeoutSeconds: number;
  /** The whisper file the agent heard before the bridge (AI_WHISPER, path without extension) and its length. */
  whisper?: { path: string; durationMs: number };
  dialStatus: string;
  /** Real ms from the answer to the bridge (the whisper's length), and how long the bridge lasted. */
  whisperAtMs?: number;
  bridgedAtMs?: number;
  bridgedMs?: number;
}

export const REPLY_DEAD = '511 Command Not Permitted on a dead channel or intercept routine';
export const REPLY_UNKNOWN = '510 Invalid or unknown command';

interface CommandSpec {
  words: string[];
  min: number;
  max: number;
  usage: string;
}

/** The commands the simulator implements, with Asterisk's argument counts (after the verb) and usage. */
const COMMANDS: CommandSpec[] = [
  { words: ['ANSWER'], min: 0, max: 0, usage: 'Usage: ANSWER' },
  { words: ['HANGUP'], min: 0, max: 1, usage: 'Usage: HANGUP [<channelname>]' },
  { words: ['NOOP'], min: 0, max: 99, usage: 'Usage: NOOP' },
  {
    words: ['STREAM', 'FILE'],
    min: 2,
    max: 3,
    usage: 'Usage: STREAM FILE <filename> <escape_digits> [<sample offset>]',
  },
  {
    words: ['RECORD', 'FILE'],
    min: 4,
    max: 7,
    usage: 'Usage: RECORD FILE <filename> <format> <escape_digits> <timeout> [<offset samples>] [BEEP] [<s=silence>]',
  },
  {
    words: ['GET', 'FULL', 'VARIABLE'],
    min: 1,
    max: 2,
    usage: 'Usage: GET FULL VARIABLE <expression> [<channelname>]',
  },
  { words: ['GET', 'VARIABLE'], min: 1, max: 1, usage: 'Usage: GET VARIABLE <variablename>' },
  { words: ['SET', 'VARIABLE'], min: 2, max: 2, usage: 'Usage: SET VARIABLE <variablename> <value>' },
  { words: ['EXEC'], min: 1, max: 99, usage: 'Usage: EXEC <application> <options>' },
  { words: ['WAIT', 'FOR', 'DIGIT'], min: 1, max: 1, usage: 'Usage: WAIT FOR DIGIT <timeout>' },
  { words: ['VERBOSE'], min: 1, max: 2, usage: 'Usage: VERBOSE <message> <level>' },
  { words: ['SET', 'CONTEXT'], min: 1, max: 1, usage: 'Usage: SET CONTEXT <desired context>' },
  { words: ['SET', 'EXTENSION'], min: 1, max: 1, usage: 'Usage: SET EXTENSION <new extension>' },
  { words: ['SET', 'PRIORITY'], min: 1, max: 1, usage: 'Usage: SET PRIORITY <priority>' },
];

function usageReply(spec: CommandSpec): string {
  return `520-Invalid command syntax.  Proper usage follows:\n${spec.usage}\n520 End of proper usage.`;
}

/** Match the verb words (case-insensitive) at the start of the parsed argument list. */
function matchCommand(argv: string[]): CommandSpec | undefined {
  for (const spec of COMMANDS) {
    if (argv.length < spec.words.length) continue;
    let ok = true;
    for (let i = 0; i < spec.words.length; i++) {
      if (argv[i].toUpperCase() !== spec.words[i]) {
        ok = false;
        break;
      }
    }
    if (ok) return spec;
  }
  return undefined;
}

/** The `result=` a silence-ended RECORD FILE reports: nonzero, in the range seen on Asterisk 22. */
function silenceResult(seed: number): number {
  return 1785 + (Math.abs(Math.imul(seed + 1, 2654435761)) % 5205);
}

/** An operation the caller's hangup can cut short (playback, recording, a wait). */
interface Interruptible {
  /** Cuts the op short and writes its reply (resolves once written). */
  interrupt(): void | Promise<void>;
}

class SimAgiCall {
  private socket!: net.Socket;
  private readonly t0 = Date.now();
  private readonly speed: number;
  private readonly vars: Record<string, string>;
  private continueAt?: { context?: string; extension?: string; priority?: string };
  private readonly transcript: AgiTranscriptEntry[] = [];
  private readonly recordings: string[] = [];
  private readonly recordTimings: AgiRecordTiming[] = [];
  private readonly audioSockets: AudioSocketCalleeResult[] = [];
  private readonly dials: AgiDialResult[] = [];
  private up = true;
  private hangupSent = false;
  private hungUpBy?: 'caller' | 'agi';
  private commands = 0;
  private playbacks = 0;
  private records = 0;
  private buf = '';
  private lines: string[] = [];
  private busy = false;
  private current?: Interruptible;
  private timers = new Set<NodeJS.Timeout>();
  private lingerTimer?: NodeJS.Timeout;
  private finished = false;
  private resolve!: (r: AgiCallResult) => void;
  readonly done: Promise<AgiCallResult>;

  constructor(private readonly o: AgiCallOptions) {
    this.speed = o.speed && o.speed > 0 ? o.speed : 1;
    this.vars = { ...o.variables };
    this.done = new Promise((r) => (this.resolve = r));
  }

  /** Scale a simulated duration to real ms. */
  private real(ms: number): number {
    return Math.max(0, ms / this.speed);
  }

  private later(fn: () => void, realMs: number): NodeJS.Timeout {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, realMs);
    this.timers.add(t);
    return t;
  }

  private cancel(t: NodeJS.Timeout | undefined): void {
    if (!t) return;
    clearTimeout(t);
    this.timers.delete(t);
  }

  private log(dir: AgiTranscriptEntry['dir'], line: string): void {
    this.o.onLine?.(dir, line);
    if (this.o.transcript === false) return;
    if (this.transcript.length >= (this.o.transcriptMax ?? 2000)) return;
    this.transcript.push({ dir, line, atMs: Date.now() - this.t0 });
  }

  start(): Promise<AgiCallResult> {
    const o = this.o;
    const socket = net.connect({ host: o.host, port: o.port });
    this.socket = socket;
    socket.setNoDelay(true);
    socket.setEncoding('utf8');
    const connectTimer = setTimeout(() => {
      socket.destroy();
      this.finish('connect_failed', `could not connect to ${o.host}:${o.port} within ${o.connectTimeoutMs ?? 2000} ms`);
    }, o.connectTimeoutMs ?? 2000);
    let connected = false;
    socket.once('connect', () => {
      connected = true;
      clearTimeout(connectTimer);
      socket.write(this.envBlock());
      if (o.persona.hangupAfterMs !== undefined)
        this.later(() => this.hangupNow('caller'), this.real(o.persona.hangupAfterMs));
    });
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', (err) => {
      clearTimeout(connectTimer);
      this.finish(connected ? 'socket_error' : 'connect_failed', err.message);
    });
    socket.on('close', () => {
      clearTimeout(connectTimer);
      this.finish(connected ? 'server_closed' : 'connect_failed', connected ? undefined : 'connection closed');
    });
    if (o.signal) {
      if (o.signal.aborted) this.later(() => this.hangupNow('caller'), 0);
      else o.signal.addEventListener('abort', () => this.hangupNow('caller'), { once: true });
    }
    return this.done;
  }

  private envBlock(): string {
    const o = this.o;
    const script = o.script ?? '';
    const tech = o.channel.split('/', 1)[0] || 'Local';
    const pairs: Array<[string, string]> = [
      ['network', 'yes'],
      ['network_script', script],
      ['request', `agi://${o.host}:${o.port}/${script}`],
      ['channel', o.channel],
      ['language', 'en'],
      ['type', tech],
      ['uniqueid', o.uniqueid],
      ['version', '22.10.1'],
      ['callerid', o.callerId || 'unknown'],
      ['calleridname', o.callerIdName || 'unknown'],
      ['callingpres', '0'],
      ['callingani2', '0'],
      ['callington', '0'],
      ['callingtns', '0'],
      ['dnid', 'unknown'],
      ['rdnis', 'unknown'],
      ['context', o.context ?? 'ai-dialer'],
      ['extension', o.extension ?? 's'],
      ['priority', String(o.priority ?? 1)],
      ['enhanced', '0.0'],
      ['accountcode', ''],
      ['threadid', String(140000000000000 + (Number(o.uniqueid.replace(/\D/g, '').slice(-9)) || 1))],
    ];
    (o.args ?? []).forEach((a, i) => pairs.push([`arg_${i + 1}`, a]));
    return formatEnv(pairs.map(([k, v]) => [k, oneLine(String(v))] as [string, string]));
  }

  private write(line: string, dir: AgiTranscriptEntry['dir'] = 'reply'): void {
    if (this.finished || this.socket.destroyed) return;
    this.log(dir, line);
    this.socket.write(line + '\n');
  }

  private onData(chunk: string): void {
    const buf = this.buf + chunk;
    const parts = buf.split('\n');
    this.buf = parts.pop() ?? '';
    for (const p of parts) this.lines.push(p.endsWith('\r') ? p.slice(0, -1) : p);
    // Asterisk reads at most AGI_BUF_LEN (2048) per command; a longer unterminated line is garbage.
    if (this.buf.length > 2048) {
      this.lines.push(this.buf);
      this.buf = '';
    }
    this.pump();
  }

  /** Execute queued commands strictly one at a time, like Asterisk's AGI loop. */
  private pump(): void {
    while (!this.busy && this.lines.length > 0 && !this.finished) {
      const line = this.lines.shift() as string;
      if (line.trim() === '') continue;
      this.busy = true;
      this.commands++;
      this.log('cmd', line);
      this.execute(line)
        .catch((err: Error) => this.write(`200 result=-1 (${err.message.replace(/[()\n]/g, ' ').slice(0, 60)})`))
        .finally(() => {
          this.busy = false;
          this.current = undefined;
          this.pump();
        });
      return;
    }
  }

  /** The channel goes away: cut the current op short (its reply first), then the `HANGUP` line. */
  private hangupNow(by: 'caller' | 'agi'): void {
    if (!this.up || this.finished) return;
    this.up = false;
    this.hungUpBy = by;
    const cur = this.current;
    const replied = cur ? cur.interrupt() : undefined;
    // Asterisk answers the interrupted command first, then sends the HANGUP line.
    if (replied) void replied.then(() => this.sendHangupLine());
    else this.sendHangupLine();
  }

  private sendHangupLine(): void {
    if (this.hangupSent) return;
    this.hangupSent = true;
    this.write('HANGUP', 'event');
    const linger = this.o.lingerMs ?? 10000;
    this.lingerTimer = setTimeout(() => {
      this.socket.destroy();
      this.finish('linger_timeout', `server did not close within ${linger} ms of the hangup`);
    }, linger);
  }

  private finish(endedBy: AgiCallResult['endedBy'], error?: string): void {
    if (this.finished) return;
    this.finished = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    if (this.lingerTimer) clearTimeout(this.lingerTimer);
    if (this.up) {
      // The script ended (or the link failed) with the channel still up: the dialplan continues.
      this.hungUpBy = undefined;
    }
    void this.current?.interrupt();
    this.resolve({
      endedBy,
      hungUp: !this.up,
      hungUpBy: this.hungUpBy,
      error,
      commands: this.commands,
      transcript: this.transcript,
      recordings: this.recordings,
      records: this.recordTimings,
      variables: this.vars,
      continueAt: this.continueAt,
      durationMs: Date.now() - this.t0,
      audioSocket: this.audioSockets,
      dials: this.dials,
    });
  }

  // ------------------------------------------------------------------ commands

  private async execute(line: string): Promise<void> {
    const argv = parseArgs(line);
    const spec = matchCommand(argv);
    if (!spec) return this.write(REPLY_UNKNOWN);
    const args = argv.slice(spec.words.length);
    if (args.length < spec.min || args.length > spec.max) return this.write(usageReply(spec));
    const verb = spec.words.join(' ');
    // Asterisk still answers GET VARIABLE on a hung-up channel (seen: DIALSTATUS after the caller left a Dial)
    if (!this.up && verb !== 'GET VARIABLE' && verb !== 'GET FULL VARIABLE') return this.write(REPLY_DEAD);
    switch (verb) {
      case 'ANSWER':
      case 'NOOP':
        return this.write('200 result=0');
      case 'HANGUP':
        this.write('200 result=1');
        this.hangupNow('agi');
        return;
      case 'VERBOSE':
        return this.write('200 result=1');
      case 'GET VARIABLE': {
        const v = this.vars[args[0]];
        return this.write(v === undefined ? '200 result=0' : `200 result=1 (${v})`);
      }
      case 'GET FULL VARIABLE': {
        const v = args[0].replace(/\$\{([A-Za-z0-9_]+)\}/g, (_m, n: string) => this.vars[n] ?? '');
        return this.write(`200 result=1 (${v})`);
      }
      case 'SET VARIABLE':
        this.vars[args[0]] = oneLine(args[1]);
        return this.write('200 result=1');
      case 'SET CONTEXT':
        this.continueAt = { ...this.continueAt, context: args[0] };
        return this.write('200 result=0');
      case 'SET EXTENSION':
        this.continueAt = { ...this.continueAt, extension: args[0] };
        return this.write('200 result=0');
      case 'SET PRIORITY':
        this.continueAt = { ...this.continueAt, priority: args[0] };
        return this.write('200 result=0');
      case 'EXEC':
        return this.exec(args[0], args.slice(1).join(','));
      case 'WAIT FOR DIGIT':
        return this.waitForDigit(Number(args[0]));
      case 'STREAM FILE':
        return this.streamFile(args[0], args[1], args[2]);
      case 'RECORD FILE':
        return this.recordFile(args);
      default:
        return this.write(REPLY_UNKNOWN);
    }
  }

  /** Wait `simMs` of simulated time unless the caller hangs up first; resolves true if it ran out. */
  private wait(simMs: number, onHangup: (elapsedRealMs: number) => void | Promise<void>): Promise<boolean> {
    return new Promise((resolve) => {
      const began = Date.now();
      const timer = this.later(() => {
        this.current = undefined;
        resolve(true);
      }, this.real(simMs));
      this.current = {
        interrupt: () => {
          this.cancel(timer);
          this.current = undefined;
          const r = Promise.resolve(onHangup(Date.now() - began));
          // The command completes only once its reply is written.
          void r.then(() => resolve(false));
          return r;
        },
      };
    });
  }

  private async exec(app: string, data: string): Promise<void> {
    switch (app.toLowerCase()) {
      case 'noop':
      case 'verbose':
      case 'set':
      case 'log':
        return this.write('200 result=0');
      case 'wait': {
        const s = Number(data);
        const ran = await this.wait(Number.isFinite(s) && s > 0 ? s * 1000 : 0, () => this.write('200 result=-1'));
        if (ran) this.write('200 result=0');
        return;
      }
      case 'hangup':
        this.write('200 result=-1');
        this.hangupNow('agi');
        return;
      case 'waitforsilence':
        return this.waitForSilence(data);
      case 'audiosocket':
        return this.audioSocket(data);
      case 'dial':
        return this.dial(data);
      default:
        // Application not found.
        return this.write('200 result=-2');
    }
  }

  /**
   * WaitForSilence(ms[,iterations[,timeout s]]): the callee's line is silent except for an answering
   * machine's greeting and beep (persona.voicemail, counted from the AGI's start). Sets WAITSTATUS to
   * SILENCE or TIMEOUT and answers `200 result=0`, or `200 result=-1` when the callee hangs up.
   */
  private async waitForSilence(data: string): Promise<void> {
    const [msArg, itArg, toArg] = data.split(',').map((x) => Number(x.trim()));
    const ms = Number.isFinite(msArg) && msArg > 0 ? msArg : 1000;
    const iterations = Number.isFinite(itArg) && itArg > 0 ? itArg : 1;
    const timeoutMs = Number.isFinite(toArg) && toArg > 0 ? toArg * 1000 : Infinity;
    const vm = this.o.persona.voicemail;
    const noiseEnds = vm ? (vm.greetingMs ?? 6000) + (vm.beepMs ?? 500) : 0;
    const elapsedSim = (Date.now() - this.t0) * this.speed;
    const silenceAt = Math.max(0, noiseEnds - elapsedSim) + ms * iterations;
    const timedOut = silenceAt > timeoutMs;
    const ran = await this.wait(timedOut ? timeoutMs : silenceAt, () => {
      this.vars.WAITSTATUS = 'HANGUP';
      this.write('200 result=-1');
    });
    if (!ran) return;
    this.vars.WAITSTATUS = timedOut ? 'TIMEOUT' : 'SILENCE';
    this.write('200 result=0');
  }

  /**
   * `Dial(<target>,<timeout s>,<options>)` of an attended transfer, as Asterisk 22 does it (observed,
   * test/real-asterisk/attended-transfer.test.ts): the agent (persona.agent) rings; answered, the `U()`
   * subroutine plays AI_WHISPER to the agent (the caller hears ringing), then they are bridged until the
   * agent hangs up: result 0, DIALSTATUS ANSWER (option g: the call goes on). Not answered within the
   * timeout: NOANSWER; busy: BUSY; CONGESTION; CHANUNAVAIL; all with result 0. The caller hanging up:
   * result -1 (then HANGUP), DIALSTATUS CANCEL while ringing, ANSWER once answered.
   */
  private async dial(data: string): Promise<void> {
    const [target = '', timeoutArg = ''] = data.split(',');
    const timeoutS = Number(timeoutArg) > 0 ? Number(timeoutArg) : 0;
    const agent = this.o.persona.agent ?? { behaviour: 'answer' as const };
    const d: AgiDialResult = { target: target.trim(), timeoutSeconds: timeoutS, dialStatus: '' };
    this.dials.push(d);
    const began = Date.now();
    const done = (status: string, line = '200 result=0') => {
      d.dialStatus = this.vars.DIALSTATUS = status;
      if (d.bridgedAtMs !== undefined) d.bridgedMs = Date.now() - began - d.bridgedAtMs;
      this.write(line);
    };
    const ringMs = agent.ringMs ?? (agent.behaviour === 'answer' ? 1000 : 0);
    const limitMs = timeoutS > 0 ? timeoutS * 1000 : Infinity;
    const hungUp = () => done('CANCEL', '200 result=-1');
    if (agent.behaviour === 'no_answer' || (agent.behaviour === 'answer' && ringMs >= limitMs)) {
      if (await this.wait(Number.isFinite(limitMs) ? limitMs : 3_600_000, hungUp)) done('NOANSWER');
      return;
    }
    if (!(await this.wait(ringMs, hungUp))) return;
    if (agent.behaviour !== 'answer') {
      done({ busy: 'BUSY', congestion: 'CONGESTION', unavailable: 'CHANUNAVAIL' }[agent.behaviour]);
      return;
    }
    const answered = () => done('ANSWER', '200 result=-1');
    const file = this.vars._AI_WHISPER ?? this.vars.AI_WHISPER ?? '';
    if (file) {
      let durationMs = 0;
      try {
        durationMs = parseWav(fs.readFileSync(`${file}.wav`)).durationMs;
      } catch {
        /* Playback of a missing file: the agent hears nothing, the bridge comes at once */
      }
      d.whisper = { path: file, durationMs };
      d.whisperAtMs = Date.now() - began;
      if (!(await this.wait(durationMs, answered))) return;
    }
    d.bridgedAtMs = Date.now() - began;
    if (await this.wait(agent.talkMs ?? 2000, answered)) done('ANSWER');
  }

  /**
   * `AudioSocket(<uuid>,<host:port>)`: the callee's audio streams to the server until it sends a hangup
   * or closes (result 0), or the callee hangs up (result -1, then the channel is gone). A bad uuid or
   * an unreachable server: result -1 at once, as app_audiosocket does.
   */
  private async audioSocket(data: string): Promise<void> {
    const m = /^([^,]*),(.+):(\d{1,5})$/.exec(data.trim());
    if (!m || !isUuid(m[1])) return this.write('200 result=-1');
    const ac = new AbortController();
    let replied = false;
    const reply = (line: string) => {
      if (replied) return;
      replied = true;
      this.write(line);
    };
    this.current = {
      interrupt: () => {
        ac.abort();
        reply('200 result=-1');
      },
    };
    const r = await runAudioSocketCallee({
      host: m[2].replace(/^\[|\]$/g, ''),
      port: Number(m[3]),
      uuid: m[1],
      utterances: (this.o.persona.utterances ?? []).slice(this.records),
      speech: this.o.speech,
      signal: ac.signal,
    });
    this.audioSockets.push(r);
    this.records += r.said.length;
    if (r.endedBy === 'callee_hangup' && !ac.signal.aborted) return this.hangupNow('caller');
    reply(`200 result=${r.endedBy === 'connect_failed' || r.endedBy === 'error' ? -1 : r.result}`);
  }

  private async waitForDigit(ms: number): Promise<void> {
    // The persona presses no keys outside recordings: the wait runs out (or forever with -1).
    const simMs = ms < 0 ? 24 * 3600 * 1000 : ms;
    const ran = await this.wait(simMs, () => this.write('200 result=-1'));
    if (ran) this.write('200 result=0');
  }

  /** Find the file Asterisk would play: `<name>.wav` (8 kHz), `.wav16` (16 kHz) or `.sln` (raw 8 kHz). */
  private async loadSound(name: string): Promise<{ samples: number } | undefined> {
    const base = path.isAbsolute(name) ? name : this.o.soundsDir ? path.join(this.o.soundsDir, name) : undefined;
    if (!base) return undefined;
    for (const [ext, rate] of [
      ['.wav', 8000],
      ['.wav16', 16000],
      ['.sln', 8000],
    ] as const) {
      // the header only (one open, one small read): what a playback needs is the length. Blocking calls,
      // as Asterisk's channel thread does them: no thread-pool steps delaying the reply.
      let fd: number;
      try {
        fd = fs.openSync(base + ext, 'r');
      } catch {
        continue;
      }
      try {
        const size = fs.fstatSync(fd).size;
        if (ext === '.sln') return { samples: Math.floor(size / 2) };
        const head = Buffer.alloc(Math.min(size, 4096));
        const bytesRead = fs.readSync(fd, head, 0, head.length, 0);
        const w = wavHeaderInfo(head.subarray(0, bytesRead), size);
        // Asterisk's wav reader refuses other rates / stereo / encodings for this extension.
        if (
          !w ||
          (w.format !== 1 && w.format !== 0xfffe) ||
          w.bitsPerSample !== 16 ||
          w.sampleRate !== rate ||
          w.channels !== 1
        )
          return undefined;
        // endpos counts in the channel's 8 kHz samples.
        return { samples: Math.round((Math.floor(w.dataBytes / 2) * 8000) / rate) };
      } catch {
        return undefined;
      } finally {
        fs.closeSync(fd);
      }
    }
    return undefined;
  }

  private async streamFile(name: string, _digits: string, offsetArg?: string): Promise<void> {
    const sound = await this.loadSound(name);
    if (!this.up) return this.write('200 result=-1 endpos=0');
    if (!sound) return this.write('200 result=-1 endpos=0');
    const offset = Math.max(0, Math.min(sound.samples, Number(offsetArg) || 0));
    const total = sound.samples - offset;
    const index = ++this.playbacks;
    const hp = this.o.persona.hangupDuringPlayback;
    const fullMs = (total * 1000) / SIM_RATE;
    const samplesAt = (realMs: number) => offset + Math.min(total, Math.round((realMs * this.speed * SIM_RATE) / 1000));
    if (hp && hp.index === index) {
      const afterMs = Math.min(hp.afterMs ?? fullMs / 2, fullMs);
      const ran = await this.wait(afterMs, (el) => this.write(`200 result=-1 endpos=${samplesAt(el)}`));
      if (ran) {
        // The callee hangs up here: the playback stops where it was, then HANGUP.
        this.write(`200 result=-1 endpos=${offset + Math.round((afterMs * SIM_RATE) / 1000)}`);
        this.up = false;
        this.hungUpBy = 'caller';
        this.sendHangupLine();
      }
      return;
    }
    const ran = await this.wait(fullMs, (el) => this.write(`200 result=-1 endpos=${samplesAt(el)}`));
    if (ran) this.write(`200 result=0 endpos=${sound.samples}`);
  }

  private async recordFile(args: string[]): Promise<void> {
    const [file, format, digits, timeoutArg] = args;
    const maxMs = Number(timeoutArg);
    let silenceMs = 0;
    for (const a of args.slice(4)) {
      const m = /^s=(\d+)$/.exec(a);
      if (m) silenceMs = Number(m[1]) * 1000;
    }
    const base = path.isAbsolute(file)
      ? file
      : this.o.recordingsRoot
        ? path.join(this.o.recordingsRoot, file)
        : undefined;
    const fmt = format.toLowerCase();
    // Asterisk opens the file before recording: no directory (or an unknown format) -> writefile.
    if (!base || (fmt !== 'wav' && fmt !== 'sln') || !isDir(path.dirname(base)))
      return this.write('200 result=-1 (writefile)');
    if (!this.up) return this.write(REPLY_DEAD);
    const seq = this.records++;
    const u: Utterance = utteranceAt(this.o.persona, seq) ?? {};
    const text = u.text ?? '';
    let speech: Int16Array = new Int16Array(0);
    let simText = text;
    if (u.wav) {
      try {
        const w = parseWav(toAsteriskWav(await fs.promises.readFile(u.wav)));
        speech = w.samples;
        simText = w.simText ?? text;
      } catch {
        speech = new Int16Array(0);
      }
    } else if (text) speech = await utteranceAudio(text, this.o.speech);
    const pauseFrames = Math.round((u.pauseMs ?? 0) / FRAME_MS);
    const speechFrames = Math.ceil(speech.length / FRAME_SAMPLES);
    // The callee's stream, one 20 ms frame at a time: pause (silent), speech, then silence forever.
    const frameSilent = (f: number) =>
      f < pauseFrames || f >= pauseFrames + speechFrames || isSilentFrame(speech, (f - pauseFrames) * FRAME_SAMPLES);
    const maxFrames = maxMs > 0 ? Math.ceil(maxMs / FRAME_MS) : Number.POSITIVE_INFINITY;
    const dtmf = u.dtmf && digits.includes(u.dtmf) ? u.dtmf : undefined;
    const dtmfFrame = dtmf ? pauseFrames + speechFrames : Number.POSITIVE_INFINITY;
    const hangupFrame = u.hangup ? pauseFrames + Math.floor(speechFrames / 2) : Number.POSITIVE_INFINITY;
    // Walk the frames as Asterisk's loop does, counting consecutive silent frames.
    let end: RecordEnd | undefined;
    let silentRun = 0;
    const limit = Math.min(
      maxFrames,
      dtmfFrame,
      hangupFrame,
      pauseFrames + speechFrames + Math.ceil((silenceMs || 0) / FRAME_MS) + 1,
    );
    for (let f = 0; f < Number.POSITIVE_INFINITY; f++) {
      if (f >= hangupFrame) {
        end = { frame: f, keepFrames: f, reply: (p) => `200 result=-1 (hangup) endpos=${p}`, hangup: true };
        break;
      }
      if (f >= dtmfFrame) {
        end = {
          frame: f,
          keepFrames: f,
          reply: (p) => `200 result=${(dtmf as string).charCodeAt(0)} (dtmf) endpos=${p}`,
        };
        break;
      }
      if (f >= maxFrames) {
        end = { frame: f, keepFrames: f, reply: (p) => `200 result=0 (timeout) endpos=${p}` };
        break;
      }
      silentRun = frameSilent(f) ? silentRun + 1 : 0;
      if (silenceMs > 0 && silentRun * FRAME_MS >= silenceMs) {
        // Ended by silence: the file is trimmed back to where the silence began.
        const r = silenceResult(seq + this.o.uniqueid.length);
        end = { frame: f + 1, keepFrames: f + 1 - silentRun, reply: (p) => `200 result=${r} (timeout) endpos=${p}` };
        break;
      }
      if (f > limit && silenceMs === 0 && maxFrames === Number.POSITIVE_INFINITY) {
        // No silence detection and no maximum: Asterisk would record until hangup.
        end = undefined;
        break;
      }
    }
    if (this.finished) return; // the connection went while the callee's audio was being prepared
    const out = `${base}.${fmt}`;
    // Asterisk creates the file as the recording starts and writes the frames as they come: the file is
    // created now (through the thread pool, while the callee talks), and written whole and closed with
    // blocking calls when the recording ends, so the reply does not wait for a thread-pool step. Every way
    // out of the recording writes it (the end, or the hangup / dropped link, which interrupts), and one that
    // throws closes it as it is.
    const created = localFiles.create(out);
    created.catch(() => undefined); // a failure is the reply's, when the file is written
    try {
      const keepAt = (frames: number) => Math.max(0, frames) * FRAME_SAMPLES;
      const audioUpTo = (samples: number) => {
        const pcm = new Int16Array(samples);
        const start = pauseFrames * FRAME_SAMPLES;
        pcm.set(speech.subarray(0, Math.max(0, Math.min(speech.length, samples - start))), Math.min(samples, start));
        return pcm;
      };
      const writeFile = async (samples: number) => {
        const audio = audioUpTo(samples);
        const spokeAnything = samples > pauseFrames * FRAME_SAMPLES && speech.length > 0;
        const data =
          fmt === 'wav'
            ? encodeWav({ sampleRate: SIM_RATE, channels: 1, samples: audio }, spokeAnything ? simText : '')
            : Buffer.from(audio.buffer, audio.byteOffset, audio.byteLength);
        await (await created).finish(data);
        this.recordings.push(out);
      };
      const durationSimMs = end ? end.frame * FRAME_MS : 24 * 3600 * 1000;
      if (end) {
        const at = Date.now() - this.t0;
        this.recordTimings.push({
          cmdAtMs: at,
          speechEndAtMs: at + this.real(Math.min(end.frame, pauseFrames + speechFrames) * FRAME_MS),
          dueAtMs: at + this.real(durationSimMs),
        });
      }
      const ran = await this.wait(durationSimMs, async (el) => {
        // The caller hung up (or the link dropped) mid-recording: keep what was heard so far.
        const frames = Math.floor((el * this.speed) / FRAME_MS);
        const samples = keepAt(end ? Math.min(frames, end.frame) : frames);
        await writeFile(samples).catch(() => undefined);
        this.write(`200 result=-1 (hangup) endpos=${samples}`);
      });
      if (!ran) return;
      if (!end) {
        // recorded to the simulator's 24 h cap: what the callee said, and the reply of a maximum reached
        const said = keepAt(pauseFrames + speechFrames);
        await writeFile(said);
        return this.write(`200 result=0 (timeout) endpos=${said}`);
      }
      const samples = keepAt(end.keepFrames);
      await writeFile(samples);
      this.write(end.reply(samples));
      if (end.hangup) {
        this.up = false;
        this.hungUpBy = 'caller';
        this.sendHangupLine();
      }
    } finally {
      // a way out that did not write it (a throw): closed as it is (nothing when it was written)
      void created.then((f) => f.abandon()).catch(() => undefined);
    }
  }
}

/** How a RECORD FILE ends, worked out when it starts: the frame, the reply, the frames kept in the file. */
interface RecordEnd {
  frame: number;
  reply: (endpos: number) => string;
  keepFrames: number;
  hangup?: boolean;
}

/** Values on an AGI line cannot hold line breaks (Asterisk's own values never do). */
function oneLine(v: string): string {
  return v.replace(/[\r\n\0]/g, ' ');
}

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Run one AGI call against a FastAGI server, as Asterisk does when the channel reaches
 * `AGI(agi://host:port/script,args)`. Resolves when the AGI ends (never rejects).
 */
export function runAgiCall(opts: AgiCallOptions): Promise<AgiCallResult> {
  // Tolerate callers that have no persona or variables for this channel: a silent callee.
  const variables: Record<string, string> = {};
  for (const [k, v] of Object.entries(opts.variables ?? {})) variables[k] = oneLine(String(v));
  const o: AgiCallOptions = {
    ...opts,
    persona: opts.persona ?? {},
    variables,
    uniqueid: String(opts.uniqueid ?? `${Date.now() / 1000}`),
  };
  return new SimAgiCall(o).start();
}
