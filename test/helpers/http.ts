/** An express app on a free loopback port, and a JSON-aware request helper, for HTTP API tests. */
import http from 'http';
import type { AddressInfo } from 'net';
import type express from 'express';

export interface Srv {
  url: string;
  close(): Promise<void>;
}

export async function serve(app: express.Express): Promise<Srv> {
  const server = http.createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export interface Reply {
  status: number;
  body: any;
  headers: Headers;
}

/** One request; an object body is sent as JSON; the reply body is parsed as JSON when it is JSON. */
export async function request(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Reply> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    if (typeof body === 'string' || body instanceof FormData || body instanceof Uint8Array)
      init.body = body as BodyInit;
    else {
      init.body = JSON.stringify(body);
      (init.headers as Record<string, string>)['content-type'] ??= 'application/json';
    }
  }
  const r = await fetch(base + path, init);
  const text = await r.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: r.status, body: json, headers: r.headers };
}
