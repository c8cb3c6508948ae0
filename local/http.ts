/**
 * The HTTP plumbing the Cloud Storage and Vertex AI emulators share: a loopback server that answers
 * `GET /` with `Ok` (readiness), request bodies read with a size cap, JSON answers, and errors in
 * Google's JSON shape (`{"error": {"code", "message", "status"?, "errors"?}}`).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** An answer in Google's error shape; `status` is the google.rpc code name, `reason` the JSON API's. */
export class HttpError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly detail: { status?: string; reason?: string } = {},
  ) {
    super(message);
  }
}

/** A route handler; it answers through `res`, or throws an {@link HttpError}. */
export type Handler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

/** A running loopback HTTP server. */
export interface HttpServer {
  readonly port: number;
  /** `127.0.0.1:PORT`. */
  readonly host: string;
  /** Stops listening and drops open connections. */
  close(): Promise<void>;
}

/** Serves `handler` on 127.0.0.1 (`port`, or a free one); `onUnexpected` sees non-HttpError failures. */
export async function serve(
  handler: Handler,
  options: {
    port?: number | undefined;
    onUnexpected?: (err: unknown, req: IncomingMessage) => void;
  },
): Promise<HttpServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const answer =
      (path === '/' || path === '') && req.method === 'GET'
        ? Promise.resolve(void res.writeHead(200, { 'content-type': 'text/plain' }).end('Ok'))
        : handler(req, res);
    answer.catch((err: unknown) => {
      if (!(err instanceof HttpError) && !req.destroyed) options.onUnexpected?.(err, req);
      sendError(req, res, err);
    });
  });
  // A large upload over a slow link must not hit Node's default 5-minute request timeout.
  server.requestTimeout = 0;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  return {
    port,
    host: `127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function sendError(req: IncomingMessage, res: ServerResponse, err: unknown): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const e =
    err instanceof HttpError
      ? err
      : new HttpError(500, `Internal error: ${err instanceof Error ? err.message : String(err)}`, {
          status: 'INTERNAL',
        });
  // An unread request body would otherwise be read and discarded before the next request.
  if (!req.complete) res.setHeader('connection', 'close');
  const { status, reason } = e.detail;
  sendJson(res, e.code, {
    error: {
      code: e.code,
      message: e.message,
      ...(status ? { status } : {}),
      ...(reason ? { errors: [{ message: e.message, domain: 'global', reason }] } : {}),
    },
  });
}

/** Answers `body` as JSON. */
export function sendJson(
  res: ServerResponse,
  code: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(code, {
    'content-type': 'application/json; charset=UTF-8',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/** Answers with no body. */
export function sendEmpty(
  res: ServerResponse,
  code: number,
  headers: Record<string, string> = {},
): void {
  res.writeHead(code, { 'content-length': 0, ...headers }).end();
}

/** The whole request body; a body over `max` bytes is a 413. */
export async function readBody(req: IncomingMessage, max = 16 * 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max)
      throw new HttpError(413, 'Request payload too large.', { status: 'INVALID_ARGUMENT' });
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** The body parsed as JSON (`{}` when empty); malformed JSON is a 400 INVALID_ARGUMENT. */
export async function readJson(req: IncomingMessage): Promise<unknown> {
  const text = (await readBody(req)).toString('utf8');
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new HttpError(
      400,
      `Invalid JSON payload received. ${err instanceof Error ? err.message : String(err)}`,
      { status: 'INVALID_ARGUMENT', reason: 'parseError' },
    );
  }
}

/** The raw path (undecoded: `.` and `..` segments kept as sent) and the query of a request. */
export function target(req: IncomingMessage): { path: string; query: URLSearchParams } {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return {
    path: q < 0 ? url : url.slice(0, q),
    query: new URLSearchParams(q < 0 ? '' : url.slice(q + 1)),
  };
}

/** A plain object (not null, not an array). */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
