/** Body readers the route modules share: a JSON-only body, and an upload (CSV, multipart or JSON list). */
import type { Request } from 'express';
import { ApiError } from '../errors';
import { CSV_TYPES, checkDeclaredLength, isJsonType, mediaType, readJson, spoolMultipart, spoolText } from '../http';
import type { ApiContext } from '../context';
import type { ImportInput } from '../../campaign/import';

/** A JSON body (write routes other than uploads): NUL bytes and deep nesting refused. */
export async function jsonBody(req: Request, ctx: ApiContext): Promise<unknown> {
  const t = mediaType(req);
  if (t && !isJsonType(t)) throw new ApiError(415, `send JSON (Content-Type: application/json), got ${t.slice(0, 60)}`);
  return readJson(req, ctx.limits.jsonBytes, { nul: true });
}

export interface Upload {
  /** What the importer reads: a stream of the spooled file, or a JSON list. */
  data: ImportInput;
  /** Other form fields / JSON keys (campaignId, country, reason...). */
  fields: Record<string, unknown>;
  /** Remove the temporary file (always call). */
  done(): void;
}

/** Check the content type and declared size of an upload without reading it. */
export function checkUpload(req: Request, ctx: ApiContext): void {
  const t = mediaType(req);
  if (isJsonType(t)) return checkDeclaredLength(req, ctx.limits.jsonBytes);
  if (t === 'multipart/form-data' || CSV_TYPES.includes(t)) return checkDeclaredLength(req, ctx.limits.uploadBytes);
  throw new ApiError(
    415,
    `send the list as text/csv, multipart/form-data (a file part) or application/json${t ? `, not ${t.slice(0, 60)}` : ' (no Content-Type given)'}`,
  );
}

/** Read an upload: CSV text or a multipart file (spooled to a temporary file), or JSON. */
export async function readUpload(req: Request, ctx: ApiContext): Promise<Upload> {
  checkUpload(req, ctx);
  const t = mediaType(req);
  if (isJsonType(t)) {
    const body = await readJson(req, ctx.limits.jsonBytes, { nul: false });
    const none = () => undefined;
    if (Array.isArray(body)) return { data: body, fields: {}, done: none };
    const o = body as Record<string, unknown>;
    const list = o.contacts ?? o.numbers ?? o.items;
    if (Array.isArray(list)) return { data: list, fields: o, done: none };
    if (typeof o.csv === 'string') return { data: o.csv, fields: o, done: none };
    if (o.phone !== undefined) return { data: [o], fields: o, done: none };
    throw new ApiError(
      400,
      'JSON body must be an array, or an object with "contacts"/"numbers" (array), "csv" (text) or "phone"',
    );
  }
  const up =
    t === 'multipart/form-data'
      ? await spoolMultipart(req, ctx.limits.uploadBytes)
      : await spoolText(req, ctx.limits.uploadBytes);
  const stream = up.open();
  return {
    data: stream,
    fields: up.fields,
    done: () => {
      stream.destroy();
      up.remove();
    },
  };
}
