/**
 * The command line: `batch-courier <command>`, parsed by commander (help, usage errors), each
 * command run with one {@link Context}. {@link runCli} returns the exit code: 0 success, 1 failure,
 * 2 usage error; it never exits the process itself, so tests run it in-process.
 */
import { Command, CommanderError, Option } from 'commander';
import { describeError } from '../shared/core/errors.js';
import { cancelCommand } from './commands/cancel.js';
import { doctorCommand } from './commands/doctor.js';
import { jobsCommand } from './commands/jobs.js';
import { replayCommand } from './commands/replay.js';
import { resultsCommand } from './commands/results.js';
import { retryCommand } from './commands/retry.js';
import { showCommand } from './commands/show.js';
import { watchCommand } from './commands/watch.js';
import { createContext, type GlobalFlags, type Io } from './context.js';
import {
  CliError,
  EXIT,
  UsageError,
  parseDuration,
  parseJobId,
  parseJobReference,
  parseLimit,
  parseStatuses,
  parseWholeNumber,
} from './options.js';

/** commander's value parsers throw our UsageError; commander would otherwise exit with 1. */
const usage =
  <T>(parse: (text: string) => T) =>
  (text: string): T =>
    parse(text);

const ENVIRONMENT_HELP = `
Configuration: the environment variables of the functions (GOOGLE_CLOUD_PROJECT,
OUTPUT_URI_PREFIX, COMPLETION_TOPIC, JOBS_COLLECTION, VERTEX_LOCATION, ... and the
*_EMULATOR_HOST variables), or the flags above. Against the cloud it uses Application
Default Credentials (gcloud auth application-default login). Against the local stack:

  npm start                      # in one terminal; writes .local/env
  set -a; . .local/env; set +a   # in another
  npx batch-courier jobs

Exit codes: 0 success, 1 failure, 2 usage error.`;

