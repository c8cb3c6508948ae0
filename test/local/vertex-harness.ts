/**
 * What the Vertex emulator's tests share: an in-memory blob store, starting emulators (closed by
 * {@link closeEmulators}), HTTP calls, create-request bodies and input lines.
 */
import { expect } from 'vitest';
import {
  startVertexEmulator,
  type BlobStore,
  type VertexEmulator,
  type VertexEmulatorOptions,
  type VertexJobJson,
} from '../../local/vertex/server.js';

export type Json = Record<string, unknown>;

export const PROJECT = 'demo-project';
export const NUMBER = '123456789012';
export const LOCATION = 'us-central1';
export const GEMINI = 'publishers/google/models/gemini-2.5-flash';
export const CLAUDE = 'publishers/anthropic/models/claude-3-5-haiku';
export const INSTRUCTION =
  'Classify the sentiment of this review as positive, negative or neutral: ';
export const MANUAL = { pendingMs: Infinity, runningMs: Infinity, cancellingMs: Infinity };
export const FAST = { pendingMs: 0, runningMs: 0, cancellingMs: 0 };
export const JOB_NAME =
  /^projects\/123456789012\/locations\/us-central1\/batchPredictionJobs\/\d{19}$/;
export const RFC3339_MICROS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

/** An in-memory {@link BlobStore}: what the local stack provides over the storage emulator. */
export class MemoryBlobs implements BlobStore {
  readonly objects = new Map<string, Buffer>();
  /** Every write, in order: its URI and how many lines it held. */
  readonly writes: { uri: string; lines: number }[] = [];

  async read(uri: string): Promise<Buffer> {
    const data = this.objects.get(uri);
    if (!data) throw Object.assign(new Error(`No such object: ${uri}`), { code: 404 });
    return data;
  }

  async write(uri: string, data: Buffer | string): Promise<void> {
    const buffer = Buffer.from(data);
    this.objects.set(uri, buffer);
    this.writes.push({ uri, lines: buffer.toString('utf8').split('\n').length - 1 });
  }

  put(uri: string, lines: string[]): void {
    this.objects.set(uri, Buffer.from(lines.map((l) => `${l}\n`).join('')));
  }

  /** The parsed lines of a JSONL object. */
  lines(uri: string): Json[] {
    const data = this.objects.get(uri);
    if (!data) throw new Error(`not written: ${uri}`);
    return data
      .toString('utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Json);
  }

  /** The names of the objects directly in a folder, sorted. */
  files(directory: string | undefined): string[] {
    const prefix = `${directory ?? '?'}/`;
    return [...this.objects.keys()]
      .filter((uri) => uri.startsWith(prefix))
      .map((uri) => uri.slice(prefix.length))
      .sort();
  }

  /** The parsed lines of every file of a folder, file after file. */
  outputLines(directory: string | undefined): Json[] {
    return this.files(directory).flatMap((name) => this.lines(`${directory}/${name}`));
  }
}

const running: VertexEmulator[] = [];

/** Closes every emulator {@link start} started (call it in `afterEach`). */
export async function closeEmulators(): Promise<void> {
  await Promise.all(running.splice(0).map((e) => e.close()));
}

/** Starts an emulator over a new {@link MemoryBlobs}. */
export async function start(
  options: Partial<VertexEmulatorOptions> = {},
  blobs = new MemoryBlobs(),
): Promise<{ emu: VertexEmulator; blobs: MemoryBlobs }> {
  const emu = await startVertexEmulator({ blobs, ...options });
  running.push(emu);
  return { emu, blobs };
}

export interface Answer {
  status: number;
  body: Json;
}

export async function call(
  emu: VertexEmulator,
  method: string,
  path: string,
  body?: unknown,
  init: RequestInit = {},
): Promise<Answer> {
  const res = await fetch(`${emu.url}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    ...init,
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? {} : (JSON.parse(text) as Json) };
}

export const jobsPath = (location = LOCATION, project = PROJECT): string =>
  `/v1/projects/${project}/locations/${location}/batchPredictionJobs`;

/** A create request body, like the one our code sends. */
export function jobBody(overrides: Json = {}): Json {
  const id = typeof overrides.displayName === 'string' ? overrides.displayName : 'reviews-1';
  return {
    displayName: id,
    model: GEMINI,
    inputConfig: { instancesFormat: 'jsonl', gcsSource: { uris: ['gs://acme-in/reviews.jsonl'] } },
    outputConfig: {
      predictionsFormat: 'jsonl',
      gcsDestination: { outputUriPrefix: `gs://acme-out/results/${id}/` },
    },
    labels: { batch_courier: 'v1', job_id: id },
    ...overrides,
  };
}

export async function create(
  emu: VertexEmulator,
  overrides: Json = {},
  location = LOCATION,
): Promise<VertexJobJson> {
  const res = await call(emu, 'POST', jobsPath(location), jobBody(overrides));
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body as unknown as VertexJobJson;
}

export async function get(emu: VertexEmulator, name: string): Promise<VertexJobJson> {
  const res = await call(emu, 'GET', `/v1/${name}`);
  expect(res.status).toBe(200);
  return res.body as unknown as VertexJobJson;
}

export function geminiLine(review: string): string {
  return JSON.stringify({
    request: { contents: [{ role: 'user', parts: [{ text: `${INSTRUCTION}${review}` }] }] },
  });
}

export function claudeLine(customId: string, content: unknown): string {
  return JSON.stringify({
    custom_id: customId,
    request: {
      messages: [{ role: 'user', content }],
      anthropic_version: 'vertex-2023-10-16',
      max_tokens: 8,
    },
  });
}

/** The job once no job is unfinished (timers of 0 ms), checked to be in `state`. */
export async function finished(
  emu: VertexEmulator,
  name: string,
  state: VertexJobJson['state'],
): Promise<VertexJobJson> {
  await emu.whenIdle();
  const job = await get(emu, name);
  expect(job.state).toBe(state);
  return job;
}

/** The text of the answer of a successful Gemini or Claude row. */
export function answerOf(row: Json): string | undefined {
  const response = row.response as
    | {
        candidates?: { content: { parts: { text: string }[] } }[];
        content?: { text: string }[];
      }
    | undefined;
  return response?.candidates?.[0]?.content.parts[0]?.text ?? response?.content?.[0]?.text;
}
