/**
 * WebRTC voice activity detection: libfvad (the VAD of the WebRTC project, as a C library) compiled to
 * WebAssembly, from the npm package `@echogarden/fvad-wasm` (pinned to an exact version in package.json).
 *
 * Why we instantiate the package's `fvad.wasm` ourselves instead of importing its `fvad.js` glue: the glue
 * is an ES module that reads `import.meta.url`, which neither our CommonJS build nor Jest can load without
 * experimental flags. The binary itself needs only two imports (an assert hook and the heap-resize hook)
 * and exports libfvad's C functions under minified names. The names below belong to version 0.2.0; on load
 * each export is checked (kind and arity) and the detector is probed with silence and a tone, so a package
 * update that moves the names fails loudly at the first call instead of detecting nothing.
 *
 * One WebAssembly instance serves every detector in the process (each `fvad_new` is ~4 KB of state in its
 * heap); calls are synchronous, so sharing one sample buffer is safe.
 */
import fs from 'fs';
import { resolveOptional } from '../util/optional';

/** libfvad aggressiveness: 0 (quality, most permissive) .. 3 (very aggressive, fewest false positives). */
export type VadMode = 0 | 1 | 2 | 3;

interface FvadExports {
  memory: WebAssembly.Memory;
  ctors: () => void;
  fvadNew: () => number;
  malloc: (n: number) => number;
  fvadReset: (h: number) => void;
  fvadFree: (h: number) => void;
  setMode: (h: number, mode: number) => number;
  setSampleRate: (h: number, rate: number) => number;
  process: (h: number, ptr: number, len: number) => number;
}

/** Minified export names of @echogarden/fvad-wasm 0.2.0, with the arity each must have. */
const EXPORTS: Record<Exclude<keyof FvadExports, 'memory'>, [string, number]> = {
  ctors: ['d', 0],
  fvadNew: ['e', 0],
  malloc: ['f', 1],
  fvadReset: ['g', 1],
  fvadFree: ['h', 1],
  setMode: ['j', 2],
  setSampleRate: ['k', 2],
  process: ['l', 3],
};

/** Largest frame we process: 30 ms at 48 kHz. */
const MAX_SAMPLES = 1440;

interface Runtime {
  x: FvadExports;
  /** Sample buffer in the WASM heap (MAX_SAMPLES int16). */
  buf: number;
}

let loading: Promise<Runtime> | undefined;

/** Where libfvad's WASM is; a MissingPackageError (naming the package to install) when it is not installed. */
export function vadWasmPath(): string {
  // an optional dependency (src/util/optional.ts): a clear error naming it when it is not installed
  return resolveOptional('@echogarden/fvad-wasm', '@echogarden/fvad-wasm/fvad.wasm');
}

async function load(): Promise<Runtime> {
  const bytes = await fs.promises.readFile(vadWasmPath());
  const heap: { memory?: WebAssembly.Memory } = {};
  const imports = {
    a: {
      // __assert_fail(condition, file, line, function)
      a: () => {
        throw new Error('libfvad assertion failed');
      },
      // emscripten_resize_heap(requestedBytes): grow the memory, 1 on success
      b: (requested: number) => {
        const memory = heap.memory;
        if (!memory) return 0;
        const have = memory.buffer.byteLength;
        if (requested <= have) return 1;
        try {
          memory.grow(Math.ceil((requested - have) / 65536));
          return 1;
        } catch {
          return 0;
        }
      },
    },
  };
  const { instance } = await WebAssembly.instantiate(bytes, imports);
  const e = instance.exports as Record<string, unknown>;
  const mem = e.c;
  if (!(mem instanceof WebAssembly.Memory)) throw new Error('fvad.wasm: unexpected exports (memory not at "c")');
  heap.memory = mem;
  const x = { memory: mem } as FvadExports;
  for (const [key, [name, arity]] of Object.entries(EXPORTS)) {
    const f = e[name];
    if (typeof f !== 'function' || f.length !== arity)
      throw new Error(`fvad.wasm: export "${name}" is not the ${key} function this loader expects (package version?)`);
    (x as unknown as Record<string, unknown>)[key] = f;
  }
  x.ctors();
  const buf = x.malloc(MAX_SAMPLES * 2);
  if (!buf) throw new Error('fvad.wasm: cannot allocate the sample buffer');
  const rt: Runtime = { x, buf };
  selfTest(rt);
  return rt;
}

