/**
 * The HTTP plumbing of the API, owned here rather than borrowed from the host (Node-RED's admin body
 * parser answered with an HTML stack before): bodies are read only after the route, the campaign and
 * the declared size were checked; JSON is parsed with our limit, UTF-8 only, at most MAX_DEPTH deep
 * and without NUL bytes (each refusal names the field); uploads are streamed to a temporary file
 * with every stream's 'error' handled; every error is `{error: "..."}` JSON, never HTML or a stack.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import { randomBytes } from 'crypto';
import { Transform, pipeline, type Readable } from 'stream';
import type { NextFunction, Request, Response } from 'express';
import Busboy from 'busboy';
import { errorMessage } from '../util/errors';
import { isStoreBusy, isStoreUnavailable } from '../store/outbox';
import { ApiError } from './errors';

export { ApiError };

const MB = 1024 * 1024;

export interface ApiLimits {
  /** Largest JSON body (default 10 MB: JSON contact arrays can be big). */
  jsonBytes: number;
  /** Largest CSV / multipart upload (default 50 MB). */
  uploadBytes: number;
}

export const DEFAULT_LIMITS: ApiLimits = { jsonBytes: 10 * MB, uploadBytes: 50 * MB };
/** Largest unread body drained after an early answer (bigger ones: the connection is closed). */
const DRAIN_MAX_BYTES = 64 * MB;
/** Deepest JSON nesting accepted (campaign settings are a flat-ish object). */
export const MAX_DEPTH = 32;

export const CSV_TYPES = [
  'text/csv',
  'text/plain',
  'application/csv',
  'text/comma-separated-values',
  'application/vnd.ms-excel',
  'text/tab-separated-values',
];

export function mediaType(req: Request): string {
  return String(req.headers['content-type'] ?? '')
    .split(';')[0]
    .trim()
    .toLowerCase();
}

export function isJsonType(t: string): boolean {
  return t === 'application/json' || t.endsWith('+json');
}

/** Async route handler whose rejections reach the error handler. */
export const h =
  (fn: (req: Request, res: Response) => Promise<unknown>) =>
  (req: Request, res: Response, next: NextFunction): void => {
    fn(req, res).catch(next);
  };

export function parseId(v: unknown, name: string): number {
  const s = typeof v === 'number' ? String(v) : v;
  if (typeof s !== 'string' || !/^\d{1,10}$/.test(s) || Number(s) < 1 || Number(s) > 2147483647) {
    throw new ApiError(
      400,
      `${name} must be a positive integer${v === undefined || v === '' ? ' (missing)' : `, got ${JSON.stringify(v).slice(0, 40)}`}`,
    );
  }
  return Number(s);
}

/** 413 from the Content-Length header alone, before a byte of the body is read. */
export function checkDeclaredLength(req: Request, limit: number): void {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit)
    throw new ApiError(413, `the request body is larger than the limit (${declared} > ${limit} bytes)`, {
      limit,
    });
}

function checkCharset(req: Request): void {
  const m = /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(String(req.headers['content-type'] ?? ''));
  if (m && !/^utf-?8$/i.test(m[1]) && !/^us-ascii$/i.test(m[1]))
    throw new ApiError(415, `unsupported charset "${m[1].slice(0, 30)}": send UTF-8`);
  const enc = String(req.headers['content-encoding'] ?? 'identity').toLowerCase();
  if (enc !== 'identity') throw new ApiError(415, `unsupported Content-Encoding "${enc.slice(0, 30)}"`);
}

/** Read the whole body (bounded). */
export function readBody(req: Request, limit: number): Promise<Buffer> {
  checkDeclaredLength(req, limit);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (err?: ApiError) => {
      if (done) return;
      done = true;
      req.off('data', onData);
      if (err) {
        req.resume(); // drop the rest; the error answer closes the connection
        reject(err);
      } else resolve(Buffer.concat(chunks, size));
    };
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > limit)
        return finish(new ApiError(413, `the request body is larger than the limit (${limit} bytes)`, { limit }));
      chunks.push(c);
    };
    req.on('data', onData);
    req.once('end', () => finish());
    req.once('error', (err) => finish(new ApiError(400, `the upload failed: ${errorMessage(err)}`)));
    req.once('aborted', () => finish(new ApiError(400, 'the upload was aborted')));
  });
}

/** Where a JSON value nests deeper than `max`, or holds a NUL byte: the path of the first such field. */
export function checkJsonShape(value: unknown, opts: { nul: boolean; maxDepth?: number }): void {
  const max = opts.maxDepth ?? MAX_DEPTH;
  const stack: Array<{ v: unknown; path: string; depth: number }> = [{ v: value, path: '', depth: 0 }];
  const name = (p: string) => (p ? `field "${p.length > 80 ? p.slice(0, 80) + '…' : p}"` : 'the body');
  while (stack.length) {
    const { v, path: p, depth } = stack.pop()!;
    if (typeof v === 'string') {
      if (opts.nul && v.includes('\u0000')) throw new ApiError(400, `${name(p)} contains a NUL byte`, { field: p });
      continue;
    }
    if (!v || typeof v !== 'object') continue;
    if (depth >= max)
      throw new ApiError(400, `${name(p)} is nested deeper than ${max} levels`, { field: p.slice(0, 200) });
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ v: v[i], path: `${p}[${i}]`, depth: depth + 1 });
    } else {
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        const kp = p ? `${p}.${k.slice(0, 60)}` : k.slice(0, 60);
        if (opts.nul && k.includes('\u0000')) throw new ApiError(400, `a key in ${name(p)} contains a NUL byte`);
        stack.push({ v: x, path: kp, depth: depth + 1 });
      }
    }
  }
}

