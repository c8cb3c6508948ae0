/**
 * Registers `submitBatchJob` with the functions framework. The framework acknowledges a returned
 * promise with 204 and answers 500 to a thrown error, so Eventarc retries only what may pass.
 */
import * as functions from '@google-cloud/functions-framework';
import type { CloudEvent } from '@google-cloud/functions-framework';
import { FUNCTION_TARGETS } from '../../shared/function-targets.js';
import { handleStorageEvent, type SubmitDeps } from '../../shared/app/submit.js';

/** Registers the CloudEvent function; `deps` is called per event (it memoises its adapters). */
export function registerSubmitBatchJob(deps: () => Promise<SubmitDeps>): void {
  functions.cloudEvent(FUNCTION_TARGETS.submit, async (event: CloudEvent<unknown>) => {
    await handleStorageEvent(event, await deps());
  });
}
