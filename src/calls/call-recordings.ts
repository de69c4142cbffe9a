/**
 * Whole-call recordings (a campaign's settings.recording): MixMonitor in the dialplan writes
 * RECORDINGS_DIR/calls/call-<id>.wav (both directions mixed, one file per call); the call row names it
 * (`recording_path`, relative to RECORDINGS_DIR); the API serves it with the API's credentials; and a
 * sweep deletes the files of calls that ended longer ago than the campaign's retentionDays.
 * File names come only from the numeric call id: nothing a caller or contact holds reaches a path.
 */
import fs from 'fs';
import path from 'path';
import type { Db, Queryable } from '../store/db';
import { parseRecordingSettings, settingOr } from '../campaign/call-settings';

const REL = /^calls\/call-\d{1,10}\.wav$/;

/** The file of call `id`, relative to RECORDINGS_DIR (what the dialplan writes). */
export function recordingPathFor(callId: number): string {
  if (!Number.isSafeInteger(callId) || callId <= 0) throw new Error(`bad call id ${String(callId)}`);
  return `calls/call-${callId}.wav`;
}

/** The absolute file for a stored relative path, or undefined when it is not one of ours. */
export function resolveRecording(dir: string, rel: unknown): string | undefined {
  if (typeof rel !== 'string' || !REL.test(rel)) return undefined;
  const base = path.resolve(dir);
  const abs = path.resolve(base, rel);
  return abs.startsWith(base + path.sep) ? abs : undefined;
}

/** The call is recorded: name its file on the row. */
export async function setRecordingPath(q: Queryable, callId: number): Promise<void> {
  await q.query('update calls set recording_path = $2 where id = $1', [callId, recordingPathFor(callId)]);
}

export interface SweepResult {
  deleted: number;
  missing: number;
}

/**
 * Delete the recordings of calls that ended more than their campaign's retentionDays ago (0: kept),
 * at most `limit` per sweep; each is marked recording_deleted_at (a file already gone counts as missing).
 */
export async function sweepRecordings(db: Db, dir: string, now = new Date(), limit = 500): Promise<SweepResult> {
  const rows = await db.query<{ id: number; recording_path: string; ended_at: Date; settings: unknown }>(
    `select c.id, c.recording_path, c.ended_at, k.settings
       from calls c left join campaigns k on k.id = c.campaign_id
      where c.recording_path is not null and c.recording_deleted_at is null and c.ended_at is not null
      order by c.ended_at limit $1`,
    [limit],
  );
  const out: SweepResult = { deleted: 0, missing: 0 };
  for (const r of rows.rows) {
    const days = settingOr(
      parseRecordingSettings,
      (r.settings as { recording?: unknown } | null)?.recording,
    ).retentionDays;
    if (days <= 0 || now.getTime() - new Date(r.ended_at).getTime() < days * 86_400_000) continue;
    const abs = resolveRecording(dir, r.recording_path);
    let gone = true;
    if (abs) {
      try {
        await fs.promises.unlink(abs);
        gone = false;
        out.deleted++;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') continue; // retried at the next sweep
      }
    }
    if (gone) out.missing++;
    await db.query('update calls set recording_deleted_at = $2 where id = $1', [r.id, now]);
  }
  return out;
}
