/**
 * Where recordings go and what they are called. File names are built ONLY from the call id (made
 * safe), the turn number and a random id: nothing a caller says or a contact holds reaches a path.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import { randomHex } from '../util/random';
import type { AgiSession, RecordOptions, RecordResult } from './types';
import { StageError } from '../util/errors';
import { localFiles } from '../util/local-file';

/** Recordings directory: the configured one, else DATA_DIR/recordings, else <tmp>/ai-dialer-recordings. */
export function recordingsDir(configured?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (configured && configured.trim()) return path.resolve(configured.trim());
  if (env.RECORDINGS_DIR && env.RECORDINGS_DIR.trim()) return path.resolve(env.RECORDINGS_DIR.trim());
  if (env.DATA_DIR && env.DATA_DIR.trim()) return path.resolve(env.DATA_DIR.trim(), 'recordings');
  return path.join(os.tmpdir(), 'ai-dialer-recordings');
}

/** A call id reduced to a file-name-safe token (ids are ours, but a dialplan could pass anything). */
export function safeToken(v: unknown): string {
  const s = String(v ?? 'call')
    .replace(/[^A-Za-z0-9_-]/g, '_')
    .slice(0, 40);
  return s === '' ? 'call' : s;
}

/** `<dir>/call-<id>-t<seq>-<random>` (no extension: Asterisk appends it). */
export function recordingBase(dir: string, callId: unknown, seq: number): string {
  const n = Number.isInteger(seq) && seq >= 0 ? seq : 0;
  return path.join(dir, `call-${safeToken(callId)}-t${n}-${randomHex(6)}`);
}

const made = new Set<string>();
/** mkdir -p once per directory per process. */
export async function ensureDir(dir: string): Promise<void> {
  if (made.has(dir)) return;
  await fs.promises.mkdir(dir, { recursive: true });
  made.add(dir);
  localFiles.checkDir(dir); // the recordings are read back from here: a network mount reads them in the pool
}

export interface TurnRecording {
  recording: { path: string; durationMs: number; digit?: string; hungUp: boolean };
  result: RecordResult;
  elapsedMs: number;
}

/**
 * Record one caller turn into a generated file in `dir`. A caller who hangs up (during the recording,
 * or before it: the channel is already gone, Asterisk answers 511) ends the call, it is not a
 * failure: the result says `hungUp` and carries no file.
 */
export async function recordTurn(
  session: AgiSession,
  opts: { dir: string; callId: unknown; seq: number } & Omit<RecordOptions, 'path'>,
): Promise<TurnRecording> {
  await ensureDir(opts.dir);
  const base = recordingBase(opts.dir, opts.callId, opts.seq);
  const t0 = Date.now();
  const hungUpBefore = (): TurnRecording => ({
    recording: { path: '', durationMs: 0, hungUp: true },
    result: { file: '', endpos: 0, durationMs: 0, endedBy: 'hangup', hungUp: true },
    elapsedMs: Date.now() - t0,
  });
  if (session.hungUp) return hungUpBefore();
  let result: RecordResult;
  try {
    result = await session.recordFile({
      path: base,
      format: opts.format ?? 'wav',
      escapeDigits: opts.escapeDigits,
      maxMs: opts.maxMs,
      silenceSeconds: opts.silenceSeconds,
      beep: opts.beep,
    });
  } catch (err) {
    if (err instanceof StageError && err.kind === 'hangup') return hungUpBefore();
    throw err;
  }
  const recording: TurnRecording['recording'] = {
    path: result.file,
    durationMs: result.durationMs,
    hungUp: result.hungUp,
  };
  if (result.digit !== undefined) recording.digit = result.digit;
  return { recording, result, elapsedMs: Date.now() - t0 };
}
