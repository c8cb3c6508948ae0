/**
 * The deployed bundles, staged as `npm run package` stages them: each holds its function's entry
 * and imports at run time nothing but the functions framework; served by the framework's own
 * command line (as Cloud Functions serves the artifact), each registers its target and answers;
 * against the local emulators, the submit bundle turns an upload into a Vertex AI job and the poll
 * bundle announces it once it has finished.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BUNDLE_MAIN, FUNCTION_BUNDLES, ROOT } from '../../scripts/bundle.mjs';
import { stageArtifact } from '../../scripts/package.mjs';
import type { BundleResult } from '../../scripts/bundle.mjs';
import { FUNCTION_TARGETS } from '../../shared/function-targets.js';
import { freePort } from '../../local/net.js';
import { startStack, type Stack } from '../../local/stack.js';
import { storageFinalizedRequest } from '../../local/storage/eventarc.js';

const OUT = path.join(ROOT, '.local', `test-bundles-${randomUUID().slice(0, 8)}`);
/** Uploads for the bundles: outside the stack's own `inputs/`, which its in-process function takes. */
const PREFIX = 'bundle-test/';
/** The framework's command line, as the runtime starts it (`functions-framework --target=…`). */
const FRAMEWORK = path.join(ROOT, 'node_modules/.bin/functions-framework');
const example = readFileSync(path.join(ROOT, 'examples/customer-reviews.jsonl'));

let bundles: BundleResult[];
let stack: Stack;
const running = new Set<ChildProcess>();

beforeAll(async () => {
  [bundles, stack] = await Promise.all([
    stageArtifact(OUT),
    startStack({
      emulators: process.env.BATCH_COURIER_EMULATORS,
      // Beside the artifact, not in it: staging empties its folder, while the stack starts.
      root: `${OUT}-stack`,
      pollIntervalMs: 0,
    }),
  ]);
});
afterEach(() => {
  for (const child of running) child.kill('SIGTERM');
  running.clear();
});
afterAll(async () => {
  await stack?.stop();
  await rm(OUT, { recursive: true, force: true });
  await rm(`${OUT}-stack`, { recursive: true, force: true });
});

/** Resolves once something accepts connections on `port`. */
async function listening(port: number, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`the function exited: ${output()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.end();
        resolve(true);
      }).on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the function did not listen within 20 s: ${output()}`);
}

/**
 * Serves a staged bundle with the functions framework's command line, configured as Terraform
 * configures the functions (plus the emulators); resolves to its URL.
 */
async function serve(target: string, jobs = 'bundle-jobs'): Promise<string> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [FRAMEWORK, `--target=${target}`, `--source=${path.join(OUT, target)}`, `--port=${port}`],
    {
      cwd: path.join(OUT, target),
      env: {
        PATH: process.env.PATH,
        METADATA_SERVER_DETECTION: 'none',
        ...stack.env,
        INPUT_PREFIX: PREFIX,
        JOBS_COLLECTION: jobs,
        LOG_LEVEL: 'warning',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  running.add(child);
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString('utf8')));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString('utf8')));
  await listening(port, child, () => output);
  return `http://127.0.0.1:${port}/`;
}

describe('bundles', () => {
  it('one per function target, importing nothing at run time but the functions framework', async () => {
    expect(FUNCTION_BUNDLES.map((b) => b.target).sort()).toEqual(
      Object.values(FUNCTION_TARGETS).sort(),
    );
    for (const bundle of bundles) {
      expect(bundle.files.map((f) => f.file)).toContain(BUNDLE_MAIN);
      expect(bundle.externals.filter((e) => e !== 'encoding')).toEqual([
        '@google-cloud/functions-framework',
      ]);
      const dir = path.join(OUT, bundle.target);
      const pkg = JSON.parse(await readFile(path.join(dir, 'package.json'), 'utf8')) as {
        main: string;
        type: string;
        dependencies: Record<string, string>;
      };
      expect(pkg).toMatchObject({ main: BUNDLE_MAIN, type: 'module' });
      expect(Object.keys(pkg.dependencies)).toEqual(['@google-cloud/functions-framework']);
      const lock = JSON.parse(await readFile(path.join(dir, 'package-lock.json'), 'utf8')) as {
        packages: Record<string, unknown>;
      };
      expect(lock.packages).toHaveProperty(['node_modules/@google-cloud/functions-framework']);
      expect(lock.packages).toHaveProperty(['node_modules/express']);
      expect(lock.packages).not.toHaveProperty(['node_modules/@google-cloud/firestore']);
      expect(lock.packages).not.toHaveProperty(['node_modules/vitest']);
    }
  });

  it('the submit bundle registers submitBatchJob: an upload that is not an input → 204', async () => {
    const url = await serve(FUNCTION_TARGETS.submit);
    const object = await stack.upload(`elsewhere/${randomUUID()}.jsonl`, example);
    const event = storageFinalizedRequest(object, randomUUID());
    const res = await fetch(url, { method: 'POST', headers: event.headers, body: event.body });
    expect(res.status).toBe(204);
  });

  it('the poll bundle registers pollBatchJobs: GET → 405, use POST', async () => {
    const url = await serve(FUNCTION_TARGETS.poll);
    const res = await fetch(url);
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('POST');
  });

  it('against the emulators: submit makes a job of an upload, poll announces it once it has finished', async (ctx) => {
    if (!stack.services.firestore.startsWith('official')) {
      ctx.skip(
        'needs the official Firestore emulator (Google Cloud CLI): the functions share their job store through it',
      );
    }
    const jobs = `bundle-${randomUUID().slice(0, 8)}`;
    const [submitUrl, pollUrl] = await Promise.all([
      serve(FUNCTION_TARGETS.submit, jobs),
      serve(FUNCTION_TARGETS.poll, jobs),
    ]);
    const name = `${PREFIX}${randomUUID()}.jsonl`;
    const object = await stack.upload(name, example);
    const before = stack.vertex.jobs().length;
    const event = storageFinalizedRequest(object, randomUUID());
    const submitted = await fetch(submitUrl, {
      method: 'POST',
      headers: event.headers,
      body: event.body,
    });
    expect(submitted.status).toBe(204);
    expect(stack.vertex.jobs()).toHaveLength(before + 1);

    await stack.vertex.settle();
    const polled = await fetch(pollUrl, { method: 'POST' });
    expect(polled.status).toBe(200);
    expect(await polled.json()).toMatchObject({ completed: 1, published: 1, errors: 0 });
    const announced = await stack.waitForEvent((e) => e.input.name === name, 10_000);
    expect(announced).toMatchObject({
      eventType: 'job.completed',
      state: 'JOB_STATE_SUCCEEDED',
      input: { requestCount: 12 },
    });
  });
});
