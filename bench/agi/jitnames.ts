/**
 * Self instructions per command by function, from a callgrind output of window.ts (BENCH_AGI_VG_KEEP) whose
 * server ran with `--perf-basic-prof` (BENCH_AGI_SERVER_ARGS): callgrind names JIT-compiled code only by its
 * address, and the server's /tmp/perf-<pid>.map names it (the last entry logged for an address wins: code
 * space is reused). Also a split: `compiler` (TurboFan and the parser at work inside the window), `gc`
 * (collections and write barriers), `jit` (compiled JavaScript), `other` (builtins, Node's C++, libc).
 * Run: `node dist/bench/agi/jitnames.js <callgrind.out> <perf-PID.map> <commands in the window> [top=40]`;
 * two such listings compared name by name show what one server does per command that the other does not.
 */
import fs from 'fs';

type Range = [start: number, size: number, name: string];

export function readPerfMap(file: string): Range[] {
  const out: Range[] = [];
  for (const l of fs.readFileSync(file, 'utf8').split('\n')) {
    const m = /^([0-9a-f]+) ([0-9a-f]+) (.*)$/.exec(l);
    if (m) out.push([parseInt(m[1], 16), parseInt(m[2], 16), m[3]]);
  }
  return out;
}

function nameAt(ranges: Range[], a: number): string | undefined {
  for (let i = ranges.length - 1; i >= 0; i--) {
    const [s, n, name] = ranges[i];
    if (s <= a && a < s + n) return name;
  }
  return undefined;
}

/** Self cost (the first event, Ir) per function name; JIT addresses named from the perf map. */
export function selfCost(callgrindOut: string, ranges: Range[]): Map<string, number> {
  const names = new Map<string, string>();
  const byFn = new Map<string, number>();
  const name = (spec: string): string => {
    const m = /^\((\d+)\)(?: (.*))?$/.exec(spec);
    if (!m) return spec;
    if (m[2] !== undefined) names.set(m[1], m[2]);
    return names.get(m[1]) ?? spec;
  };
  let cur = '';
  let skip = false; // the cost line after `calls=` is the call's inclusive cost, not self
  for (const l of fs.readFileSync(callgrindOut, 'utf8').split('\n')) {
    if (l.startsWith('fn=')) cur = name(l.slice(3));
    else if (l.startsWith('cfn=')) name(l.slice(4));
    else if (l.startsWith('calls=')) skip = true;
    else if (/^[+\-*0-9]/.test(l)) {
      if (skip) {
        skip = false;
        continue;
      }
      byFn.set(cur, (byFn.get(cur) ?? 0) + (Number(l.trim().split(/\s+/)[1]) || 0));
    }
  }
  const out = new Map<string, number>();
  for (const [fn, c] of byFn) {
    const m = /^0x([0-9a-f]+)$/.exec(fn);
    const n = m ? `JIT ${nameAt(ranges, parseInt(m[1], 16)) ?? '?'}` : fn;
    out.set(n, (out.get(n) ?? 0) + c);
  }
  return out;
}

export function category(fn: string): 'compiler' | 'gc' | 'jit' | 'other' {
  if (/compiler::|Compil|Turbofan|Maglev|Pipeline|Bytecode|Parser|Scanner|AstNode|Zone/.test(fn)) return 'compiler';
  if (
    /Scaveng|Marking|Sweep|Heap::|heap::|Evacuat|MarkCompact|IteratePointers|RememberedSet|SlotSet|GCTracer|Pretenuring|MemoryChunk|RecordWrite/.test(
      fn,
    )
  )
    return 'gc';
  return fn.startsWith('JIT ') ? 'jit' : 'other';
}

if (require.main === module) {
  const [out, map, commandsArg, topArg] = process.argv.slice(2);
  const commands = Number(commandsArg);
  if (!out || !map || !(commands > 0)) {
    console.error('usage: jitnames.js <callgrind.out> <perf-PID.map> <commands> [top]');
    process.exit(2);
  }
  const cost = selfCost(out, readPerfMap(map));
  let total = 0;
  const split = { compiler: 0, gc: 0, jit: 0, other: 0 };
  for (const [fn, c] of cost) {
    total += c;
    split[category(fn)] += c;
  }
  const per = (c: number) => Math.round(c / commands);
  console.log(
    `per command: ${per(total)} (compiler ${per(split.compiler)}, gc ${per(split.gc)}, jit ${per(split.jit)}, other ${per(split.other)}; without the compiler ${per(total - split.compiler)})`,
  );
  for (const [fn, c] of [...cost].sort((a, b) => b[1] - a[1]).slice(0, Number(topArg ?? 40)))
    console.log(String(per(c)).padStart(7), fn.slice(0, 160));
}
