/**
 * Fake-Asterisk load generator for bench/agi, run in its own process (forked by index.ts) so the
 * server under test has a core to itself. Each slot connects, sends an Asterisk-like environment
 * block, answers every command the server sends (GET VARIABLE -> `200 result=1 (42)`), and when the
 * server closes, reconnects, until the time is up. Commands are counted only inside the window.
 */
import net from 'net';

export interface LoadJob {
  port: number;
  concurrency: number;
  warmupMs: number;
  durationMs: number;
}

export interface LoadResult {
  commands: number;
  sessions: number;
  elapsedMs: number;
  errors: number;
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
    }, job.warmupMs);
    setTimeout(() => {
      counting = false;
      stop = true;
      const elapsedMs = performance.now() - t0;
      for (const s of live) s.destroy();
      resolve({ commands, sessions, elapsedMs, errors });
    }, job.warmupMs + job.durationMs);
  });
}

if (require.main === module && process.send) {
  process.on('message', (job: LoadJob) => {
    void runLoad(job).then((r) => process.send?.(r));
  });
  process.on('disconnect', () => process.exit(0));
}
