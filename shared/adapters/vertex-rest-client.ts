/**
 * Vertex AI batch prediction jobs over REST with google-auth-library
 * (https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.batchPredictionJobs).
 * Regional, `global` and emulator endpoints; every failure mapped to PermanentError or
 * TransientError; every call bounded in time: one request by `timeoutMs`, a read with its retries
 * by `totalTimeoutMs`.
 */
import type { gaxios } from 'google-auth-library';
import { PermanentError, TransientError, type ErrorCode } from '../core/errors.js';
import type { VertexJobPage, VertexJobs } from '../ports.js';
import type { BatchJobRequest, VertexBatchJob } from '../core/vertex.js';
import { formatSeconds } from '../time-limit.js';
import { boundedRequest, retriedRead, type RequestClient } from './rest-call.js';

/** Default of {@link VertexClientOptions.timeoutMs}. */
export const DEFAULT_VERTEX_REQUEST_TIMEOUT_MS = 20_000;
/** Default of {@link VertexClientOptions.totalTimeoutMs}. */
export const DEFAULT_VERTEX_TOTAL_TIMEOUT_MS = 25_000;

export type { RequestClient };

/** Options of {@link createVertexClient}. */
export interface VertexClientOptions {
  /** Project id used in create and list paths. */
  project: string;
  /** An authorised client (a static-token OAuth2Client for emulators). */
  auth: RequestClient;
  /** `host:port` of an emulator (plain HTTP); unset in production. */
  emulatorHost?: string | undefined;
  /**
   * How long one request may wait for its answer (default {@link DEFAULT_VERTEX_REQUEST_TIMEOUT_MS}).
   * A create or a cancel is one request.
   */
  timeoutMs?: number;
  /**
   * How long a read (`get`, `list`) may take with its retries of 429, 5xx and unanswered requests
   * (default {@link DEFAULT_VERTEX_TOTAL_TIMEOUT_MS}).
   */
  totalTimeoutMs?: number;
}

/** The base URL of the Vertex AI API for a location. */
export function vertexEndpoint(location: string, emulatorHost?: string): string {
  if (emulatorHost) return `http://${emulatorHost}`;
  if (location === 'global') return 'https://aiplatform.googleapis.com';
  return `https://${location}-aiplatform.googleapis.com`;
}

/** The location inside a job resource name. */
export function locationOfJob(name: string): string {
  const location = /^projects\/[^/]+\/locations\/([^/]+)\//.exec(name)?.[1];
  if (!location) {
    throw new PermanentError('VERTEX.NOT_FOUND', `not a batch prediction job name: ${name}`);
  }
  return location;
}

/** Reads are retried on these answers (and on no answer at all). */
const isRetriedStatus = (status: number): boolean => status === 429 || status >= 500;

