/**
 * The unbundled entry (`package.json` `main`, compiled to `dist/functions/index.js`): validates the
 * configuration once at cold start (a bad variable fails the start with one error naming every bad
 * variable) and registers both function targets with the functions framework, sharing one set of
 * clients. What is deployed is one bundle per function instead, built from
 * `functions/entries/<function>/index.ts` by `npm run package`.
 */
import { loadConfig } from '../shared/config.js';
import { createDependencies } from './dependencies.js';
import { registerPollBatchJobs } from './poll-batch-jobs/index.js';
import { registerSubmitBatchJob } from './submit-batch-job/index.js';

const deps = createDependencies(loadConfig(process.env));
registerSubmitBatchJob(deps.submit);
registerPollBatchJobs(deps.poll);
// Start loading this target's clients during cold start, before the first request arrives.
deps.prewarm(process.env.FUNCTION_TARGET);
