#!/usr/bin/env node
/**
 * `npm run package`: stages the deployable artifact of each Cloud Function in `artifact/<target>/`,
 * which Terraform zips and uploads (terraform/source.tf): one bundle per function, built from the
 * TypeScript sources (no `npm run build` needed first) by scripts/bundle.mjs.
 *
 *   artifact/<target>/
 *     index.js, *.js     the function's bundle: its entry and the chunks it loads on demand
 *     package.json       main, type, engines, and one dependency: the functions framework (the
 *                        runtime's framework must be the very module the bundle registers with)
 *     package-lock.json  the repository's lock file cut down to the framework's own tree, so that
 *                        Cloud Build's `npm ci` installs exactly the versions tested here
 *
 * Before it reports success it checks what would otherwise fail only after a deploy: `main`
 * exists, and every package a bundle imports at run time is in that artifact's lock file.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { BUNDLE_MAIN, EXTERNAL_PACKAGES, ROOT, bundleFunctions } from './bundle.mjs';

const ARTIFACT = path.join(ROOT, 'artifact');
/** The package.json fields a deployed function needs (besides `main` and `dependencies`). */
const KEPT_FIELDS = ['name', 'version', 'private', 'license', 'type', 'engines'];
/**
 * Packages a bundled client asks for only inside a try/catch, and does without: node-fetch's
 * optional `require('encoding')` (used only for non-UTF-8 `textConverted()`, which nothing calls).
 */
const OPTIONAL_IMPORTS = new Set(['encoding']);

export class PackageError extends Error {}

/**
 * The lock file location npm installs `name` at for the package at `from` (`''` for the root):
 * its own `node_modules`, else each enclosing one, as Node resolves.
 */
function resolveInLock(packages, from, name) {
  let base = from;
  for (;;) {
    const candidate = `${base ? `${base}/` : ''}node_modules/${name}`;
    if (packages[candidate]) return candidate;
    if (!base) return undefined;
    const cut = base.lastIndexOf('/node_modules/');
    base = cut < 0 ? '' : base.slice(0, cut);
  }
}

/**
 * The repository's lock file (v2/v3) cut down to what `dependencies` need: the root entry with only
 * those dependencies, and every package entry they reach (dependencies, optional and peer
 * dependencies npm installed), unchanged. A dependency missing from the lock is an error.
 */
export function pruneLock(lock, dependencies) {
  const packages = lock.packages;
  if (!packages || typeof packages !== 'object' || !packages['']) {
    throw new PackageError(
      'package-lock.json has no `packages` map: lockfileVersion 2 or 3 is required',
    );
  }
  const keep = new Map();
  const visit = (from, deps, optional) => {
    for (const name of Object.keys(deps ?? {})) {
      const at = resolveInLock(packages, from, name);
      if (at === undefined) {
        if (optional.has(name)) continue; // an optional dependency not installed on this platform
        throw new PackageError(
          `package-lock.json has no ${name} for ${from || 'the root'}: run \`npm install\``,
        );
      }
      if (keep.has(at)) continue;
      const entry = packages[at];
      keep.set(at, entry);
      const optionalHere = new Set([
        ...Object.keys(entry.optionalDependencies ?? {}),
        ...Object.entries(entry.peerDependenciesMeta ?? {})
          .filter(([, meta]) => meta?.optional)
          .map(([n]) => n),
      ]);
      visit(at, { ...entry.dependencies, ...entry.optionalDependencies }, optionalHere);
      const installedPeers = Object.keys(entry.peerDependencies ?? {}).filter(
        (n) => resolveInLock(packages, at, n) !== undefined,
      );
      visit(at, Object.fromEntries(installedPeers.map((n) => [n, '*'])), optionalHere);
    }
  };
  visit('', dependencies, new Set());
  const root = { ...packages[''], dependencies };
  delete root.devDependencies;
  delete root.optionalDependencies;
  delete root.peerDependencies;
  const sorted = [...keep].sort(([a], [b]) => a.localeCompare(b));
  return {
    name: lock.name,
    version: lock.version,
    lockfileVersion: lock.lockfileVersion,
    requires: true,
    packages: { '': root, ...Object.fromEntries(sorted) },
  };
}

