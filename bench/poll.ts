/**
 * Poll benchmark: one poll run over N outstanding (finished) jobs against the builtin Vertex
 * emulator over HTTP with a configurable latency, for our strategy (filtered `list` calls per page)
 * and for the naive one-`get`-per-job strategy, measured in the same run.
 *
 *   npm run bench:poll                      # N = 100, 1,000, 10,000; 20 ms per Vertex call
 *   SIZES=100,1000 LATENCY_MS=50 npm run bench:poll
 */
import { OAuth2Client } from 'google-auth-library';
import { pollBatchJobs } from '../shared/app/poll.js';
import { createMemoryJobStore } from '../shared/adapters/memory-job-store.js';
import { createVertexClient } from '../shared/adapters/vertex-rest-client.js';
import { mapLimit } from '../shared/app/concurrency.js';
import { loadConfig } from '../shared/config.js';
import { createLogger } from '../shared/logger.js';
import { blankFields, type JobRecord } from '../shared/core/jobs.js';
import type { JobStore, RecentQuery } from '../shared/ports.js';
import { buildBatchJobRequest } from '../shared/core/vertex.js';
import { startVertexEmulator, type VertexOp } from '../local/vertex-emulator.js';

const SIZES = (process.env.SIZES ?? '100,1000,10000').split(',').map(Number);
const LATENCY_MS = Number(process.env.LATENCY_MS ?? 20);
const INPUT = 'gs://bench-input/reviews.jsonl';

const blobs = new Map<string, Buffer>([
  [INPUT, Buffer.from('{"request":{"contents":[{"role":"user","parts":[{"text":"Great!"}]}]}}\n')],
]);
const emulator = await startVertexEmulator({
  blobs: {
    read: async (uri) =>
      blobs.get(uri) ?? Promise.reject(Object.assign(new Error('404'), { code: 404 })),
    write: async (uri, data) => void blobs.set(uri, Buffer.from(data)),
  },
  timing: { pendingMs: Infinity, runningMs: Infinity },
});
const auth = new OAuth2Client();
auth.setCredentials({ access_token: 'bench', expiry_date: Date.now() + 86400e3 });
const vertex = createVertexClient({ project: 'bench-project', auth, emulatorHost: emulator.host });
const config = loadConfig({
  GOOGLE_CLOUD_PROJECT: 'bench-project',
  OUTPUT_URI_PREFIX: 'gs://bench-output',
  COMPLETION_TOPIC: 'bench-events',
  LOG_LEVEL: 'error',
});

/** A job store that counts document reads and writes like Firestore bills them. */
function counting(store: JobStore): JobStore & { reads: number; writes: number } {
  const c = {
    reads: 0,
    writes: 0,
    createIfAbsent: async (r: JobRecord) => (c.writes++, store.createIfAbsent(r)),
    get: async (id: string) => (c.reads++, store.get(id)),
    countWaiting: async (queue: string) => (c.reads++, store.countWaiting(queue)),
    reserveSlot: async (...args: Parameters<JobStore['reserveSlot']>) => {
      c.reads++;
      c.writes++;
      return store.reserveSlot(...args);
    },
    releaseSlot: async (pool: string, jobId: string) => (
      c.writes++,
      store.releaseSlot(pool, jobId)
    ),
    update: async (id: string, change: Parameters<JobStore['update']>[1]) => {
      c.reads++;
      const out = await store.update(id, change);
      if (out) c.writes++;
      return out;
    },
    listOutstanding: async (limit: number, cursor?: string) => {
      const page = await store.listOutstanding(limit, cursor);
      c.reads += Math.max(1, page.records.length);
      return page;
    },
    listRecent: async (query: RecentQuery) => {
      const records = await store.listRecent(query);
      c.reads += Math.max(1, records.length);
      return records;
    },
  };
  return c;
}

function vertexCalls(): number {
  return (Object.keys(emulator.requests) as VertexOp[]).reduce(
    (s, k) => s + emulator.requests[k],
    0,
  );
}

console.log(
  `poll benchmark: builtin Vertex emulator over HTTP, ${LATENCY_MS} ms per call, node ${process.version}`,
);
console.log(
  [
    'N',
    'strategy',
    'vertex calls',
    'store reads',
    'store writes',
    'published',
    'wall ms',
    'calls vs naive',
  ].join('\t'),
);
for (const n of SIZES) {
  emulator.reset();
  const records: JobRecord[] = [];
  await mapLimit(
    Array.from({ length: n }, (_, i) => i),
    32,
    async (i) => {
      const jobId = `bench-${String(i).padStart(6, '0')}`;
      const job = await vertex.create(
        'us-central1',
        buildBatchJobRequest({
          jobId,
          model: 'publishers/google/models/gemini-2.5-flash',
          inputUri: INPUT,
          outputUriPrefix: `gs://bench-output/${jobId}/`,
        }),
      );
      const t = new Date(Date.UTC(2026, 10, 26, 10, 0, 0, i)).toISOString();
      records[i] = {
        jobId,
        status: 'SUBMITTED',
        bucket: 'bench-input',
        object: 'reviews.jsonl',
        generation: String(i + 1),
        inputUri: INPUT,
        model: 'publishers/google/models/gemini-2.5-flash',
        provider: 'google',
        location: 'us-central1',
        queue: 'publishers/google/models/gemini-2.5-flash@us-central1',
        outputUriPrefix: `gs://bench-output/${jobId}/`,
        ...blankFields(new Date(t)),
        requestCount: 1,
        vertexJob: job.name,
        vertexState: 'JOB_STATE_PENDING',
        vertexCreateTime: job.createTime ?? null,
        createAttempts: 1,
      };
    },
  );
  await emulator.settle();
  emulator.inject({ latencyMs: LATENCY_MS });

  let naiveCalls = 0;
  for (const strategy of ['naive get per job', 'list by label (ours)'] as const) {
    const store = counting(createMemoryJobStore());
    for (const r of records) await store.createIfAbsent(r);
    store.reads = 0;
    store.writes = 0;
    let published = 0;
    const before = vertexCalls();
    const started = performance.now();
    const summary = await pollBatchJobs({
      config,
      jobs: store,
      vertex,
      publisher: { publish: async () => String(++published) },
      reader: {
        read: () => {
          throw new Error('the poll bench reads no input');
        },
        list: async () => [],
      },
      reports: {
        write: async () => undefined,
        writeStream: async () => undefined,
        remove: async () => undefined,
        copy: () => {
          throw new Error('the poll bench submits no input');
        },
      },
      log: createLogger('error'),
      clock: () => new Date(),
      newOwner: () => 'bench',
      options: {
        budgetMs: 10 * 60_000,
        ...(strategy === 'naive get per job' ? { maxGets: Number.MAX_SAFE_INTEGER } : {}),
      },
    });
    const ms = performance.now() - started;
    const calls = vertexCalls() - before;
    if (strategy === 'naive get per job') naiveCalls = calls;
    console.log(
      [
        n,
        strategy,
        calls,
        store.reads,
        store.writes,
        `${summary.published}${summary.truncated ? ' (truncated)' : ''}`,
        ms.toFixed(0),
        strategy === 'naive get per job' ? '1.00' : (calls / naiveCalls).toFixed(3),
      ].join('\t'),
    );
  }
  emulator.inject({ latencyMs: 0 });
}
await emulator.close();
