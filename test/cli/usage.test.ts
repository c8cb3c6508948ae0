/**
 * Usage errors exit with 2 and say what was wrong; help exits with 0. No service is needed: the
 * command line is checked before the configuration is read or any client is made.
 */
import { describe, expect, it } from 'vitest';
import { cli } from './run.js';

const env = {
  GOOGLE_CLOUD_PROJECT: 'demo-batch-courier',
  OUTPUT_URI_PREFIX: 'gs://out/results',
  COMPLETION_TOPIC: 'events',
};

describe('batch-courier: usage', () => {
  it.each([
    [['jobs', '--limit', '0'], /--limit "0": expected a whole number from 1 to 1000/],
    [['jobs', '--limit', 'ten'], /--limit "ten": expected a whole number/],
    [['jobs', '--status', 'DONE'], /--status "DONE": expected one or more of SUBMITTING, WAITING/],
    [['jobs', '--since', '5 parsecs'], /--since "5 parsecs": expected a duration such as 30m/],
    [['jobs', '--since', '0h'], /--since "0h": must be longer than 0/],
    [['jobs', '--bogus'], /unknown option '--bogus'/],
    [['show', 'Not An Id'], /"Not An Id" is neither a job id .* nor gs:\/\/bucket\/object/],
    [['cancel'], /missing required argument 'jobId'/],
    [['retry', 'gs://b/o.jsonl'], /"gs:\/\/b\/o.jsonl" is not a job id/],
    [['watch', '--interval', '0'], /--interval "0": expected a whole number from 1 to 3600/],
    [['frobnicate'], /unknown command 'frobnicate'/],
  ])('%j exits 2 and says why', async (args, message) => {
    const run = await cli(env, args);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(message);
  });

  it('no command: the help, exit 2', async () => {
    const run = await cli(env, []);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/Usage: batch-courier/);
    expect(run.stderr).toMatch(/jobs \[options\]/);
  });

  it('--help: the commands and how to configure them, exit 0', async () => {
    const run = await cli(env, ['--help']);
    expect(run.code).toBe(0);
    for (const command of [
      'jobs',
      'show',
      'watch',
      'cancel',
      'retry',
      'replay',
      'results',
      'doctor',
    ]) {
      expect(run.stdout).toMatch(new RegExp(`\\n  ${command}\\b`));
    }
    expect(run.stdout).toMatch(/set -a; \. \.local\/env; set \+a/);
  });

  it('a usage error with --json is also JSON on stdout', async () => {
    const run = await cli(env, ['--json', 'jobs', '--limit', '5000']);
    expect(run.code).toBe(2);
    expect(run.json()).toEqual({
      error: { message: expect.stringMatching(/^--limit "5000"/), exitCode: 2 },
    });
  });

  it('a missing configuration names every variable and its flag, exit 2', async () => {
    const run = await cli({}, ['jobs']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/GOOGLE_CLOUD_PROJECT: is required \(or --project\)/);
    expect(run.stderr).toMatch(/OUTPUT_URI_PREFIX: is required \(or --output-prefix\)/);
    expect(run.stderr).toMatch(/COMPLETION_TOPIC: is required \(or --topic\)/);
    expect(run.stderr).toMatch(/fix: .*set -a; \. \.local\/env; set \+a/);
  });

  it('flags stand in for the variables', async () => {
    // Fully configured by flags, but pointed at emulators without Firestore: refused before any call.
    const run = await cli({ STORAGE_EMULATOR_HOST: 'http://127.0.0.1:9' }, [
      '--project',
      'demo-batch-courier',
      '--output-prefix',
      'gs://out/results',
      '--topic',
      'events',
      'jobs',
    ]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      /STORAGE_EMULATOR_HOST is set but FIRESTORE_EMULATOR_HOST is not: this would read the job records of project demo-batch-courier in the cloud/,
    );
    expect(run.stderr).toMatch(/fix: .*install the Google Cloud CLI/);
  });
});