/** The deployed package.json of one function. */
function deployedPackageJson(pkg) {
  const out = {};
  for (const field of KEPT_FIELDS) if (pkg[field] !== undefined) out[field] = pkg[field];
  out.main = BUNDLE_MAIN;
  out.dependencies = {};
  for (const name of EXTERNAL_PACKAGES) {
    const range = pkg.dependencies?.[name];
    if (!range) {
      throw new PackageError(`${name} must be a production dependency in package.json`);
    }
    out.dependencies[name] = range;
  }
  return out;
}

function formatSize(bytes) {
  return bytes < 1024
    ? `${bytes} B`
    : bytes < 1024 * 1024
      ? `${(bytes / 1024).toFixed(1)} KiB`
      : `${(bytes / 1024 / 1024).toFixed(2)} MiB`;
}

/** Stages `artifact/`; resolves to what was written, per function. */
export async function stageArtifact(outRoot = ARTIFACT) {
  const pkg = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8'));
  const lockFile = path.join(ROOT, 'package-lock.json');
  if (!existsSync(lockFile)) {
    throw new PackageError('package-lock.json is missing: run `npm install` once and commit it.');
  }
  const lock = JSON.parse(await readFile(lockFile, 'utf8'));

  await rm(outRoot, { recursive: true, force: true });
  await mkdir(outRoot, { recursive: true });
  const bundles = await bundleFunctions(outRoot);
  const problems = [];
  for (const bundle of bundles) {
    const dir = path.join(outRoot, bundle.target);
    const deployed = deployedPackageJson(pkg);
    const prunedLock = pruneLock(lock, deployed.dependencies);
    await writeFile(path.join(dir, 'package.json'), `${JSON.stringify(deployed, null, 2)}\n`);
    await writeFile(
      path.join(dir, 'package-lock.json'),
      `${JSON.stringify(prunedLock, null, 2)}\n`,
    );
    if (!bundle.files.some((f) => f.file === deployed.main)) {
      problems.push(`${bundle.target}: package.json main (${deployed.main}) was not written`);
    }
    for (const name of bundle.externals) {
      if (OPTIONAL_IMPORTS.has(name)) continue;
      if (!(name in deployed.dependencies)) {
        problems.push(
          `${bundle.target}: the bundle imports ${name} at run time, which the artifact does not install`,
        );
      }
    }
  }
  if (problems.length > 0) {
    throw new PackageError(`the staged artifact would not run:\n  - ${problems.join('\n  - ')}`);
  }
  return bundles;
}

async function main(argv) {
  if (argv.length > 0) {
    throw new PackageError(
      `takes no arguments (got ${argv.join(' ')}); it bundles from the sources`,
    );
  }
  const bundles = await stageArtifact();
  for (const bundle of bundles) {
    const total = bundle.files.reduce((sum, f) => sum + f.bytes, 0);
    const largest = bundle.packages
      .slice(0, 6)
      .map(([name, bytes]) => `${name} ${formatSize(bytes)}`)
      .join(', ');
    process.stdout.write(
      `  ${bundle.target}: ${bundle.files.length} files, ${formatSize(total)} (largest parts: ${largest})\n`,
    );
  }
  process.stdout.write(
    `staged ${bundles.length} functions in ${path.relative(process.cwd(), ARTIFACT) || '.'}/ — next: terraform -chdir=terraform apply\n`,
  );
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((err) => {
    process.stderr.write(
      `npm run package: ${err instanceof PackageError ? err.message : (err?.stack ?? String(err))}\n`,
    );
    process.exitCode = 1;
  });
}
