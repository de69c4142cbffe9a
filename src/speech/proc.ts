/**
 * Run an engine's command-line program (espeak-ng, piper): no shell, text on stdin (never in argv,
 * so text cannot become an option), a deadline that kills the process, output size cap, and
 * failures mapped to StageError (not_installed, timeout, bad_response).
 */
import { spawn } from 'child_process';
import { StageError, type Stage } from '../util/errors';

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
  const maxBytes = opts.maxBytes ?? 64 * 1024 * 1024;
  return new Promise<RunResult>((resolve, reject) => {
    let settled = false;
    const out: Buffer[] = [];
    let outSize = 0;
    let err = '';
    const child = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env, windowsHide: true });
    const finish = (e?: StageError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (e) {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        reject(e);
      } else resolve({ stdout: Buffer.concat(out), stderr: err });
    };
    const timer = setTimeout(() => finish(new StageError(stage, 'timeout', `${bin} did not finish within ${opts.timeoutMs} ms`, { engine })), opts.timeoutMs);
    const onAbort = () => finish(new StageError(stage, 'network', `${bin} aborted`, { engine }));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', (e: Error & { code?: string }) => {
      if (e.code === 'ENOENT') finish(new StageError(stage, 'not_installed', `${bin} not found (is it installed and on the PATH?)`, { engine, cause: e }));
      else if (e.code === 'EACCES') finish(new StageError(stage, 'not_installed', `${bin} is not executable`, { engine, cause: e }));
      else finish(new StageError(stage, 'bad_response', `${bin}: ${e.message}`, { engine, cause: e }));
    });
    child.stdout.on('data', (c: Buffer) => {
      outSize += c.length;
      if (outSize > maxBytes) return finish(new StageError(stage, 'bad_response', `${bin} wrote more than ${maxBytes} bytes`, { engine }));
      out.push(c);
    });
    child.stderr.on('data', (c: Buffer) => {
      if (err.length < 4000) err += c.toString('utf8');
    });
    child.on('close', (code, sig) => {
      if (code === 0) finish();
      else {
        const why = err.trim().split('\n').slice(-3).join(' ').slice(0, 300);
        finish(new StageError(stage, 'bad_response', `${bin} exited with ${code ?? sig}${why ? `: ${why}` : ''}`, { engine }));
      }
    });
    child.stdin.on('error', () => undefined); // EPIPE when the program exits without reading stdin
    child.stdin.end(opts.stdin ?? '');
  });
}
