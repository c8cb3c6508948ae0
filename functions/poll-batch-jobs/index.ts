/**
 * Registers `pollBatchJobs` with the functions framework: POST (Cloud Scheduler, OIDC verified by
 * Cloud Run IAM) → 200 with the run's JSON summary; 500 only when the job store is unreachable.
 */
import * as functions from '@google-cloud/functions-framework';
import type { Request, Response } from '@google-cloud/functions-framework';
import { describeError } from '../../shared/core/errors.js';
import { FUNCTION_TARGETS } from '../../shared/function-targets.js';
import { pollBatchJobs, type PollDeps } from '../../shared/app/poll.js';

/** Registers the HTTP function; `deps` is called per request (it memoises its adapters). */
export function registerPollBatchJobs(deps: () => Promise<PollDeps>): void {
  functions.http(FUNCTION_TARGETS.poll, async (req: Request, res: Response) => {
    if (req.method !== 'POST') {
      res.status(405).set('Allow', 'POST').json({ error: 'use POST' });
      return;
    }
    const resolved = await deps();
    try {
      res.status(200).json(await pollBatchJobs(resolved));
    } catch (err) {
      resolved.log.error('poll.failed', 'Poll run failed: the job store is unreachable', {
        error: err,
      });
      const { code, message } = describeError(err);
      res.status(500).json({ error: { code: code ?? 'UNKNOWN', message } });
    }
  });
}