/** Builds the program; `run` receives each command's exit code. */
function buildProgram(io: Io, run: (code: Promise<number>) => void): Command {
  const program = new Command('batch-courier')
    .description(
      'Operate batch-courier: list jobs, show one, watch them, cancel, retry failed rows, replay an event, get results, check the wiring.',
    )
    .option('--project <id>', 'GOOGLE_CLOUD_PROJECT')
    .option('--location <region>', 'VERTEX_LOCATION')
    .option('--output-prefix <gs://bucket/prefix>', 'OUTPUT_URI_PREFIX')
    .option('--input-prefix <prefix>', 'INPUT_PREFIX')
    .option('--topic <topic>', 'COMPLETION_TOPIC')
    .option('--collection <id>', 'JOBS_COLLECTION')
    .option('--json', 'print JSON instead of text')
    .addHelpText('after', ENVIRONMENT_HELP)
    .showHelpAfterError('(batch-courier --help lists the commands and options)')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => void io.stdout.write(s),
      writeErr: (s) => void io.stderr.write(s),
    });

  const context = (cmd: Command) => createContext(io, cmd.optsWithGlobals<GlobalFlags>());

  program
    .command('jobs')
    .description('a table of job records, newest first')
    .addOption(
      new Option('--status <statuses>', 'only these statuses (comma-separated)').argParser(
        usage(parseStatuses),
      ),
    )
    .addOption(
      new Option(
        '--since <duration>',
        'only jobs created within this long (30m, 2h, 7d)',
      ).argParser(usage((t) => parseDuration(t))),
    )
    .addOption(
      new Option('--limit <n>', 'at most this many (1-1000)')
        .default(20)
        .argParser(usage(parseLimit)),
    )
    .action(
      (
        opts: { status?: ReturnType<typeof parseStatuses>; since?: number; limit: number },
        cmd: Command,
      ) =>
        run(
          jobsCommand(context(cmd), {
            ...(opts.status ? { statuses: opts.status } : {}),
            ...(opts.since !== undefined ? { sinceMs: opts.since } : {}),
            limit: opts.limit,
          }),
        ),
    );

  program
    .command('show')
    .description('one job: its record, its Vertex AI job, its event, its files')
    .argument(
      '<job>',
      'a job id, or gs://bucket/object[#generation] (an input or an output file)',
      usage(parseJobReference),
    )
    .action((ref: ReturnType<typeof parseJobReference>, _opts: unknown, cmd: Command) =>
      run(showCommand(context(cmd), ref)),
    );

  program
    .command('watch')
    .description('a live view of the outstanding jobs and the queues, until Ctrl-C')
    .addOption(
      new Option('--interval <seconds>', 'seconds between refreshes (1-3600)')
        .default(2)
        .argParser(usage((t) => parseWholeNumber(t, '--interval', 1, 3600))),
    )
    .addOption(
      new Option('--count <n>', 'stop after this many refreshes').argParser(
        usage((t) => parseWholeNumber(t, '--count', 1, 1_000_000)),
      ),
    )
    .action((opts: { interval: number; count?: number }, cmd: Command) =>
      run(
        watchCommand(context(cmd), {
          intervalMs: opts.interval * 1000,
          ...(opts.count !== undefined ? { count: opts.count } : {}),
        }),
      ),
    );

  program
    .command('cancel')
    .description("cancel the job's Vertex AI job; the poller announces the outcome as usual")
    .argument('<jobId>', 'the job id', usage(parseJobId))
    .action((jobId: string, _opts: unknown, cmd: Command) =>
      run(cancelCommand(context(cmd), jobId)),
    );

  program
    .command('retry')
    .description("send the job's failed rows (failed.jsonl) again as a new input")
    .argument('<jobId>', 'the job id', usage(parseJobId))
    .action((jobId: string, _opts: unknown, cmd: Command) =>
      run(retryCommand(context(cmd), jobId)),
    );

  program
    .command('replay')
    .description('publish the recorded completion event again, with the same eventId')
    .argument('<jobId>', 'the job id', usage(parseJobId))
    .action((jobId: string, _opts: unknown, cmd: Command) =>
      run(replayCommand(context(cmd), jobId)),
    );

  program
    .command('results')
    .description("print the job's results summary; --out downloads results.jsonl")
    .argument('<jobId>', 'the job id', usage(parseJobId))
    .option('--out <file>', 'write results.jsonl to this file (- for stdout)')
    .action((jobId: string, opts: { out?: string }, cmd: Command) =>
      run(resultsCommand(context(cmd), jobId, opts.out)),
    );

  program
    .command('doctor')
    .description(
      'check configuration, APIs, IAM, topic, indexes, buckets and Vertex AI; say what to fix',
    )
    .option(
      '--input-bucket <bucket>',
      'also check this input bucket (default: that of the newest job)',
    )
    .action((opts: { inputBucket?: string }, cmd: Command) =>
      run(
        doctorCommand(context(cmd), {
          ...(opts.inputBucket ? { inputBucket: opts.inputBucket } : {}),
        }),
      ),
    );

  return program;
}

/** Prints an error (text on stderr; with --json also `{"error": …}` on stdout); its exit code. */
function fail(io: Io, json: boolean, err: unknown): number {
  const known = err instanceof CliError;
  const message = known ? err.message : describeError(err).message;
  const fix = known ? err.fix : undefined;
  const code = known ? err.exitCode : EXIT.failure;
  io.stderr.write(`batch-courier: ${message}\n${fix ? `  fix: ${fix}\n` : ''}`);
  if (json) {
    const error = { message, ...(fix ? { fix } : {}), exitCode: code };
    io.stdout.write(`${JSON.stringify({ error }, null, 2)}\n`);
  }
  return code;
}

/** Runs one command line (`argv` without node and the script); resolves to the exit code. */
export async function runCli(argv: readonly string[], io: Io): Promise<number> {
  let pending: Promise<number> | undefined;
  const program = buildProgram(io, (p) => {
    pending = p;
  });
  const json = argv.includes('--json');
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      // Asked-for help is not an error; help shown for a missing command is a usage error, like
      // everything else commander refuses.
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') {
        return EXIT.ok;
      }
      if (err.cause instanceof UsageError || err.code === 'commander.invalidArgument') {
        return fail(
          io,
          json,
          err.cause instanceof UsageError ? err.cause : new UsageError(err.message),
        );
      }
      if (json) fail(io, json, new UsageError(err.message.replace(/^error: /, '')));
      return EXIT.usage;
    }
    return fail(io, json, err);
  }
  if (!pending) {
    // No command: show the help, as a usage error.
    io.stderr.write(program.helpInformation());
    return EXIT.usage;
  }
  try {
    return await pending;
  } catch (err) {
    return fail(io, json, err);
  }
}