/**
 * Parse a JSON body: UTF-8 only, within `limit`, an object or an array, bounded depth; `nul`
 * refuses NUL bytes anywhere (uploads report them per row instead). An empty body is `{}`.
 */
export async function readJson(req: Request, limit: number, opts: { nul: boolean }): Promise<unknown> {
  checkCharset(req);
  const raw = await readBody(req, limit);
  if (!raw.length) return {};
  const text = raw.toString('utf8').replace(/^\uFEFF/, '');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ApiError(400, `the body is not valid JSON: ${errorMessage(err).slice(0, 200)}`);
  }
  if (!value || typeof value !== 'object')
    throw new ApiError(400, `the body must be a JSON object or array, got ${value === null ? 'null' : typeof value}`);
  checkJsonShape(value, opts);
  return value;
}

/** An upload spooled to a temporary file: read it with `open()`, always `remove()` it. */
export interface SpooledUpload {
  file: string;
  bytes: number;
  /** Form fields (multipart) that came with the file. */
  fields: Record<string, string>;
  open(): Readable;
  remove(): void;
}

function tempFile(): string {
  return path.join(os.tmpdir(), `ai-dialer-upload-${process.pid}-${randomBytes(6).toString('hex')}.csv`);
}

function spooled(file: string, bytes: number, fields: Record<string, string>): SpooledUpload {
  return {
    file,
    bytes,
    fields,
    open: () => fs.createReadStream(file, { highWaterMark: 64 * 1024 }),
    remove: () => fs.rm(file, { force: true }, () => undefined),
  };
}

/** A counting pass-through that fails past `limit` bytes. */
function limiter(limit: number, what: string): Transform & { bytes: number } {
  const t = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      t.bytes += chunk.length;
      if (t.bytes > limit) cb(new ApiError(413, `${what} is larger than the limit (${limit} bytes)`, { limit }));
      else cb(null, chunk);
    },
  }) as Transform & { bytes: number };
  t.bytes = 0;
  return t;
}

/** Stream a text/csv body to a temporary file (bounded). */
export function spoolText(req: Request, limit: number): Promise<SpooledUpload> {
  checkCharset(req);
  checkDeclaredLength(req, limit);
  const file = tempFile();
  const count = limiter(limit, 'the upload');
  return new Promise((resolve, reject) => {
    // req is piped, not part of the pipeline: a refusal must leave the socket open for the answer
    const out = fs.createWriteStream(file, { mode: 0o600 });
    pipeline(count, out, (err) => {
      if (!err) return resolve(spooled(file, count.bytes, {}));
      req.unpipe(count);
      req.resume();
      fs.rm(file, { force: true }, () => undefined);
      reject(err instanceof ApiError ? err : new ApiError(400, `the upload failed: ${errorMessage(err)}`));
    });
    req.once('aborted', () => count.destroy(new ApiError(400, 'the upload was aborted')));
    req.once('error', (err) => count.destroy(new ApiError(400, `the upload failed: ${errorMessage(err)}`)));
    req.pipe(count);
  });
}

/**
 * Stream the first file part of a multipart/form-data body to a temporary file (bounded); other
 * parts become fields. A `csv` text field stands in for a file. Every stream has its error handler:
 * a body cut short (no closing boundary) is a 400, never an unhandled 'error'.
 */
