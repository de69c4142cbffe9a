import fs from 'fs';
import os from 'os';
import path from 'path';
import { runProcess, maxProcesses, processStats } from '../../src/speech/proc';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-proc-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A program that records how many copies of itself run at once (lock directory per copy). */
const script = (tag: string) =>
  `mkdir "${dir}/run-${tag}"; n=$(ls -d "${dir}"/run-* | wc -l); echo $n >> "${dir}/counts"; sleep 0.15; rmdir "${dir}/run-${tag}"; cat`;

test('at most maxProcesses() engine programs run at once; the rest queue and still finish', async () => {
  const before = maxProcesses();
  maxProcesses(2);
  try {
    const runs = Array.from({ length: 6 }, (_, i) =>
      runProcess('/bin/sh', ['-c', script(String(i))], {
        stage: 'tts',
        engine: 'test',
        timeoutMs: 20000,
        stdin: `text ${i}`,
      }),
    );
    expect(processStats()).toEqual({ running: 2, waiting: 4 });
    const out = await Promise.all(runs);
    expect(out.map((r) => r.stdout.toString())).toEqual(Array.from({ length: 6 }, (_, i) => `text ${i}`));
    const counts = fs.readFileSync(path.join(dir, 'counts'), 'utf8').trim().split('\n').map(Number);
    expect(counts).toHaveLength(6);
    expect(Math.max(...counts)).toBeLessThanOrEqual(2);
    expect(processStats()).toEqual({ running: 0, waiting: 0 });
  } finally {
    maxProcesses(before);
  }
});

test('waiting for a slot counts toward the deadline: a queued request times out and leaves the queue', async () => {
  const before = maxProcesses();
  maxProcesses(1);
  try {
    const long = runProcess('/bin/sh', ['-c', 'sleep 1; cat'], {
      stage: 'tts',
      engine: 'test',
      timeoutMs: 20000,
      stdin: 'first',
    });
    const queued = runProcess('/bin/sh', ['-c', 'cat'], {
      stage: 'tts',
      engine: 'test',
      timeoutMs: 200,
      stdin: 'second',
    });
    await expect(queued).rejects.toMatchObject({
      stage: 'tts',
      kind: 'timeout',
      message: expect.stringContaining('synthesis slots'),
    });
    expect(processStats().waiting).toBe(0);
    await expect(long).resolves.toMatchObject({ stdout: Buffer.from('first') });
    // a killed program frees its slot
    await expect(
      runProcess('/bin/sh', ['-c', 'sleep 5'], { stage: 'tts', engine: 'test', timeoutMs: 100 }),
    ).rejects.toMatchObject({ kind: 'timeout' });
    await expect(
      runProcess('/bin/sh', ['-c', 'cat'], { stage: 'tts', engine: 'test', timeoutMs: 5000, stdin: 'after' }),
    ).resolves.toMatchObject({ stdout: Buffer.from('after') });
  } finally {
    maxProcesses(before);
  }
});