/** Silence must be unvoiced and an invalid frame length an error, or the export map is wrong. */
function selfTest(rt: Runtime): void {
  const h = rt.x.fvadNew();
  try {
    if (!h || rt.x.setSampleRate(h, 8000) !== 0 || rt.x.setMode(h, 2) !== 0)
      throw new Error('fvad.wasm: self-test failed (init)');
    const silent = run(rt, h, new Int16Array(160));
    const badLength = run(rt, h, new Int16Array(100));
    if (silent !== 0 || badLength !== -1) throw new Error('fvad.wasm: self-test failed (process)');
  } finally {
    rt.x.fvadFree(h);
  }
}

function run(rt: Runtime, handle: number, frame: Int16Array): number {
  const n = Math.min(frame.length, MAX_SAMPLES);
  new Int16Array(rt.x.memory.buffer, rt.buf, n).set(n === frame.length ? frame : frame.subarray(0, n));
  return rt.x.process(handle, rt.buf, n);
}

function runtime(): Promise<Runtime> {
  if (!loading) {
    loading = load();
    loading.catch(() => {
      loading = undefined;
    });
  }
  return loading;
}

/** One voice activity detector (one per call: it carries state across frames). */
export class Vad {
  private handle: number;
  private readonly rt: Runtime;
  readonly sampleRate: number;
  readonly mode: VadMode;

  private constructor(rt: Runtime, handle: number, sampleRate: number, mode: VadMode) {
    this.rt = rt;
    this.handle = handle;
    this.sampleRate = sampleRate;
    this.mode = mode;
  }

  /** A detector for `sampleRate` (8000, 16000, 32000 or 48000) at aggressiveness `mode` (default 3). */
  static async create(opts: { sampleRate?: number; mode?: VadMode } = {}): Promise<Vad> {
    const rt = await runtime();
    const sampleRate = opts.sampleRate ?? 8000;
    const mode = opts.mode ?? 3;
    const h = rt.x.fvadNew();
    if (!h) throw new Error('fvad: out of memory');
    if (rt.x.setSampleRate(h, sampleRate) !== 0) {
      rt.x.fvadFree(h);
      throw new RangeError(`VAD sample rate must be 8000, 16000, 32000 or 48000 (got ${sampleRate})`);
    }
    if (rt.x.setMode(h, mode) !== 0) {
      rt.x.fvadFree(h);
      throw new RangeError(`VAD mode must be 0..3 (got ${mode})`);
    }
    return new Vad(rt, h, sampleRate, mode);
  }

  /** True when the frame (10, 20 or 30 ms of 16-bit mono samples) holds speech. */
  isSpeech(frame: Int16Array): boolean {
    if (!this.handle) throw new Error('VAD is closed');
    const r = run(this.rt, this.handle, frame);
    if (r < 0)
      throw new RangeError(`VAD frame must be 10, 20 or 30 ms (got ${frame.length} samples at ${this.sampleRate} Hz)`);
    return r === 1;
  }

  /** Forget the history (a new call or a new turn). */
  reset(): void {
    if (!this.handle) return;
    this.rt.x.fvadReset(this.handle);
    this.rt.x.setSampleRate(this.handle, this.sampleRate);
    this.rt.x.setMode(this.handle, this.mode);
  }

  /** Free the detector's state in the shared heap. Idempotent. */
  close(): void {
    if (!this.handle) return;
    this.rt.x.fvadFree(this.handle);
    this.handle = 0;
  }
}
