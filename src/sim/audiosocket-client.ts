/**
 * The simulator's AudioSocket side: what Asterisk's `AudioSocket(<uuid>,<host:port>)` does for a
 * channel (apps/app_audiosocket.c): connect, send the uuid, then forward the caller's audio as 20 ms
 * slin frames (continuously: a phone sends frames of silence too) and play what the server sends.
 * A hangup message or a closed socket from the server ends it normally (the application returns 0);
 * the callee hanging up closes the socket (the application returns -1 and the channel is gone).
 *
 * The callee is the persona's utterances, streamed in real time: each is said once our prompt has
 * finished (after its pause), or over the prompt (`bargeInAfterMs`: N ms after the prompt began),
 * or as noise (`noiseMs`), or not at all (`silent`).
 */
import fs from 'fs';
import net from 'net';
import { performance } from 'perf_hooks';
import { AudioSocketDecoder, FRAME_SAMPLES, encodeAudio, encodeDtmf, encodeUuid } from '../media/audiosocket';
import { Pacer, type PacedSource } from '../media/pacer';
import { noteSimSpeech } from '../media/sim-text';
import { parseWav, resample } from '../audio/wav';
import { utteranceAudio, type SimSpeech } from './audio-utterance';
import type { Utterance } from './persona';

/** An utterance in stream mode (persona.ts: bargeInAfterMs, noiseMs, silent apply here). */
export type StreamUtterance = Utterance;

export interface AudioSocketCalleeOptions {
  host: string;
  port: number;
  uuid: string;
  utterances: Array<string | StreamUtterance>;
  speech?: SimSpeech;
  /** Quiet after our last frame that counts as the prompt having ended, ms (default 300). */
  promptGapMs?: number;
  /** After saying something, how long the callee waits for an answer before it speaks again, ms (default 8000). */
  replyWaitMs?: number;
  /** Hang up (close the socket) after saying the last utterance and hearing the reply, default false. */
  hangupAtEnd?: boolean;
  /** Level of the line's background noise floor (peak, 16-bit; default 0: digital silence). */
  floor?: number;
  connectTimeoutMs?: number;
  signal?: AbortSignal;
}

/** A stretch of our audio the callee heard (a prompt, or part of one). */
export interface HeardPrompt {
  /** Wall times (performance.now) of the first and last frame. */
  firstAt: number;
  lastAt: number;
  frames: number;
  samples: Int16Array[];
}

export interface SaidUtterance {
  text: string;
  /** Stream times (frames sent x 20 ms). */
  startMs: number;
  endMs: number;
  /** Wall time the speech began / ended. */
  startAt: number;
  endAt: number;
  /** It began during one of our prompts. */
  overPrompt: boolean;
}

export interface AudioSocketCalleeResult {
  /** What AudioSocket() returns: 0 (the server ended it), -1 (the callee hung up, or an error). */
  result: 0 | -1;
  endedBy: 'server_hangup' | 'server_closed' | 'callee_hangup' | 'connect_failed' | 'error';
  error?: string;
  heard: HeardPrompt[];
  said: SaidUtterance[];
  framesSent: number;
  framesReceived: number;
  /** For each utterance said over a prompt: ms from its first frame to the last prompt frame heard after it. */
  bargeInStopMs: number[];
  /** For each utterance answered: ms from the end of the callee's speech to the first reply frame. */
  replyLatencyMs: number[];
  /** DTMF keys the callee pressed (persona `dtmf`), with the wall time and stream time of each. */
  keys: PressedKey[];
}

export interface PressedKey {
  digit: string;
  at: number;
  streamMs: number;
}

const calleePacer = new Pacer();

function noise(n: number, peak: number, seed: number): Int16Array {
  const out = new Int16Array(n);
  let s = seed | 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = Math.round((((s >>> 0) / 4294967296) * 2 - 1) * peak);
  }
  return out;
}

