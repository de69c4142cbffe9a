import fs from 'fs';
import os from 'os';
import path from 'path';
import { execFileSync, spawn } from 'child_process';
import { LocalFiles } from '../../src/util/local-file';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-local-file-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Resolves when the event loop has turned once (a setImmediate callback ran). */
function loopTurned(): { done: () => boolean } {
  let turned = false;
  setImmediate(() => (turned = true));
  return { done: () => turned };
}

/** A clock that advances by the next of `steps` (ms) at each read after the first of a pair. */
function steppingClock(steps: number[]): () => number {
  let t = 0;
  let reads = 0;
  return () => {
    if (reads++ % 2 === 1) t += steps.shift() ?? 0;
    return t;
  };
}

describe('LocalFiles', () => {
  test('blocking mode reads a file without waiting for a turn of the event loop', async () => {
    const file = path.join(dir, 'r.wav');
    const bytes = Buffer.from('RIFF-some-bytes');
    fs.writeFileSync(file, bytes);
    const lf = new LocalFiles();
    const loop = loopTurned();
    const got = await lf.read(file);
    expect(loop.done()).toBe(false); // fs.promises.readFile needs several thread-pool steps and loop turns
    expect(got.equals(bytes)).toBe(true);
    expect(got.buffer.byteLength).toBeLessThanOrEqual(8192); // read once into its own size (or the pool's slab), not copied
    // an empty file, and one bigger than a read
    fs.writeFileSync(file, '');
    expect((await lf.read(file)).length).toBe(0);
    const big = Buffer.alloc(300_000, 7);
    fs.writeFileSync(file, big);
    expect((await lf.read(file)).equals(big)).toBe(true);
    expect(lf.mode).toBe('blocking');
  });

  test('a missing file rejects with the code fs gives, in both modes', async () => {
    for (const mode of ['blocking', 'async'] as const) {
      const lf = new LocalFiles({ mode });
      await expect(lf.read(path.join(dir, 'none.wav'))).rejects.toMatchObject({ code: 'ENOENT' });
    }
  });

  test('writeAtomic puts the whole file in place and leaves no temporary file, in both modes', async () => {
    for (const mode of ['blocking', 'async'] as const) {
      const lf = new LocalFiles({ mode });
      const file = path.join(dir, `${mode}.wav`);
      fs.writeFileSync(file, 'old');
      const bytes = Buffer.alloc(70_000, 3);
      await lf.writeAtomic(path.join(dir, `.tmp-${mode}`), file, bytes);
      expect(fs.readFileSync(file).equals(bytes)).toBe(true);
      expect(fs.readdirSync(dir).filter((n) => n.startsWith('.tmp-'))).toEqual([]);
    }
  });

  test('write puts the bytes in place (created or truncated), in both modes; a missing directory rejects', async () => {
    for (const mode of ['blocking', 'async'] as const) {
      const lf = new LocalFiles({ mode });
      const file = path.join(dir, `in-place-${mode}.wav`);
      fs.writeFileSync(file, Buffer.alloc(90_000, 1));
      const bytes = Buffer.alloc(50_000, 9);
      await lf.write(file, bytes);
      expect(fs.readFileSync(file).equals(bytes)).toBe(true);
      await expect(lf.write(path.join(dir, 'none', 'x.wav'), bytes)).rejects.toMatchObject({ code: 'ENOENT' });
    }
  });

  test('create makes the file at once and finish writes it whole and closes it, once, in both modes', async () => {
    const open = () => fs.readdirSync('/proc/self/fd').length;
    for (const mode of ['blocking', 'async'] as const) {
      const lf = new LocalFiles({ mode });
      const file = path.join(dir, `created-${mode}.wav`);
      fs.writeFileSync(file, Buffer.alloc(5000, 1)); // truncated by create
      const before = open();
      const f = await lf.create(file);
      expect(fs.statSync(file).size).toBe(0);
      expect(open()).toBe(before + 1);
      const bytes = Buffer.alloc(40_000, 4);
      await f.finish(bytes);
      expect(fs.readFileSync(file).equals(bytes)).toBe(true);
      expect(open()).toBe(before);
      await expect(f.finish(Buffer.from('again'))).rejects.toThrow(/already written/);
      expect(fs.readFileSync(file).equals(bytes)).toBe(true);
      // wx: never an existing name
      await expect(lf.create(file, 'wx')).rejects.toMatchObject({ code: 'EEXIST' });
      // a failed write still closes the file
      const full = await lf.create('/dev/full');
      await expect(full.finish(Buffer.alloc(1000, 1))).rejects.toMatchObject({ code: 'ENOSPC' });
      expect(open()).toBe(before);
      // abandon closes a file never written (and does nothing after finish, or twice)
      const left = await lf.create(path.join(dir, `left-${mode}.wav`));
      expect(open()).toBe(before + 1);
      await left.abandon();
      await left.abandon();
      expect(open()).toBe(before);
      await expect(left.finish(bytes)).rejects.toThrow(/already written/);
      await f.abandon();
      expect(fs.readFileSync(file).equals(bytes)).toBe(true);
      expect(open()).toBe(before);
    }
  });

  test('a failed rename removes its temporary file and rejects; what is at the target is untouched', async () => {
    for (const mode of ['blocking', 'async'] as const) {
      const lf = new LocalFiles({ mode });
      // the target is a directory that is not empty: rename fails after the temporary file was written
      const target = path.join(dir, `${mode}-dir`);
      fs.mkdirSync(target);
      fs.writeFileSync(path.join(target, 'x'), 'kept');
      await expect(lf.writeAtomic(path.join(dir, `.tmp-${mode}`), target, Buffer.from('new'))).rejects.toMatchObject({
        code: expect.stringMatching(/^(EISDIR|ENOTEMPTY|EEXIST)$/),
      });
      expect(fs.readdirSync(dir).filter((n) => n.startsWith('.tmp-'))).toEqual([]);
      expect(fs.readFileSync(path.join(target, 'x'), 'utf8')).toBe('kept');
    }
  });

  test('a failed write closes its file (no descriptor left open), in both modes', async () => {
    const open = () => fs.readdirSync('/proc/self/fd').length;
    for (const mode of ['blocking', 'async'] as const) {
      const lf = new LocalFiles({ mode });
      const before = open();
      // /dev/full opens, and every write to it fails with ENOSPC
      await expect(lf.write('/dev/full', Buffer.alloc(1000, 1))).rejects.toMatchObject({ code: 'ENOSPC' });
      expect(open()).toBe(before);
    }
  });

  test('a temporary name that is already there (a planted link) is refused, not followed, in both modes', async () => {
    for (const mode of ['blocking', 'async'] as const) {
      const lf = new LocalFiles({ mode });
      const victim = path.join(dir, `victim-${mode}`);
      fs.writeFileSync(victim, 'precious');
      const tmp = path.join(dir, `.tmp-link-${mode}`);
      fs.symlinkSync(victim, tmp);
      await expect(lf.writeAtomic(tmp, path.join(dir, `out-${mode}.wav`), Buffer.from('new'))).rejects.toMatchObject({
        code: 'EEXIST',
      });
      expect(fs.readFileSync(victim, 'utf8')).toBe('precious');
      expect(fs.existsSync(path.join(dir, `out-${mode}.wav`))).toBe(false);
    }
  });

  test('a FIFO, and a file over maxBlockingBytes, are read through the thread pool, not blocking', async () => {
    const lf = new LocalFiles({ maxBlockingBytes: 10 });
    const big = path.join(dir, 'big.wav');
    fs.writeFileSync(big, Buffer.alloc(100, 5));
    let loop = loopTurned();
    expect((await lf.read(big)).equals(Buffer.alloc(100, 5))).toBe(true);
    expect(loop.done()).toBe(true);
    const fifo = path.join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    loop = loopTurned();
    const reading = lf.read(fifo); // no writer yet: a blocking open or read would hang the process here
    const writer = spawn('sh', ['-c', `printf hello > '${fifo}'`]);
    const exited = new Promise((r) => writer.once('exit', r));
    expect((await reading).toString()).toBe('hello');
    expect(loop.done()).toBe(true);
    await exited;
    expect(lf.mode).toBe('blocking');
  });

  test('a directory on a network file system switches to async at once, naming it; a local one does not', () => {
    const warnings: string[] = [];
    const lf = new LocalFiles({ onSlow: (m) => warnings.push(m) });
    lf.checkDir(dir); // the test's own temporary directory: a local disk or tmpfs
    expect(lf.mode).toBe('blocking');
    const statfs = jest.spyOn(fs, 'statfsSync').mockReturnValueOnce({ type: 0x6969 } as fs.StatsFs);
    try {
      lf.checkDir('/mnt/recordings');
    } finally {
      statfs.mockRestore();
    }
    expect(lf.mode).toBe('async');
    expect(warnings).toEqual([expect.stringMatching(/\/mnt\/recordings is on a network file system \(NFS\)/)]);
  });

  test('three slow blocking calls in a row switch to async for good, with one warning', async () => {
    const file = path.join(dir, 'r.wav');
    fs.writeFileSync(file, 'x');
    const warnings: string[] = [];
    const lf = new LocalFiles({
      slowMs: 20,
      now: steppingClock([25, 30, 5, 25, 25, 25, 100]),
      onSlow: (m) => warnings.push(m),
    });
    await lf.read(file); // slow
    await lf.read(file); // slow
    await lf.read(file); // fast: the count starts again
    await lf.read(file);
    await lf.read(file);
    expect(lf.mode).toBe('blocking');
    expect(warnings).toEqual([]);
    await lf.read(file); // the third slow one in a row
    expect(lf.mode).toBe('async');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/disk is slow \(25 ms reading .*r\.wav\).*AUDIO_DIR and RECORDINGS_DIR/);
    // async now: the read waits for the thread pool (a loop turn), and warns no more
    const loop = loopTurned();
    expect((await lf.read(file)).toString()).toBe('x');
    expect(loop.done()).toBe(true);
    expect(warnings).toHaveLength(1);
  });

  test('one stall longer than stallMs switches at once', async () => {
    const file = path.join(dir, 'r.wav');
    const warnings: string[] = [];
    const lf = new LocalFiles({ now: steppingClock([250]), onSlow: (m) => warnings.push(m) });
    await lf.writeAtomic(path.join(dir, '.tmp-1'), file, Buffer.from('abc'));
    expect(lf.mode).toBe('async');
    expect(warnings[0]).toMatch(/250 ms writing/);
    expect(fs.readFileSync(file, 'utf8')).toBe('abc');
  });
});
