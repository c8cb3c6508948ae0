/**
 * The composite index of `JobStore.listRecent` with a status filter: Terraform declares exactly
 * RECENT_JOBS_INDEX, on the collection of the job records (the one the poller's index uses).
 * Production Firestore refuses the query without it; the emulator does not, so only this test
 * keeps the two in step.
 */
import { describe, expect, it } from 'vitest';
import { RECENT_JOBS_INDEX } from '../../shared/adapters/recent-jobs-index.js';
import { isObject, loadModule, refs, type TfModule } from '../terraform/tf-module.js';

async function matchingIndexes(m: TfModule): Promise<string[]> {
  const indexes = m.resource.google_firestore_index ?? {};
  const jobsCollection = JSON.stringify(await refs(indexes.outstanding_jobs?.collection));
  const expected = JSON.stringify(RECENT_JOBS_INDEX.fields.map((f) => [f.fieldPath, f.order]));
  const found: string[] = [];
  for (const [name, index] of Object.entries(indexes)) {
    const fields = (Array.isArray(index.fields) ? index.fields : []).filter(isObject);
    if (
      index.query_scope === RECENT_JOBS_INDEX.queryScope &&
      JSON.stringify(fields.map((f) => [f.field_path, f.order])) === expected &&
      JSON.stringify(await refs(index.collection)) === jobsCollection
    ) {
      found.push(name);
    }
  }
  return found;
}

describe('the listing index', () => {
  it('terraform/firestore.tf declares RECENT_JOBS_INDEX once, on the job records collection', async () => {
    expect(await matchingIndexes(await loadModule())).toEqual(['recent_jobs']);
  });

  it('the check fails when the order of createTime differs', async () => {
    const mutated = await loadModule((file, text) =>
      file === 'firestore.tf'
        ? text.replace(/(field_path = "createTime"\s+order\s+= )"DESCENDING"/, '$1"ASCENDING"')
        : text,
    );
    expect(await matchingIndexes(mutated)).toEqual([]);
  });
});
