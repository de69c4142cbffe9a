/**
 * A small HTTP client for the engines (speech and LLM): one request with a hard deadline covering
 * connect, headers and body, a response size cap, abort support, and failures mapped to StageError
 * (network, timeout, unauthorized, bad_response). Built on node:http/https so it behaves the same
 * in every runtime Node-RED runs on.
 */
import http from 'http';
import https from 'https';
import { randomBytes } from 'crypto';
import { StageError, type Stage } from '../util/errors';

export interface HttpRequest {
  url: string;
  method?: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  /** Deadline for the whole exchange, ms. */
  timeoutMs: number;
  stage: Stage;
  engine: string;
  /** Largest response body accepted (default 32 MiB). */
  maxBytes?: number;
  signal?: AbortSignal;
}

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** Join a base URL (e.g. `http://host:8000/v1`) and a path (`/audio/speech`) without doubling slashes. */
export function joinUrl(base: string, path: string): string {
  return base.replace(/\/+$/, '') + '/' + path.replace(/^\/+/, '');
}

/** Validate an engine base URL: http(s) only; a clear not_configured error otherwise. */
export function checkBaseUrl(base: string | undefined, stage: Stage, engine: string, what = 'base URL'): string {
  if (!base || !base.trim()) throw new StageError(stage, 'not_configured', `no ${what} set`, { engine });
  let u: URL;
  try {
    u = new URL(base.trim());
  } catch {
    throw new StageError(stage, 'not_configured', `${what} is not a URL`, { engine });
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new StageError(stage, 'not_configured', `${what} must start with http:// or https://`, { engine });
  }
  return base.trim();
}

/** URL for messages and logs: no credentials, no query string. */
export function redactedUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(invalid URL)';
  }
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'ECONNABORTED',
]);

export function httpRequest(req: HttpRequest): Promise<HttpResponse> {
  const chunks: Buffer[] = [];
  return httpStream({ ...req, onData: (c) => void chunks.push(c) }).then((r) => ({
    ...r,
    body: Buffer.concat(chunks),
  }));
}

export interface HttpStreamRequest extends HttpRequest {
  /** Called with the status and headers of a 2xx answer, before its first body chunk. */
  onResponse?: (status: number, headers: http.IncomingHttpHeaders) => void;
  /** Each body chunk of a 2xx answer as it arrives (error answers are collected for the message instead). */
  onData: (chunk: Buffer) => void;
  /** Longest wait for the next body chunk once the answer started, ms (default: no limit beyond timeoutMs). */
  idleMs?: number;
}

/**
 * One request whose answer body is handed over chunk by chunk (server-sent events, streamed audio), with
 * the same deadline, size cap, abort and typed failures as `httpRequest`. Resolves at the end of the body.
 * A callback that throws ends the request with that error.
 */
export function httpStream(req: HttpStreamRequest): Promise<{ status: number; headers: http.IncomingHttpHeaders }> {
  const { stage, engine } = req;
  const maxBytes = req.maxBytes ?? 32 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    let url: URL;
    try {
      url = new URL(req.url);
    } catch {
      reject(new StageError(stage, 'not_configured', `invalid URL ${redactedUrl(req.url)}`, { engine }));
      return;
    }
    const lib = url.protocol === 'https:' ? https : http;
    const body =
      req.body === undefined ? undefined : Buffer.isBuffer(req.body) ? req.body : Buffer.from(req.body, 'utf8');
    const headers: Record<string, string | number> = { ...(req.headers ?? {}) };
    if (body) headers['Content-Length'] = body.length;
    let settled = false;
    let idle: NodeJS.Timeout | undefined;
    const finish = (err: unknown, res?: { status: number; headers: http.IncomingHttpHeaders }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (idle) clearTimeout(idle);
      req.signal?.removeEventListener('abort', onAbort);
      if (err) {
        r.destroy();
        reject(err);
      } else resolve(res as { status: number; headers: http.IncomingHttpHeaders });
    };
    const where = redactedUrl(req.url);
    const timer = setTimeout(
      () =>
        finish(
          new StageError(stage, 'timeout', `no complete answer from ${where} within ${req.timeoutMs} ms`, { engine }),
        ),
      req.timeoutMs,
    );
    const armIdle = () => {
      if (!req.idleMs) return;
      if (idle) clearTimeout(idle);
      idle = setTimeout(
        () => finish(new StageError(stage, 'timeout', `answer from ${where} stalled for ${req.idleMs} ms`, { engine })),
        req.idleMs,
      );
    };
    const onAbort = () => finish(new StageError(stage, 'network', `request to ${where} aborted`, { engine }));
    const r = lib.request(url, { method: req.method ?? (body ? 'POST' : 'GET'), headers, agent: false }, (res) => {
      const status = res.statusCode ?? 0;
      const ok = status >= 200 && status <= 299;
      const errChunks: Buffer[] = [];
      let size = 0;
      try {
        if (ok) req.onResponse?.(status, res.headers);
      } catch (err) {
        return finish(err);
      }
      armIdle();
      res.on('data', (c: Buffer) => {
        if (settled) return;
        size += c.length;
        if (size > maxBytes) {
          finish(
            new StageError(stage, 'bad_response', `answer from ${where} larger than ${maxBytes} bytes`, { engine }),
          );
          return;
        }
        armIdle();
        if (!ok) {
          errChunks.push(c);
          return;
        }
        try {
          req.onData(c);
        } catch (err) {
          finish(err);
        }
      });
      res.on('end', () => {
        const errBody = Buffer.concat(errChunks);
        if (status === 401 || status === 403) {
          finish(
            new StageError(
              stage,
              'unauthorized',
              `HTTP ${status} from ${where} (check the API key)${detail(errBody)}`,
              { engine },
            ),
          );
        } else if (!ok) {
          finish(new StageError(stage, 'bad_response', `HTTP ${status} from ${where}${detail(errBody)}`, { engine }));
        } else finish(undefined, { status, headers: res.headers });
      });
      res.on('error', (err) => finish(mapNetErr(err, stage, engine, where)));
      res.on('aborted', () =>
        finish(new StageError(stage, 'network', `connection to ${where} dropped mid-answer`, { engine })),
      );
    });
    r.on('error', (err) => finish(mapNetErr(err, stage, engine, where)));
    if (req.signal) {
      if (req.signal.aborted) {
        onAbort();
        return;
      }
      req.signal.addEventListener('abort', onAbort, { once: true });
    }
    r.end(body);
  });
}

