/**
 * What every command gets: the validated configuration (environment variables, overridden by the
 * global flags), the dependencies (built on first use), the output streams, the clock, and how to
 * print (a person's text, or JSON with `--json`).
 */
import { ConfigError, loadConfig, type Config } from '../shared/config.js';
import { createCliDependencies, emulatorHosts, type CliDependencies } from './dependencies.js';
import { colorsFor, type Colors } from './format.js';
import { CliError, UsageError } from './options.js';

/** The outside world of one run: tests pass their own. */
export interface Io {
  env: Readonly<Record<string, string | undefined>>;
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number; rows?: number };
  stderr: NodeJS.WritableStream;
  clock: () => Date;
  /** Resolves when the user asks to stop (Ctrl-C): `watch` ends then. */
  interrupted: Promise<void>;
  cwd: string;
}

/** The global flags that stand in for configuration variables. */
export interface GlobalFlags {
  project?: string;
  location?: string;
  outputPrefix?: string;
  inputPrefix?: string;
  topic?: string;
  collection?: string;
  json?: boolean;
}

/** Which variable each flag sets. */
export const FLAG_VARIABLES = Object.freeze({
  project: 'GOOGLE_CLOUD_PROJECT',
  location: 'VERTEX_LOCATION',
  outputPrefix: 'OUTPUT_URI_PREFIX',
  inputPrefix: 'INPUT_PREFIX',
  topic: 'COMPLETION_TOPIC',
  collection: 'JOBS_COLLECTION',
} as const);

/** The flag of each variable, for messages. */
const FLAG_OF: Record<string, string> = {
  GOOGLE_CLOUD_PROJECT: '--project',
  VERTEX_LOCATION: '--location',
  OUTPUT_URI_PREFIX: '--output-prefix',
  INPUT_PREFIX: '--input-prefix',
  COMPLETION_TOPIC: '--topic',
  JOBS_COLLECTION: '--collection',
};

/** The environment with the flags applied. */
export function effectiveEnv(
  env: Readonly<Record<string, string | undefined>>,
  flags: GlobalFlags,
): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = { ...env };
  for (const [flag, variable] of Object.entries(FLAG_VARIABLES)) {
    const value = flags[flag as keyof typeof FLAG_VARIABLES];
    if (value !== undefined) out[variable] = value;
  }
  return out;
}

/** How to point the command somewhere, said once in every configuration error. */
export const CONFIG_HELP =
  'set the variables the functions use (or the flags shown); for the local stack started by `npm start`: set -a; . .local/env; set +a';

/** Loads the configuration or throws a UsageError naming each bad variable and its flag. */
export function commandConfig(env: Readonly<Record<string, string | undefined>>): Config {
  let config: Config;
  try {
    config = loadConfig(env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const problems = err.problems.map((p) => {
      const name = p.split(':')[0] ?? '';
      return FLAG_OF[name] ? `${p} (or ${FLAG_OF[name]})` : p;
    });
    throw new UsageError(`configuration: ${problems.join('; ')}`, CONFIG_HELP, { cause: err });
  }
  mixedEmulatorsProblem(config);
  return config;
}

/**
 * Emulators for some services and the cloud for the job store is never what anyone wants: it is
 * the local stack without the Firestore emulator, whose records live in the memory of `npm start`.
 */
export function mixedEmulatorsProblem(config: Config): void {
  const hosts = Object.keys(emulatorHosts(config));
  if (hosts.length > 0 && !config.FIRESTORE_EMULATOR_HOST) {
    throw new CliError(
      `${hosts.join(', ')} ${hosts.length === 1 ? 'is' : 'are'} set but FIRESTORE_EMULATOR_HOST is not: this would read the job records of project ${config.GOOGLE_CLOUD_PROJECT} in the cloud while the other services are emulated`,
      'a local stack started without the Google Cloud CLI keeps its job records in the memory of `npm start`, out of reach of this command: install the Google Cloud CLI (its Firestore emulator needs Java) and restart `npm start`; to use the cloud instead, unset the *_EMULATOR_HOST variables',
    );
  }
  // Any other service left unset would be the real one (a replay published to the real topic, a
  // retry uploaded to a real bucket, a cancel sent to Vertex AI): all four, or none.
  const missing = EMULATOR_HOST_NAMES.filter((n) => !hosts.includes(n));
  if (hosts.length > 0 && missing.length > 0) {
    throw new CliError(
      `${hosts.join(', ')} ${hosts.length === 1 ? 'is' : 'are'} set but ${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} not: this command would reach those services in the cloud (project ${config.GOOGLE_CLOUD_PROJECT}) while the others are emulated`,
      'point the command at the local stack with `set -a; . .local/env; set +a` (it sets all four), or unset the *_EMULATOR_HOST variables to use the cloud',
    );
  }
}

const EMULATOR_HOST_NAMES = [
  'STORAGE_EMULATOR_HOST',
  'FIRESTORE_EMULATOR_HOST',
  'PUBSUB_EMULATOR_HOST',
  'VERTEX_AI_EMULATOR_HOST',
];

/** One run's context. */
export interface Context {
  io: Io;
  json: boolean;
  c: Colors;
  /** The configuration; throws a UsageError when it is incomplete. */
  config(): Config;
  /** The dependencies, built on first use. */
  deps(): Promise<CliDependencies>;
  /** Writes a line (or lines) to stdout. */
  say(text?: string): void;
  /** Writes `value` as JSON to stdout. */
  printJson(value: unknown): void;
  /** Writes a line to stderr. */
  warn(text: string): void;
}

/** Builds the context of one run from the global flags. */
export function createContext(io: Io, flags: GlobalFlags): Context {
  const env = effectiveEnv(io.env, flags);
  let config: Config | undefined;
  let deps: Promise<CliDependencies> | undefined;
  const ctx: Context = {
    io,
    json: flags.json === true,
    c: colorsFor(io.stdout, io.env),
    config: () => (config ??= commandConfig(env)),
    deps: () =>
      (deps ??= createCliDependencies(ctx.config(), (line) => io.stderr.write(`${line}\n`))),
    say: (text = '') => void io.stdout.write(`${text}\n`),
    printJson: (value) => void io.stdout.write(`${JSON.stringify(value, null, 2)}\n`),
    warn: (text) => void io.stderr.write(`${text}\n`),
  };
  return ctx;
}