export function spoolMultipart(req: Request, limit: number): Promise<SpooledUpload> {
  checkDeclaredLength(req, limit + 64 * 1024);
  return new Promise((resolve, reject) => {
    let bb: Busboy.Busboy;
    try {
      bb = Busboy({
        headers: req.headers,
        limits: { fileSize: limit, files: 1, fields: 50, fieldSize: 64 * 1024, parts: 60, headerPairs: 50 },
      });
    } catch (err) {
      reject(new ApiError(400, `bad multipart body: ${errorMessage(err)}`));
      return;
    }
    const fields: Record<string, string> = {};
    let file: string | undefined;
    let bytes = 0;
    let writing: Promise<void> | undefined;
    let failed = false;
    const fail = (e: ApiError) => {
      if (failed) return;
      failed = true;
      req.unpipe(bb);
      req.resume();
      bb.removeAllListeners('file');
      bb.on('error', () => undefined);
      if (file) fs.rm(file, { force: true }, () => undefined);
      reject(e);
    };
    bb.on('file', (_name, stream, info) => {
      stream.on('error', () => undefined); // reported through bb 'error' / pipeline below
      if (file || failed) {
        stream.resume();
        return;
      }
      file = tempFile();
      const out = fs.createWriteStream(file, { mode: 0o600 });
      stream.on('limit', () =>
        fail(
          new ApiError(
            413,
            `file ${JSON.stringify((info.filename ?? '').slice(0, 60))} is larger than the limit (${limit} bytes)`,
            { limit },
          ),
        ),
      );
      stream.on('data', (c: Buffer) => (bytes += c.length));
      writing = new Promise((res) =>
        pipeline(stream, out, (err) => {
          if (err) fail(new ApiError(400, `bad multipart body: ${errorMessage(err)}`));
          res();
        }),
      );
    });
    bb.on('field', (name, value, info) => {
      if (info.valueTruncated) return fail(new ApiError(413, `form field ${name.slice(0, 40)} is too large`));
      if (value.includes('\u0000') && name !== 'csv')
        return fail(new ApiError(400, `form field "${name.slice(0, 40)}" contains a NUL byte`, { field: name }));
      fields[name.slice(0, 100)] = value;
    });
    bb.on('partsLimit', () => fail(new ApiError(413, 'too many parts in the multipart body')));
    bb.on('filesLimit', () => undefined); // later files are skipped
    bb.on('fieldsLimit', () => fail(new ApiError(413, 'too many form fields')));
    bb.on('error', (err) => fail(new ApiError(400, `bad multipart body: ${errorMessage(err)}`)));
    bb.on('close', () => {
      void (writing ?? Promise.resolve()).then(() => {
        if (failed) return;
        if (file) return resolve(spooled(file, bytes, fields));
        if (typeof fields.csv === 'string') {
          const f = tempFile();
          fs.writeFile(f, fields.csv, { mode: 0o600 }, (err) =>
            err
              ? fail(new ApiError(500, `cannot store the upload: ${err.message}`))
              : resolve(spooled(f, fields.csv.length, fields)),
          );
          return;
        }
        fail(
          new ApiError(400, 'the multipart body has no file (send the CSV as a file part, e.g. -F file=@contacts.csv)'),
        );
      });
    });
    req.on('error', (err) => fail(new ApiError(400, `the upload failed: ${errorMessage(err)}`)));
    req.on('aborted', () => fail(new ApiError(400, 'the upload was aborted')));
    req.pipe(bb);
  });
}

/**
 * The error handler for everything under the API: JSON `{error}` with the right status, never HTML
 * or a stack. An answer given before the body was read closes the connection (so a refused 49 MB
 * upload is not read to keep the connection alive).
 */
export function apiErrorHandler(log: (line: string) => void) {
  return (err: unknown, req: Request, res: Response, next: NextFunction): void => {
    if (res.headersSent) return next(err);
    const e = err as { type?: string; status?: number; statusCode?: number; message?: string; limit?: number };
    let status = 500;
    let body: Record<string, unknown>;
    const code = e?.status ?? e?.statusCode;
    if (err instanceof ApiError) {
      status = err.status;
      body = { error: err.message, ...(err.details ?? {}) };
    } else if ((err as { name?: string })?.name === 'ImportError') {
      const ie = err as { code?: string; message: string };
      status = ie.code === 'campaign_not_found' ? 404 : 400;
      body = { error: ie.message };
    } else if (isStoreBusy(err)) {
      // the server is up, every connection of the pool busy: say so, and when to try again
      status = 503;
      res.set('Retry-After', '1');
      body = { error: 'the database is busy right now (no connection free); try again shortly', code: 'store_busy' };
    } else if (isStoreUnavailable(err)) {
      // the database is down for a moment: say so, and when to try again (writes wait in the outbox)
      status = 503;
      res.set('Retry-After', '5');
      body = { error: 'the database is unreachable right now; try again shortly', code: 'store_unavailable' };
    } else if (e?.type === 'entity.too.large') {
      status = 413;
      body = { error: `the request body is larger than the limit (${e.limit ?? '?'} bytes)` };
    } else if (e?.type === 'entity.parse.failed') {
      status = 400;
      body = { error: 'the body is not valid JSON' };
    } else if (e?.type === 'encoding.unsupported' || e?.type === 'charset.unsupported') {
      status = 415;
      body = { error: 'unsupported charset or encoding: send UTF-8' };
    } else if (typeof code === 'number' && code >= 400 && code < 500) {
      status = code;
      body = { error: String(e.message ?? 'bad request').slice(0, 200) };
    } else {
      log(`ai-dialer API: ${req.method} ${req.originalUrl.slice(0, 200)} failed: ${errorMessage(err)}`);
      body = { error: 'internal error (logged on the server)' };
    }
    // answered before the body was read: a body of sane size is drained (discarded, so the client
    // reads the answer); a huge one closes the connection
    if (!req.complete) {
      const declared = Number(req.headers['content-length']);
      if (!Number.isFinite(declared) || declared > DRAIN_MAX_BYTES) res.set('Connection', 'close');
      req.resume();
    }
    res.status(status).json(body);
  };
}
