/**
 * The small soak: 40 files dropped at once on the offline stack, half of them
 * delivered once or twice more → 40 jobs, 40 events, no duplicate, none lost. Same scenario as
 * `npm run soak` (bench/soak.ts), which runs it with 1,000 files.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { formatSoak, runSoak } from '../../bench/soak.js';

it('40 files with 50% duplicate deliveries: 40 jobs, 40 events, 0 duplicates, 0 lost', async () => {
  const result = await runSoak({
    files: 40,
    duplicates: 0.5,
    timeoutMs: 60_000,
    emulators: process.env.BATCH_COURIER_EMULATORS,
    root: mkdtempSync(join(tmpdir(), 'bc-soak-')),
  });
  process.stdout.write(`${formatSoak(result)}\n`);
  expect(result.duplicateDeliveries).toBeGreaterThanOrEqual(20);
  expect(result).toMatchObject({
    uploaded: 40,
    jobs: 40,
    jobsTotal: 40,
    events: 40,
    distinct: 40,
    duplicates: 0,
    lost: 0,
    timedOut: false,
    unexpectedOutcomes: [],
    problems: [],
  });
  expect(result.reasons).toEqual([]);
  expect(result.ok).toBe(true);
}, 120_000);
