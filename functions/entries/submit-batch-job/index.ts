/**
 * The deployed entry of `submitBatchJob` (bundled alone by `npm run package`): validates the
 * configuration once at cold start (a bad variable fails the start with one error naming every bad
 * variable), registers the function, and starts loading the clients every input needs.
 */
import { loadConfig } from '../../../shared/config.js';
import { createSubmitDependencies } from '../../dependencies.js';
import { registerSubmitBatchJob } from '../../submit-batch-job/index.js';

const deps = createSubmitDependencies(loadConfig(process.env));
registerSubmitBatchJob(deps.get);
deps.prewarm();
