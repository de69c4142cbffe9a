/**
 * The far end of one FastAGI session over real loopback sockets: the test plays Asterisk. It sends the
 * environment block, then reads what the session writes (`lines`) and answers (`reply`, a line) or sends raw
 * bytes exactly as given, in one write (`send`: how the bytes are chunked is the test's choice).
 */
import net from 'net';
import { FastAgiSession, type SessionOptions } from '../../src/agi/session';
import { waitFor } from './wait';

export interface FarAgi {
  session: FastAgiSession;
  /** Lines the session wrote, in order. */
  lines: string[];
  /** One line to the session (a newline added). */
  reply(line: string): void;
  /** Raw bytes to the session, exactly as given (one write; a string is sent as UTF-8). */
  send(raw: string | Buffer): void;
  close(): Promise<void>;
}

export async function connectFarAgi(opts: SessionOptions = {}): Promise<FarAgi> {
  let session: FastAgiSession | undefined;
  const server = net.createServer((sock) => {
    session = new FastAgiSession(sock, opts);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  client.setNoDelay(true);
  const lines: string[] = [];
  let buf = '';
  client.setEncoding('utf8');
  client.on('data', (d: string) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  await new Promise<void>((r) => client.once('connect', () => r()));
  client.write('agi_network: yes\nagi_channel: PJSIP/trunk-1\nagi_uniqueid: 1.1\n\n');
  await waitFor(() => session?.ready ?? false, 5000, 'the environment block');
  return {
    session: session!,
    lines,
    reply: (l) => client.write(l + '\n'),
    send: (raw) => client.write(raw),
    close: async () => {
      client.destroy();
      session?.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
