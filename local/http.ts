/**
 * The HTTP plumbing the Cloud Storage and Vertex AI emulators share: a loopback server that answers
 * `GET /` with `Ok` (readiness), request bodies read with a size cap, JSON answers, and errors in
 * Google's JSON shape: `{"error": {"code", "message", "status"?, "errors"?: [{"reason", …}]}}`.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** An error answer; `status` is the google.rpc code name (Vertex), `reason` the JSON API's (Storage). */
export class HttpError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly detail: { status?: string; reason?: string } = {},
  ) {
    super(message);
  }
}

/**
 * Serves `handler` on 127.0.0.1 (`port`, or a free one) until `close()`, which also drops open
 * connections; `onUnexpected` sees the errors that are not an HttpError.
 */
export async function serve(
  handler: (req: IncomingMessage, res: ServerResponse) => Promise<void>,
  options: { port?: number; onUnexpected?: (err: unknown, req: IncomingMessage) => void },
): Promise<{ port: number; host: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    const ready = req.method === 'GET' && /^\/?(\?|$)/.test(req.url ?? '');
    const answer = ready ? Promise.resolve(void res.end('Ok')) : handler(req, res);
    answer.catch((err: unknown) => {
      if (!(err instanceof HttpError) && !req.destroyed) options.onUnexpected?.(err, req);
      if (res.headersSent) return void res.destroy();
      const e =
        err instanceof HttpError ? err : new HttpError(500, `Internal error: ${String(err)}`);
      const { status = e.code === 500 ? 'INTERNAL' : undefined, reason } = e.detail;
      // An unread request body would otherwise be read and discarded before the next request.
      if (!req.complete) res.setHeader('connection', 'close');
      sendJson(res, e.code, {
        error: {
          code: e.code,
          message: e.message,
          ...(status ? { status } : {}),
          ...(reason ? { errors: [{ message: e.message, domain: 'global', reason }] } : {}),
        },
      });
    });
  });
  // A large upload over a slow link must not hit Node's default 5-minute request timeout.
  server.requestTimeout = 0;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject).listen(options.port ?? 0, '127.0.0.1', () => {
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

/** Answers `body` as JSON. */
export function sendJson(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, {
    'content-type': 'application/json; charset=UTF-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

/** The whole request body; more than `max` bytes is a 413. */
export async function readBody(req: IncomingMessage, max = 16 * 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    if ((size += chunk.length) > max) {
      throw new HttpError(413, 'Request payload too large.', { status: 'INVALID_ARGUMENT' });
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** The body parsed as JSON (`{}` when empty); malformed JSON is a 400. */
export async function readJson(req: IncomingMessage): Promise<unknown> {
  const text = (await readBody(req)).toString('utf8');
  try {
    return text.trim() === '' ? {} : (JSON.parse(text) as unknown);
  } catch (err) {
    const message = `Invalid JSON payload received. ${String(err)}`;
    throw new HttpError(400, message, { status: 'INVALID_ARGUMENT', reason: 'parseError' });
  }
}

/** The raw path (undecoded, `.` and `..` segments kept as sent) and the query of a request. */
export function target(req: IncomingMessage): { path: string; query: URLSearchParams } {
  const [path = '/', query = ''] = (req.url ?? '/').split(/\?(.*)/s);
  return { path, query: new URLSearchParams(query) };
}

/** A plain object (not null, not an array). */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
