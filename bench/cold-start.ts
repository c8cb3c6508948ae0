/**
 * Cold start: how long Node takes to load the function entry (`dist/functions/index.js`), and what
 * the lazily loaded clients of each target add on the first invocation. Each figure is the median
 * of fresh processes. Run: `npm run bench:cold-start` (after `npm run build`, which it runs).
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ENTRY = fileURLToPath(new URL('../functions/index.js', import.meta.url));
const RUNS = Number(process.env.RUNS ?? 9);
const ENV = {
  ...process.env,
  GOOGLE_CLOUD_PROJECT: 'demo-project',
  OUTPUT_URI_PREFIX: 'gs://bench-out',
  COMPLETION_TOPIC: 'bench-events',
  METADATA_SERVER_DETECTION: 'none',
  FUNCTION_TARGET: '',
};

/** Milliseconds from process start until `code` has run, median of RUNS fresh processes. */
function measure(code: string): number {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const out = execFileSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `${code}\nprocess.stdout.write(String(performance.now()));process.exit(0);`,
      ],
      { env: ENV, encoding: 'utf8' },
    );
    times.push(Number(out));
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)] ?? NaN;
}

const bare = measure('');
const entry = measure(`await import(${JSON.stringify(ENTRY)});`);
const submitClients = measure(
  `await import(${JSON.stringify(ENTRY)}); await Promise.all([import('@google-cloud/firestore'), import('@google-cloud/storage'), import('google-auth-library')]);`,
);
const pollClients = measure(
  `await import(${JSON.stringify(ENTRY)}); await Promise.all([import('@google-cloud/firestore'), import('@google-cloud/pubsub'), import('google-auth-library')]);`,
);
const everything = measure(
  `await import(${JSON.stringify(ENTRY)}); await Promise.all([import('@google-cloud/firestore'), import('@google-cloud/pubsub'), import('@google-cloud/storage'), import('google-auth-library')]);`,
);

const row = (what: string, ms: number): string =>
  `${what.padEnd(58)} ${ms.toFixed(0).padStart(6)} ms  (+${(ms - bare).toFixed(0)} ms over bare node)`;
console.log(`cold start, median of ${RUNS} fresh processes, node ${process.version}`);
console.log(row('bare node', bare));
console.log(row('function entry (config + both targets registered)', entry));
console.log(row('+ submitBatchJob clients (firestore, storage, auth)', submitClients));
console.log(row('+ pollBatchJobs clients (firestore, pubsub, auth)', pollClients));
console.log(row('all four SDKs (what an eager entry would cost)', everything));
