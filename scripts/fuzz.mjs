#!/usr/bin/env node
// Runs the model-based test of the promise with any number of schedules:
//   npm run fuzz -- --schedules 100000 --seed 42 [--firestore-schedules 500]
// A failure prints its seed, the shrunk schedule (one line per action) and the broken invariant.
import { spawnSync } from 'node:child_process';
import console from 'node:console';
import process from 'node:process';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    schedules: { type: 'string', default: '5000' },
    seed: { type: 'string', default: String(Date.now() % 2 ** 31) },
    'firestore-schedules': { type: 'string', default: '50' },
  },
});
for (const [name, value] of Object.entries(values)) {
  if (!/^\d+$/.test(value)) {
    console.error(`--${name} takes a whole number, not "${value}"`);
    process.exit(2);
  }
}
console.log(`fuzz: ${values.schedules} schedules from seed ${values.seed}`);
const run = spawnSync('npx', ['vitest', 'run', 'test/model'], {
  stdio: 'inherit',
  env: {
    ...process.env,
    FUZZ_SCHEDULES: values.schedules,
    FUZZ_SEED: values.seed,
    FUZZ_FIRESTORE_SCHEDULES: values['firestore-schedules'],
  },
});
process.exit(run.status ?? 1);
