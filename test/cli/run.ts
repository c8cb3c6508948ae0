/** Runs the command in-process, as a person would type it, and keeps what it printed. */
import { Writable } from 'node:stream';
import { runCli } from '../../cli/program.js';

/** What one run printed, and its exit code. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON (throws, naming the output, when it is not). */
  json<T = unknown>(): T;
}

function collector(): { stream: Writable; text: () => string } {
  const chunks: Buffer[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _enc, done) {
      chunks.push(Buffer.from(chunk));
      done();
    },
  });
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}

/** Runs `batch-courier ...args` with `env`; `interrupted` ends a `watch`. */
export async function cli(
  env: Record<string, string | undefined>,
  args: string[],
  options: { interrupted?: Promise<void>; cwd?: string } = {},
): Promise<CliRun> {
  const out = collector();
  const err = collector();
  const code = await runCli(args, {
    env,
    stdout: out.stream,
    stderr: err.stream,
    clock: () => new Date(),
    interrupted: options.interrupted ?? new Promise<void>(() => undefined),
    cwd: options.cwd ?? process.cwd(),
  });
  const stdout = out.text();
  return {
    code,
    stdout,
    stderr: err.text(),
    json<T>() {
      try {
        return JSON.parse(stdout) as T;
      } catch {
        throw new Error(`not JSON (exit ${code}): ${stdout}\nstderr: ${err.text()}`);
      }
    },
  };
}