function mapNetErr(err: Error & { code?: string }, stage: Stage, engine: string, where: string): StageError {
  const code = err.code ?? '';
  const kind = NETWORK_CODES.has(code) || code.startsWith('E') ? 'network' : 'bad_response';
  return new StageError(stage, kind, `cannot reach ${where}: ${code || err.message}`, { engine, cause: err });
}

/** First bytes of an error body, one line, for error messages (server error texts help the user). */
function detail(body: Buffer): string {
  if (!body.length) return '';
  let text = body.subarray(0, 300).toString('utf8');
  try {
    const j = JSON.parse(body.toString('utf8')) as {
      error?: { message?: string } | string;
      detail?: unknown;
      message?: string;
    };
    const m =
      typeof j.error === 'string'
        ? j.error
        : (j.error?.message ?? j.message ?? (typeof j.detail === 'string' ? j.detail : undefined));
    if (m) text = m;
  } catch {
    /* not JSON */
  }
  return ': ' + text.replace(/\s+/g, ' ').trim().slice(0, 200);
}

/** Parse a JSON body or fail with a typed bad_response. */
export function parseJsonBody<T = unknown>(res: HttpResponse, stage: Stage, engine: string): T {
  try {
    return JSON.parse(res.body.toString('utf8')) as T;
  } catch {
    throw new StageError(
      stage,
      'bad_response',
      `answer is not JSON: ${res.body.subarray(0, 80).toString('utf8').replace(/\s+/g, ' ')}`,
      { engine },
    );
  }
}

export interface MultipartField {
  name: string;
  value: string | Buffer;
  filename?: string;
  contentType?: string;
}

/** Encode multipart/form-data (RFC 7578). Names and filenames are quoted with CR/LF and quotes refused. */
export function encodeMultipart(fields: MultipartField[]): { body: Buffer; contentType: string } {
  const boundary = '----aidialer' + randomBytes(12).toString('hex');
  const parts: Buffer[] = [];
  const q = (s: string) => {
    if (/["\r\n]/.test(s))
      throw new Error(`multipart name/filename may not contain quotes or newlines: ${JSON.stringify(s)}`);
    return `"${s}"`;
  };
  for (const f of fields) {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name=${q(f.name)}`;
    if (f.filename !== undefined) head += `; filename=${q(f.filename)}`;
    head += '\r\n';
    if (f.contentType) head += `Content-Type: ${f.contentType}\r\n`;
    head += '\r\n';
    parts.push(
      Buffer.from(head, 'utf8'),
      Buffer.isBuffer(f.value) ? f.value : Buffer.from(f.value, 'utf8'),
      Buffer.from('\r\n'),
    );
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(parts), contentType: `multipart/form-data; boundary=${boundary}` };
}

/** Authorization header for an API key, when one is set. */
export function bearer(apiKey: string | undefined): Record<string, string> {
  return apiKey ? { Authorization: `Bearer ${apiKey}` } : {};
}
