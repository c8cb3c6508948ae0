/** Job record factories shared by the tests. */
import { blankFields, type JobRecord } from '../shared/core/jobs.js';

/** A finished Gemini job's record, in the shapes Vertex and Firestore give (the sample job). */
export function completedRecord(overrides: Partial<JobRecord> = {}): JobRecord {
  return {
    jobId: 'customer-reviews-0123456789abcdef',
    status: 'COMPLETED',
    bucket: 'acme-batch-input',
    object: 'inputs/customer-reviews.jsonl',
    generation: '1764150067498213',
    inputUri: 'gs://acme-batch-input/inputs/customer-reviews.jsonl',
    model: 'publishers/google/models/gemini-2.5-flash',
    provider: 'google',
    location: 'us-central1',
    queue: 'publishers/google/models/gemini-2.5-flash@us-central1',
    outputUriPrefix: 'gs://acme-batch-output/results/customer-reviews-0123456789abcdef/',
    ...blankFields(new Date('2026-11-26T09:41:08.000Z')),
    requestCount: 412,
    vertexJob:
      'projects/510528649030/locations/us-central1/batchPredictionJobs/3814889423749775360',
    vertexState: 'JOB_STATE_SUCCEEDED',
    stats: { successfulCount: 412, failedCount: 0, incompleteCount: 0 },
    outputDirectory:
      'gs://acme-batch-output/results/customer-reviews-0123456789abcdef/prediction-model-2026-11-26T09:41:09.114020Z',
    vertexCreateTime: '2026-11-26T09:41:09.114020Z',
    vertexStartTime: '2026-11-26T09:47:51.802311Z',
    vertexEndTime: '2026-11-26T10:02:13.559871Z',
    createAttempts: 1,
    updateTime: '2026-11-26T10:02:14.000Z',
    ...overrides,
  };
}

/** A new record of `jobId`, as the submit function first writes it. */
export function submittingRecord(jobId: string, overrides: Partial<JobRecord> = {}): JobRecord {
  return {
    jobId,
    status: 'SUBMITTING',
    bucket: 'in',
    object: `inputs/${jobId}.jsonl`,
    generation: '1764150067498213',
    inputUri: `gs://in/inputs/${jobId}.jsonl`,
    model: 'publishers/google/models/gemini-2.5-flash',
    provider: 'google',
    location: 'us-central1',
    queue: 'publishers/google/models/gemini-2.5-flash@us-central1',
    outputUriPrefix: `gs://out/${jobId}/`,
    ...blankFields(new Date('2026-11-26T10:00:00.000Z')),
    ...overrides,
  };
}
