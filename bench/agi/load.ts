/**
 * Fake-Asterisk load generator for bench/agi, run in its own process (forked by index.ts) so the
 * server under test has a core to itself. Each slot connects, sends an Asterisk-like environment
 * block, answers every command the server sends (GET VARIABLE -> `200 result=1 (42)`), and when the
 * server closes, reconnects, until the time is up. Commands are counted only inside the window; the
 * parent is told when the window starts and ends (`{ window }` messages) so that it can read the server
 * process's CPU time at the same moments, and the sockets are closed only when it says `{ release }`.
 */
import net from 'net';

export interface LoadJob {
  port: number;
  concurrency: number;
  warmupMs: number;
  durationMs: number;
  /** told when the counting window starts and ends (the server's CPU is read at those moments) */
  onWindow?: (mark: 'start' | 'end') => void;
}

export interface LoadResult {
  commands: number;
  sessions: number;
  elapsedMs: number;
  errors: number;
  /** closes the load's sockets (after the window) */
  release?: () => void;
}

const ENV =
  [
    'agi_network: yes',
    'agi_network_script: dialer',
    'agi_request: agi://127.0.0.1:4573/dialer',
    'agi_channel: Local/+12125550101@callees-00000006;1',
    'agi_language: en',
    'agi_type: Local',
    'agi_uniqueid: 1732486000.6',
    'agi_version: 22.10.1',
    'agi_callerid: +13105550000',
    'agi_calleridname: unknown',
    'agi_callingpres: 0',
    'agi_callingani2: 0',
    'agi_callington: 0',
    'agi_callingtns: 0',
    'agi_dnid: unknown',
    'agi_rdnis: unknown',
    'agi_context: ai-dialer',
    'agi_extension: s',
    'agi_priority: 1',
    'agi_enhanced: 0.0',
    'agi_accountcode: ',
    'agi_threadid: 140000000000001',
  ].join('\n') + '\n\n';

export function runLoad(job: LoadJob): Promise<LoadResult> {
  return new Promise((resolve) => {
    let counting = false;
    let stop = false;
    let commands = 0;
    let sessions = 0;
    let errors = 0;
    let t0 = 0;
    const live = new Set<net.Socket>();
    const slot = () => {
      if (stop) return;
      const sock = net.connect(job.port, '127.0.0.1');
      live.add(sock);
      sock.setNoDelay(true);
      sock.setEncoding('latin1');
      let buf = '';
      sock.on('connect', () => sock.write(ENV));
      sock.on('data', (d: string) => {
        buf = buf.length ? buf + d : d;
        let start = 0;
        let nl: number;
        let out = '';
        while ((nl = buf.indexOf('\n', start)) !== -1) {
          const line = buf.slice(start, nl);
          start = nl + 1;
          if (counting) commands++;
          if (line.startsWith('GET VARIABLE')) out += '200 result=1 (42)\n';
          else if (line.startsWith('HANGUP')) out += '200 result=1\n';
          else out += '510 Invalid or unknown command\n';
        }
        buf = start === buf.length ? '' : buf.slice(start);
        if (out) sock.write(out);
      });
      sock.on('error', () => {
        if (!stop) errors++;
      });
      sock.on('close', () => {
        live.delete(sock);
        if (counting) sessions++;
        if (!stop) setImmediate(slot);
      });
    };
    for (let i = 0; i < job.concurrency; i++) slot();
    setTimeout(() => {
      counting = true;
      t0 = performance.now();
      job.onWindow?.('start');
    }, job.warmupMs);
    setTimeout(() => {
      counting = false;
      const elapsedMs = performance.now() - t0;
      job.onWindow?.('end');
      // the sockets stay up (and answering) until the server's CPU for the window has been read
      resolve({
        commands,
        sessions,
        elapsedMs,
        errors,
        release: () => {
          stop = true;
          for (const s of live) s.destroy();
        },
      });
    }, job.warmupMs + job.durationMs);
  });
}

if (require.main === module && process.send) {
  let release: (() => void) | undefined;
  process.on('message', (m: LoadJob | { release: true }) => {
    if ('release' in m) {
      release?.();
      release = undefined;
      process.send?.({ released: true });
      return;
    }
    void runLoad({ ...m, onWindow: (mark) => process.send?.({ window: mark }) }).then(({ release: r, ...result }) => {
      release = r;
      process.send?.(result);
    });
  });
  process.on('disconnect', () => process.exit(0));
}
