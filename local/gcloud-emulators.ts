/**
 * The official Firestore and Pub/Sub emulators that ship with the Google Cloud CLI, started from
 * their jars (faster than `gcloud beta emulators ...`). Used by `npm start` and the test setup.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, realpathSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { freePort, waitForHttp } from './net.js';

/** Which emulators the stack and the tests use (`BATCH_COURIER_EMULATORS`). */
export type EmulatorMode = 'gcloud' | 'builtin';

/** The path of a command on `PATH`, or undefined. */
function which(command: string): string | undefined {
  try {
    return (
      execFileSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' }).trim() || undefined
    );
  } catch {
    return undefined;
  }
}

/** The Cloud SDK root, or undefined when gcloud is not installed. */
export function cloudSdkRoot(): string | undefined {
  const gcloud = which('gcloud');
  return gcloud && dirname(dirname(realpathSync(gcloud)));
}

function firestoreLauncher(sdk: string): string | undefined {
  const p = join(sdk, 'platform', 'cloud-firestore-emulator', 'cloud_firestore_emulator');
  return existsSync(p) ? p : undefined;
}

function pubsubJar(sdk: string): string | undefined {
  const dir = join(sdk, 'platform', 'pubsub-emulator', 'lib');
  if (!existsSync(dir)) return undefined;
  const jar = readdirSync(dir).find((f) => /^cloud-pubsub-emulator-.*-all\.jar$/.test(f));
  return jar ? join(dir, jar) : undefined;
}

/**
 * Resolves `BATCH_COURIER_EMULATORS` (`auto` | `gcloud` | `builtin`, default `auto`) against what
 * this machine has. `gcloud` on a machine without the emulators is an error, not a silent fallback.
 */
export function resolveEmulatorMode(value: string | undefined): EmulatorMode {
  const wanted = (value ?? 'auto').trim().toLowerCase() || 'auto';
  if (wanted !== 'auto' && wanted !== 'gcloud' && wanted !== 'builtin') {
    throw new Error(`BATCH_COURIER_EMULATORS must be auto, gcloud or builtin (got "${value}")`);
  }
  if (wanted === 'builtin') return 'builtin';
  const sdk = cloudSdkRoot();
  const available =
    sdk !== undefined &&
    firestoreLauncher(sdk) !== undefined &&
    pubsubJar(sdk) !== undefined &&
    which('java') !== undefined;
  if (wanted === 'gcloud' && !available) {
    throw new Error(
      'BATCH_COURIER_EMULATORS=gcloud, but the Google Cloud CLI with its Firestore and Pub/Sub emulators (and java) is not installed',
    );
  }
  return available ? 'gcloud' : 'builtin';
}

/** A running emulator process. */
export interface RunningEmulator {
  /** `host:port`, as the `*_EMULATOR_HOST` variables want it. */
  readonly host: string;
  stop(): Promise<void>;
}

async function startProcess(
  name: string,
  command: string,
  args: string[],
  port: number,
): Promise<RunningEmulator> {
  const child: ChildProcess = spawn(command, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<never>((_, reject) => {
    child.once('exit', (code) => reject(new Error(`${name} emulator exited (${code}): ${output}`)));
  });
  const host = `127.0.0.1:${port}`;
  try {
    await Promise.race([waitForHttp(`http://${host}/`, 60_000), exited]);
  } catch (err) {
    killTree(child);
    throw err;
  }
  exited.catch(() => undefined);
  return {
    host,
    stop: async () => {
      if (child.exitCode !== null) return;
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      killTree(child);
      await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
    },
  };
}

function killTree(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGTERM');
  } catch {
    child.kill('SIGTERM');
  }
}

/**
 * Starts the official Firestore emulator on a loopback port: `port`, or a free one. (Starting it
 * again on the port of a stopped one brings a Firestore "back" for outage tests; it starts empty.)
 */
export async function startFirestoreEmulator(
  options: { port?: number } = {},
): Promise<RunningEmulator> {
  const sdk = cloudSdkRoot();
  const launcher = sdk && firestoreLauncher(sdk);
  if (!launcher) throw new Error('the official Firestore emulator is not installed');
  const port = options.port ?? (await freePort());
  return startProcess('Firestore', launcher, ['start', '--host=127.0.0.1', `--port=${port}`], port);
}

/** Starts the official Pub/Sub emulator on a free loopback port. */
export async function startPubSubEmulator(): Promise<RunningEmulator> {
  const sdk = cloudSdkRoot();
  const jar = sdk && pubsubJar(sdk);
  if (!jar) throw new Error('the official Pub/Sub emulator is not installed');
  const port = await freePort();
  return startProcess('Pub/Sub', 'java', ['-jar', jar, '--host=127.0.0.1', `--port=${port}`], port);
}
