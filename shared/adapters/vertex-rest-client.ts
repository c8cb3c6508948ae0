/**
 * Vertex AI batch prediction jobs over REST with google-auth-library (FACTS.md). Regional,
 * `global` and emulator endpoints; every failure mapped to PermanentError or TransientError.
 */
import type { gaxios } from 'google-auth-library';
import { PermanentError, TransientError, type ErrorCode } from '../errors.js';
import type { VertexJobPage, VertexJobs } from '../ports.js';
import type { BatchJobRequest, VertexBatchJob } from '../vertex.js';

/** What the client needs of an auth client: `GoogleAuth`, `AuthClient` and `OAuth2Client` all fit. */
export interface RequestClient {
  request<T>(options: gaxios.GaxiosOptions): Promise<gaxios.GaxiosResponse<T>>;
}

/** Options of {@link createVertexClient}. */
export interface VertexClientOptions {
  /** Project id used in create and list paths. */
  project: string;
  /** An authorised client (a static-token OAuth2Client for emulators). */
  auth: RequestClient;
  /** `host:port` of an emulator (plain HTTP); unset in production. */
  emulatorHost?: string | undefined;
  /** Per-request timeout (default 60 s). */
  timeoutMs?: number;
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

/** Creates the Vertex client. */
export function createVertexClient(options: VertexClientOptions): VertexJobs {
  const timeout = options.timeoutMs ?? 60_000;
  const base = (location: string): string => vertexEndpoint(location, options.emulatorHost);
  const collection = (location: string): string =>
    `${base(location)}/v1/projects/${encodeURIComponent(options.project)}/locations/${location}/batchPredictionJobs`;

  // Safe to retry: reads. A create is never retried here (it has no request id, a retry could
  // start a second billed job); the submit use case looks for the job by label instead.
  const readRetry = {
    retry: 3,
    noResponseRetries: 2,
    httpMethodsToRetry: ['GET'],
    statusCodesToRetry: [
      [429, 429],
      [500, 599],
    ],
  };

  async function call<T>(opts: gaxios.GaxiosOptions, what: string): Promise<T> {
    try {
      const res = await options.auth.request<T>({ timeout, responseType: 'json', ...opts });
      return res.data;
    } catch (err) {
      throw mapVertexError(err, what);
    }
  }

  return {
    create: (location, request: BatchJobRequest) =>
      call<VertexBatchJob>(
        { url: collection(location), method: 'POST', data: request, retry: false },
        'create batch prediction job',
      ),

    get: (name) =>
      call<VertexBatchJob>(
        { url: `${base(locationOfJob(name))}/v1/${name}`, method: 'GET', retryConfig: readRetry },
        `get ${name}`,
      ),

    list: async (location, { filter, pageSize, pageToken }): Promise<VertexJobPage> => {
      const params: Record<string, string> = {};
      if (filter) params.filter = filter;
      if (pageSize) params.pageSize = String(pageSize);
      if (pageToken) params.pageToken = pageToken;
      const data = await call<{ batchPredictionJobs?: VertexBatchJob[]; nextPageToken?: string }>(
        { url: collection(location), method: 'GET', params, retryConfig: readRetry },
        'list batch prediction jobs',
      );
      return {
        jobs: data.batchPredictionJobs ?? [],
        nextPageToken: data.nextPageToken || undefined,
      };
    },

    cancel: async (name) => {
      await call<unknown>(
        {
          url: `${base(locationOfJob(name))}/v1/${name}:cancel`,
          method: 'POST',
          data: {},
          retry: false,
        },
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
