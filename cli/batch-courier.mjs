#!/usr/bin/env node
/**
 * `batch-courier` (package.json `bin`): runs the compiled command, dist/cli/main.js. The command is
 * TypeScript like the rest of the repository, and Node 20 cannot run TypeScript: when the compiled
 * files are missing (a fresh clone after `npm ci`) or older than a source file, they are compiled
 * first with the repository's own build (`tsc -p tsconfig.build.json`, a few seconds, once).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import process from 'node:process';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const entry = join(root, 'dist', 'cli', 'main.js');
/** The folders the command is compiled from. */
const SOURCES = ['cli', 'shared', 'functions'];

/** The newest modification time of a source file the command is built from. */
function newestSource() {
  let newest = 0;
  for (const dir of SOURCES) {
    const path = join(root, dir);
    if (!existsSync(path)) continue;
    for (const e of readdirSync(path, { withFileTypes: true, recursive: true })) {
      if (e.isFile() && /\.(ts|json)$/.test(e.name) && !e.name.endsWith('.d.ts')) {
        newest = Math.max(newest, statSync(join(e.parentPath, e.name)).mtimeMs);
      }
    }
  }
  return newest;
}

if (!existsSync(entry) || statSync(entry).mtimeMs < newestSource()) {
  process.stderr.write('batch-courier: compiling the command (npm run build)…\n');
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  if (!existsSync(tsc)) {
    process.stderr.write(
      `batch-courier: ${entry} is missing or out of date, and TypeScript is not installed: run \`npm ci\` in ${root} first\n`,
    );
    process.exit(1);
  }
  const build = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], {
    cwd: root,
    stdio: ['ignore', 2, 2],
  });
  // tsc writes its output even when it reports type errors elsewhere: go on if the command exists.
  if (build.status !== 0) {
    process.stderr.write(
      existsSync(entry)
        ? 'batch-courier: the build reported errors (above); running what was compiled\n'
        : 'batch-courier: the build failed (above)\n',
    );
    if (!existsSync(entry)) process.exit(1);
  }
}

await import(pathToFileURL(entry).href);
