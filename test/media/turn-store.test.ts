/**
 * Stream-mode turns in the store (migration 025): media, barge-in (interrupted + what was heard) and the
 * caller's wait (endpoint, first token, first audio, reply latency) are stored with the turn and read
 * back, on PGlite and on PostgreSQL when DATABASE_URL is set.
 */
import { appendTurn, createInboundCall, getCall } from '../../src/store/calls';
import { turnInputOf } from '../../src/store/turns';
import type { Db } from '../../src/store/db';
import { dbTargets, type DbTarget } from '../helpers/db';

const targets = dbTargets();

describe.each(targets.map((t) => [t().name, t] as const))('on %s', (_name, make) => {
  let target: DbTarget;
  let db: Db;
  beforeAll(async () => {
    target = make();
    db = await target.open();
  });
  afterAll(async () => {
    await db.close();
    await target.cleanup();
  });

  test('a barged-in stream turn keeps what was heard and every timing; a record turn stays as it was', async () => {
    const call = await createInboundCall(db, { phone: '+12125550101' });
    await appendTurn(
      db,
      call.id,
      turnInputOf({
        seq: 0,
        botText: 'Hello there. This is a reminder.',
        media: 'stream',
        interrupted: true,
        playedText: 'Hello there.',
        timing: { llmMs: 3, llmFirstTokenMs: 3, ttsMs: 40, ttsFirstAudioMs: 21, playbackMs: 1200 },
      }),
    );
    await appendTurn(
      db,
      call.id,
      turnInputOf({
        seq: 1,
        userText: 'No.',
        botText: 'When would suit you?',
        media: 'stream',
        interrupted: false,
        playedText: 'ignored unless interrupted',
        timing: { recordMs: 1800, endpointMs: 600, sttMs: 12, llmMs: 5, ttsFirstAudioMs: 20, replyLatencyMs: 655 },
      }),
    );
    await appendTurn(db, call.id, turnInputOf({ seq: 2, userText: 'Yes', botText: 'Bye', timing: { recordMs: 2400 } }));
    const rows = (await getCall(db, call.id))!.turns;
    expect(rows.map((r) => [r.seq, r.media, r.interrupted, r.played_text])).toEqual([
      [0, 'stream', true, 'Hello there.'],
      [1, 'stream', false, null],
      [2, null, false, null],
    ]);
    expect(rows[0]).toMatchObject({ llm_first_token_ms: 3, tts_first_audio_ms: 21, reply_latency_ms: null });
    expect(rows[1]).toMatchObject({ endpoint_ms: 600, stt_ms: 12, tts_first_audio_ms: 20, reply_latency_ms: 655 });
  });
});
