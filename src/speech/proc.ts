/**
 * Run an engine's command-line program (espeak-ng, piper): no shell, text on stdin (never in argv,
 * so text cannot become an option), a deadline that kills the process, output size cap, and
 * failures mapped to StageError (not_installed, timeout, bad_response).
 *
 * At most `maxProcesses()` engine programs run at once in this process (default: twice the CPU
 * count, or TTS_MAX_PROCESSES): a burst of hundreds of calls queues instead of forking hundreds of
 * synthesizers. Time spent waiting for a slot counts toward the request's deadline.
 */
import os from 'os';
import { spawn } from 'child_process';
import { StageError, type Stage } from '../util/errors';

let limit = Math.max(1, Number(process.env.TTS_MAX_PROCESSES) || os.cpus().length * 2);
let running = 0;
const waiting: Array<() => void> = [];

/** Most engine programs running at once; the default is twice the CPU count. */
export function maxProcesses(n?: number): number {
  if (n !== undefined) {
    if (!Number.isInteger(n) || n < 1) throw new Error('max processes must be a whole number >= 1');
    limit = n;
    while (running < limit && waiting.length) waiting.shift()?.();
  }
  return limit;
}

/** Programs running / waiting for a slot now (for status lines and tests). */
export function processStats(): { running: number; waiting: number } {
  return { running, waiting: waiting.length };
}

function release(): void {
  running--;
  while (running < limit && waiting.length) waiting.shift()?.();
}

export interface RunOptions {
  stage: Stage;
  engine: string;
  timeoutMs: number;
  stdin?: string;
  maxBytes?: number;
  signal?: AbortSignal;
  env?: NodeJS.ProcessEnv;
}

export interface RunResult {
  stdout: Buffer;
  stderr: string;
}

export function runProcess(bin: string, args: string[], opts: RunOptions): Promise<RunResult> {
  const { stage, engine } = opts;
  return new Promise<RunResult>((resolve, reject) => {
    let settled = false;
    let slot = false;
    let child: ReturnType<typeof spawn> | undefined;
    const finish = (e?: StageError, r?: RunResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      const i = waiting.indexOf(start);
      if (i >= 0) waiting.splice(i, 1);
      if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      if (slot) release();
      if (e) reject(e);
      else resolve(r as RunResult);
    };
    const timer = setTimeout(
      () =>
        finish(
          new StageError(
            stage,
            'timeout',
            `${bin} did not finish within ${opts.timeoutMs} ms${slot ? '' : ` (waited for one of ${limit} synthesis slots)`}`,
            { engine },
          ),
        ),
      opts.timeoutMs,
    );
    const onAbort = () => finish(new StageError(stage, 'network', `${bin} aborted`, { engine }));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    function start(): void {
      if (settled) return;
      slot = true;
      running++;
      child = spawnChild(bin, args, opts, finish);
    }
    if (opts.signal?.aborted) return onAbort();
    if (running < limit) start();
    else waiting.push(start);
  });
}

function spawnChild(
  bin: string,
  args: string[],
  opts: RunOptions,
  finish: (e?: StageError, r?: RunResult) => void,
): ReturnType<typeof spawn> {
  const { stage, engine } = opts;
  const maxBytes = opts.maxBytes ?? 64 * 1024 * 1024;
  const out: Buffer[] = [];
  let outSize = 0;
  let err = '';
  const child = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env, windowsHide: true });
  child.on('error', (e: Error & { code?: string }) => {
    if (e.code === 'ENOENT')
      finish(
        new StageError(stage, 'not_installed', `${bin} not found (is it installed and on the PATH?)`, {
          engine,
          cause: e,
        }),
      );
    else if (e.code === 'EACCES')
      finish(new StageError(stage, 'not_installed', `${bin} is not executable`, { engine, cause: e }));
    else finish(new StageError(stage, 'bad_response', `${bin}: ${e.message}`, { engine, cause: e }));
  });
  child.stdout.on('data', (c: Buffer) => {
    outSize += c.length;
    if (outSize > maxBytes)
      return finish(new StageError(stage, 'bad_response', `${bin} wrote more than ${maxBytes} bytes`, { engine }));
    out.push(c);
  });
  child.stderr.on('data', (c: Buffer) => {
    if (err.length < 4000) err += c.toString('utf8');
  });
  child.on('close', (code, sig) => {
    if (code === 0) finish(undefined, { stdout: Buffer.concat(out), stderr: err });
    else {
      const why = err.trim().split('\n').slice(-3).join(' ').slice(0, 300);
      finish(
        new StageError(stage, 'bad_response', `${bin} exited with ${code ?? sig}${why ? `: ${why}` : ''}`, { engine }),
      );
    }
  });
  child.stdin.on('error', () => undefined); // EPIPE when the program exits without reading stdin
  child.stdin.end(opts.stdin ?? '');
  return child;
}
