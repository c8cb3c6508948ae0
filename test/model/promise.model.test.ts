/**
 * The promise, proven by search: thousands of random schedules of uploads, deliveries (duplicate,
 * concurrent, late), crashes after any side effect, overlapping and budget-starved polls, Vertex
 * faults and state changes, store contention, publish failures and clock jumps, run through the
 * real use cases; the invariants are checked after every step and at quiescence. Three schedules
 * in ten are about manifests: over files replaced or added between deliveries, or over a table
 * changing while the manifest waits, writing to Cloud Storage or BigQuery, with BigQuery faults.
 *
 * `npm run fuzz -- --schedules N --seed S` runs any number (FUZZ_SCHEDULES / FUZZ_SEED here).
 */
import { Firestore } from '@google-cloud/firestore';
import { describe, expect, inject, it } from 'vitest';
import { createFirestoreJobStore } from '../../shared/adapters/firestore-job-store.js';
import { runSchedules } from './run.js';

const SCHEDULES = Number(process.env.FUZZ_SCHEDULES ?? 5000);
const SEED = Number(process.env.FUZZ_SEED ?? 20261128);
/** The official Firestore emulator, where the Google Cloud CLI is installed (empty otherwise). */
const FIRESTORE = inject('firestoreEmulatorHost');

describe('the promise, by search', () => {
  it(
    `${SCHEDULES} random schedules (seed ${SEED}) keep every invariant`,
    { timeout: 600_000 },
    async () => {
      expect(await runSchedules({ schedules: SCHEDULES, seed: SEED })).toEqual({
        schedules: SCHEDULES,
      });
    },
  );

  it.skipIf(!FIRESTORE)(
    '50 schedules with the Firestore adapter against the official emulator (runs where the Google Cloud CLI provides it)',
    { timeout: 600_000 },
    async () => {
      process.env.FIRESTORE_EMULATOR_HOST = FIRESTORE;
      const db = new Firestore({ projectId: 'demo-model' });
      let n = 0;
      const result = await runSchedules({
        schedules: Number(process.env.FUZZ_FIRESTORE_SCHEDULES ?? 50),
        seed: SEED,
        maxActions: 25,
        // One schedule in ten about manifests (longer ones): toManifest through the adapter too.
        manifestShare: 1,
        jobs: async () => createFirestoreJobStore(db, `model-${process.pid}-${++n}`),
      });
      expect(result.schedules).toBeGreaterThanOrEqual(50);
    },
  );
});