export function runAudioSocketCallee(o: AudioSocketCalleeOptions): Promise<AudioSocketCalleeResult> {
  return new Promise((resolve) => {
    const heard: HeardPrompt[] = [];
    const said: SaidUtterance[] = [];
    const bargeInStopMs: number[] = [];
    const replyLatencyMs: number[] = [];
    const keys: PressedKey[] = [];
    const gap = o.promptGapMs ?? 300;
    const utts = o.utterances.map((u) => (typeof u === 'string' ? { text: u } : u));
    let next = 0;
    let framesSent = 0;
    let framesReceived = 0;
    let finished = false;
    let current: { audio: Int16Array; off: number; said: SaidUtterance | undefined; dtmf?: string } | undefined;
    let prompt: HeardPrompt | undefined;
    let waitingFrom = performance.now();
    let preparing = false;
    let pendingBarge: { u: StreamUtterance; promptStart: number } | undefined;
    let lastSaidEnd: SaidUtterance | undefined;
    let hangupAt = Number.POSITIVE_INFINITY;
    // an answered callee waits for our greeting before it speaks (or gives up waiting after replyWaitMs)
    let awaitingReply = true;
    const floor = o.floor ?? 0;
    const silence = new Int16Array(FRAME_SAMPLES);

    const socket = net.connect({ host: o.host, port: o.port });
    socket.setNoDelay(true);
    const connectTimer = setTimeout(() => socket.destroy(new Error('connect timeout')), o.connectTimeoutMs ?? 2000);
    const decoder = new AudioSocketDecoder(65535);

    const finish = (result: 0 | -1, endedBy: AudioSocketCalleeResult['endedBy'], error?: string) => {
      if (finished) return;
      finished = true;
      clearTimeout(connectTimer);
      calleePacer.remove(source);
      o.signal?.removeEventListener('abort', onAbort);
      // barge-in stops: for speech that began while a prompt was playing (a prompt frame came after its
      // start, within the prompt gap of it), the last prompt frame heard after it began
      for (const s of said) {
        const over = heard.filter((p) => p.lastAt >= s.startAt && p.firstAt <= s.startAt + gap);
        if (over.length) bargeInStopMs.push(Math.max(0, Math.round(over[over.length - 1].lastAt - s.startAt)));
      }
      resolve({
        result,
        endedBy,
        error,
        heard,
        said,
        framesSent,
        framesReceived,
        bargeInStopMs,
        replyLatencyMs,
        keys,
      });
    };
    const hangUp = () => {
      socket.destroy();
      finish(-1, 'callee_hangup');
    };
    const onAbort = () => hangUp();
    o.signal?.addEventListener('abort', onAbort, { once: true });

    const startSaying = (u: StreamUtterance, now: number) => {
      preparing = true;
      const text = u.text ?? '';
      const audioP: Promise<Int16Array> = u.noiseMs
        ? Promise.resolve(noise(Math.round(u.noiseMs * 8), 6000, next * 7919 + 1))
        : u.wav
          ? fs.promises.readFile(u.wav).then((b) => resample(parseWav(b), 8000).samples)
          : utteranceAudio(text, o.speech ?? 'synthetic');
      void audioP.then((audio) => {
        preparing = false;
        if (finished) return;
        const startMs = framesSent * 20;
        const s: SaidUtterance | undefined = u.noiseMs
          ? undefined
          : {
              text,
              startMs,
              endMs: startMs + Math.round(audio.length / 8),
              startAt: now,
              endAt: 0,
              overPrompt: prompt !== undefined && performance.now() - prompt.lastAt < gap,
            };
        if (s) noteSimSpeech(o.uuid, s.startMs, s.endMs, text);
        current = { audio, off: 0, said: s, dtmf: u.dtmf };
      });
    };

    const source: PacedSource = {
      tick(now: number): boolean {
        if (finished) return false;
        if (now >= hangupAt) {
          hangUp();
          return false;
        }
        // the prompt is over once we have heard nothing for `gap` ms
        if (prompt && now - prompt.lastAt >= gap) prompt = undefined;
        if (!current && !preparing && !pendingBarge) {
          const u = utts[next];
          if (u && u.bargeInAfterMs !== undefined) {
            // wait for a prompt to begin, then talk over it
            if (prompt) pendingBarge = { u, promptStart: prompt.firstAt };
          } else if (
            u &&
            !prompt &&
            now - waitingFrom >= (u.pauseMs ?? 200) &&
            // after saying something, a caller waits for the answer (or gives up waiting after a while)
            (!awaitingReply || now - waitingFrom >= (o.replyWaitMs ?? 8000))
          ) {
            next++;
            if (u.silent) waitingFrom = Number.POSITIVE_INFINITY;
            else if (u.dtmf && !u.text) {
              // a key and nothing said: pressed now (AudioSocket sends it as a DTMF message)
              socket.write(encodeDtmf(u.dtmf));
              keys.push({ digit: u.dtmf, at: now, streamMs: framesSent * 20 });
              waitingFrom = now;
              awaitingReply = true;
            } else startSaying(u, now);
          } else if (!u && o.hangupAtEnd && !prompt && lastSaidEnd && now - waitingFrom >= 500) {
            hangUp();
            return false;
          }
        }
        if (pendingBarge && now - pendingBarge.promptStart >= (pendingBarge.u.bargeInAfterMs ?? 0)) {
          const u = pendingBarge.u;
          pendingBarge = undefined;
          next++;
          if (u.dtmf && !u.text) {
            // a key pressed during our prompt
            socket.write(encodeDtmf(u.dtmf));
            keys.push({ digit: u.dtmf, at: now, streamMs: framesSent * 20 });
          } else startSaying(u, now);
        }
        let frame: Int16Array = floor > 0 ? noise(FRAME_SAMPLES, floor, framesSent + 17) : silence;
        if (current) {
          const c = current;
          if (c.off === 0 && c.said) {
            c.said.startAt = now;
            c.said.overPrompt = prompt !== undefined;
          }
          const end = Math.min(c.audio.length, c.off + FRAME_SAMPLES);
          const chunk = new Int16Array(FRAME_SAMPLES);
          chunk.set(c.audio.subarray(c.off, end));
          if (floor > 0) for (let i = 0; i < FRAME_SAMPLES; i++) chunk[i] = chunk[i] + frame[i];
          frame = chunk;
          c.off = end;
          if (c.off >= c.audio.length) {
            current = undefined;
            waitingFrom = now;
            if (c.said) {
              awaitingReply = true;
              c.said.endAt = now + 20;
              said.push(c.said);
              lastSaidEnd = c.said;
            }
            // hang up a second after saying it (as a caller does who says goodbye and puts the phone down)
            if (utts[next - 1]?.hangup) hangupAt = now + 1000;
            // a key pressed right after speaking (as a caller who ends the answer with #)
            if (c.dtmf) {
              socket.write(encodeDtmf(c.dtmf));
              keys.push({ digit: c.dtmf, at: now + 20, streamMs: framesSent * 20 + 20 });
            }
          }
        }
        socket.write(encodeAudio(frame));
        framesSent++;
        return true;
      },
    };

    socket.on('connect', () => {
      clearTimeout(connectTimer);
      socket.write(encodeUuid(o.uuid));
      waitingFrom = performance.now();
      calleePacer.add(source);
    });
    socket.on('data', (chunk: Buffer) => {
      let msgs;
      try {
        msgs = decoder.push(chunk);
      } catch (err) {
        // Asterisk logs and ends AudioSocket() with -1 (the channel hangs up)
        socket.destroy();
        return finish(-1, 'error', (err as Error).message);
      }
      for (const m of msgs) {
        if (m.kind === 'hangup') {
          socket.end();
          return finish(0, 'server_hangup');
        }
        if (m.kind !== 'audio') {
          socket.destroy();
          return finish(-1, 'error', `server sent ${m.kind}`);
        }
        const now = performance.now();
        framesReceived++;
        if (!prompt) {
          awaitingReply = false;
          prompt = { firstAt: now, lastAt: now, frames: 0, samples: [] };
          heard.push(prompt);
          if (lastSaidEnd && !current) {
            replyLatencyMs.push(Math.round(now - lastSaidEnd.endAt));
            lastSaidEnd = undefined;
          }
        }
        prompt.lastAt = now;
        prompt.frames++;
        if (prompt.samples.length < 3000) prompt.samples.push(m.samples);
      }
    });
    socket.on('error', (err) => finish(-1, framesSent ? 'error' : 'connect_failed', err.message));
    socket.on('close', () => {
      finish(0, 'server_closed');
    });
  });
}
