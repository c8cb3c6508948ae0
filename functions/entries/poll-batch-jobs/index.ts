/**
 * The deployed entry of `pollBatchJobs` (bundled alone by `npm run package`): validates the
 * configuration once at cold start (a bad variable fails the start with one error naming every bad
 * variable), registers the function, and starts loading the job store's client.
 */
import { loadConfig } from '../../../shared/config.js';
import { createPollDependencies } from '../../dependencies.js';
import { registerPollBatchJobs } from '../../poll-batch-jobs/index.js';

const deps = createPollDependencies(loadConfig(process.env));
registerPollBatchJobs(deps.get);
deps.prewarm();