/** Creates the Vertex client. */
export function createVertexClient(options: VertexClientOptions): VertexJobs {
  const timeoutMs = options.timeoutMs ?? DEFAULT_VERTEX_REQUEST_TIMEOUT_MS;
  const totalMs = Math.max(timeoutMs, options.totalTimeoutMs ?? DEFAULT_VERTEX_TOTAL_TIMEOUT_MS);
  const base = (location: string): string => vertexEndpoint(location, options.emulatorHost);
  const collection = (location: string): string =>
    `${base(location)}/v1/projects/${encodeURIComponent(options.project)}/locations/${location}/batchPredictionJobs`;

  /** One request, aborted (and rejected) after `ms`. Never retried by the HTTP client. */
  const once = <T>(opts: gaxios.GaxiosOptions, ms: number, what: string): Promise<T> =>
    boundedRequest<T>(
      options.auth,
      opts,
      ms,
      () =>
        new TransientError(
          'VERTEX.UNAVAILABLE',
          `Vertex AI ${what}: no answer within ${formatSeconds(ms)}`,
        ),
      (err) => mapVertexError(err, what),
    );

  /**
   * A read: retried with backoff on 429, 5xx and no answer, each attempt given at most
   * `timeoutMs`, the whole sequence at most `totalMs`. (A create is never retried here: it has no
   * request id, a retry could start a second billed job; the submit use case looks for the job by
   * label instead.)
   */
  const read = <T>(opts: gaxios.GaxiosOptions, what: string): Promise<T> =>
    retriedRead(
      (ms) => once<T>(opts, ms, what),
      { timeoutMs, totalMs },
      (err) => {
        const status = (err as { status?: number }).status;
        return err instanceof TransientError && (status === undefined || isRetriedStatus(status));
      },
    );

  return {
    create: async (location, request: BatchJobRequest, { notAfter } = {}) => {
      // Not sent once the caller's claim may have run out; never given longer than until then.
      const left = notAfter ? notAfter.getTime() - Date.now() : timeoutMs;
      if (left <= 0) {
        throw new TransientError(
          'DEADLINE.EXCEEDED',
          'Vertex AI create batch prediction job: not sent, the claim on the input ran out first',
        );
      }
      return once<VertexBatchJob>(
        { url: collection(location), method: 'POST', data: request },
        Math.min(timeoutMs, left),
        'create batch prediction job',
      );
    },

    get: async (name) =>
      read<VertexBatchJob>(
        { url: `${base(locationOfJob(name))}/v1/${name}`, method: 'GET' },
        `get ${name}`,
      ),

    list: async (location, { filter, pageSize, pageToken }): Promise<VertexJobPage> => {
      const params: Record<string, string> = {};
      if (filter) params.filter = filter;
      if (pageSize) params.pageSize = String(pageSize);
      if (pageToken) params.pageToken = pageToken;
      const data = await read<{ batchPredictionJobs?: VertexBatchJob[]; nextPageToken?: string }>(
        { url: collection(location), method: 'GET', params },
        'list batch prediction jobs',
      );
      return {
        jobs: data.batchPredictionJobs ?? [],
        nextPageToken: data.nextPageToken || undefined,
      };
    },

    cancel: async (name) => {
      await once<unknown>(
        { url: `${base(locationOfJob(name))}/v1/${name}:cancel`, method: 'POST', data: {} },
        timeoutMs,
        `cancel ${name}`,
      );
    },
  };
}

/** Maps an HTTP failure to the error hierarchy: 429/5xx/network → transient; 400/403/404 → permanent. */
export function mapVertexError(err: unknown, what: string): Error {
  if (err instanceof PermanentError || err instanceof TransientError) return err;
  const gaxios = err as Partial<gaxios.GaxiosError> & { status?: number };
  const status = gaxios.response?.status ?? gaxios.status;
  const body = gaxios.response?.data as
    { error?: { message?: string; status?: string } } | undefined;
  const detail = body?.error?.message ?? (err instanceof Error ? err.message : String(err));
  const rpcStatus = body?.error?.status;
  const message = `Vertex AI ${what}: ${status ? `HTTP ${status} ` : ''}${rpcStatus ? `${rpcStatus}: ` : ''}${detail}`;
  const opts = { cause: err, ...(status ? { status } : {}) };
  if (status === undefined) return new TransientError('VERTEX.UNAVAILABLE', message, opts);
  if (status === 429) return new TransientError('VERTEX.RESOURCE_EXHAUSTED', message, opts);
  if (status >= 500 || status === 401 || status === 408) {
    return new TransientError('VERTEX.UNAVAILABLE', message, opts);
  }
  if (status === 400 && rpcStatus === 'FAILED_PRECONDITION' && /provision/i.test(detail)) {
    // First use of Vertex in a project: its service agents are still being created.
    return new TransientError('VERTEX.UNAVAILABLE', message, opts);
  }
  const code: ErrorCode =
    status === 403
      ? 'VERTEX.PERMISSION_DENIED'
      : status === 404
        ? 'VERTEX.NOT_FOUND'
        : status === 400
          ? 'VERTEX.INVALID_ARGUMENT'
          : 'VERTEX.UNKNOWN';
  return new PermanentError(code, message, opts);
}
