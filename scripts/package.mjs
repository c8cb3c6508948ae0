#!/usr/bin/env node
/**
 * `npm run package`: stages the deployable artifact of both Cloud Functions in `artifact/`, which
 * Terraform zips and uploads (terraform/source.tf). Runs nothing but file staging: build first with
 * `npm run build`, or pass `--build` to have this script run it.
 *
 *   artifact/
 *     package.json       main, type, engines, dependencies (no devDependencies, no scripts: Cloud
 *                        Build installs with `npm ci` and would otherwise run a `build` script whose
 *                        tools are dev dependencies)
 *     package-lock.json  unchanged: `npm ci` installs exactly the locked production tree
 *     dist/functions/    compiled entry points (package.json `main` is dist/functions/index.js)
 *     dist/shared/       compiled shared code
 *
 * Before it reports success it checks what would otherwise fail only after a deploy: `dist/` is
 * not older than the sources, `main` exists, every relative import resolves inside the artifact,
 * and every package imported is a production dependency.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, cp, mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DIST = path.join(ROOT, 'dist');
const ARTIFACT = path.join(ROOT, 'artifact');
/** Compiled directories that run in the cloud; dist/local, dist/bench and dist/test do not. */
const STAGED_DIRS = ['functions', 'shared'];
/** The package.json fields the deployed package needs. */
const KEPT_FIELDS = [
  'name',
  'version',
  'private',
  'license',
  'type',
  'main',
  'engines',
  'dependencies',
];

class PackageError extends Error {}

/** Every file under `dir`, as paths relative to it, sorted. */
async function listFiles(dir) {
  const out = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(path.relative(dir, path.join(entry.parentPath, entry.name)));
  }
  return out.sort();
}

/** Fails when a source file of a staged directory has no compiled output, or a newer one. */
async function assertDistFresh() {
  if (!existsSync(DIST)) {
    throw new PackageError(
      'dist/ does not exist: run `npm run build` first (or `npm run package -- --build`).',
    );
  }
  const stale = [];
  for (const dir of STAGED_DIRS) {
    const srcDir = path.join(ROOT, dir);
    if (!existsSync(srcDir)) continue;
    for (const rel of await listFiles(srcDir)) {
      if (!rel.endsWith('.ts') || rel.endsWith('.d.ts')) continue;
      const src = path.join(srcDir, rel);
      const out = path.join(DIST, dir, rel.replace(/\.ts$/, '.js'));
      if (!existsSync(out) || (await stat(out)).mtimeMs < (await stat(src)).mtimeMs) {
        stale.push(path.join(dir, rel));
      }
    }
  }
  if (stale.length > 0) {
    throw new PackageError(
      `dist/ is older than ${stale.length} source file(s) (${stale.slice(0, 5).join(', ')}${stale.length > 5 ? ', …' : ''}): run \`npm run build\` first.`,
    );
  }
}

/** The deployed package.json: only what running needs. */
function deployedPackageJson(pkg) {
  const out = {};
  for (const field of KEPT_FIELDS) if (pkg[field] !== undefined) out[field] = pkg[field];
  return out;
}

/** `import … from 'x'`, `export … from 'x'`, and the `} from 'x'` line of a multi-line import. */
const STATIC_IMPORT = /^\s*(?:(?:import|export)\b|\})[^'"]*?\bfrom\s*['"]([^'"]+)['"]/;
/** `import 'x'` (side effects only). */
const SIDE_EFFECT_IMPORT = /^\s*import\s*['"]([^'"]+)['"]/;
const DYNAMIC_IMPORT = /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;

/** The module specifiers a compiled ES module imports (static, side-effect and literal dynamic). */
function importsOf(source) {
  const specifiers = [];
  for (const line of source.split('\n')) {
    const trimmed = line.trimStart();
    if (trimmed.startsWith('//') || trimmed.startsWith('*') || trimmed.startsWith('/*')) continue;
    const m = STATIC_IMPORT.exec(line) ?? SIDE_EFFECT_IMPORT.exec(line);
    if (m?.[1]) specifiers.push(m[1]);
    for (const d of line.matchAll(DYNAMIC_IMPORT)) if (d[1]) specifiers.push(d[1]);
  }
  return specifiers;
}

/** `@scope/name/sub` → `@scope/name`; `name/sub` → `name`. */
function packageName(specifier) {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? specifier);
}

/** Problems with the imports of the staged code: relative ones outside it, packages not deployed. */
async function importProblems(files, dependencies) {
  const builtins = new Set(builtinModules);
  const problems = [];
  for (const rel of files.filter((f) => f.endsWith('.js'))) {
    const file = path.join(ARTIFACT, rel);
    for (const specifier of importsOf(await readFile(file, 'utf8'))) {
      if (specifier.startsWith('.') || specifier.startsWith('/')) {
        const target = path.resolve(path.dirname(file), specifier);
        if (!target.startsWith(ARTIFACT + path.sep) || !existsSync(target)) {
          problems.push(`${rel} imports ${specifier}, which is not in the artifact`);
        }
      } else if (specifier.startsWith('node:') || builtins.has(specifier)) {
        continue;
      } else if (!(packageName(specifier) in dependencies)) {
        problems.push(`${rel} imports ${specifier}, which is not a production dependency`);
      }
    }
  }
  return problems;
}

function formatSize(bytes) {
  return bytes < 1024
    ? `${bytes} B`
    : bytes < 1024 * 1024
      ? `${(bytes / 1024).toFixed(1)} KiB`
      : `${(bytes / 1024 / 1024).toFixed(2)} MiB`;
}

async function main(argv) {
  if (argv.includes('--build')) {
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    const build = spawnSync(npm, ['run', 'build'], { cwd: ROOT, stdio: 'inherit' });
    if (build.status !== 0) throw new PackageError('npm run build failed');
  }
  await assertDistFresh();

  const pkg = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8'));
  const lockFile = path.join(ROOT, 'package-lock.json');
  if (!existsSync(lockFile))
    throw new PackageError('package-lock.json is missing: run `npm install` once and commit it.');

  await rm(ARTIFACT, { recursive: true, force: true });
  await mkdir(path.join(ARTIFACT, 'dist'), { recursive: true });
  for (const dir of STAGED_DIRS) {
    const from = path.join(DIST, dir);
    if (!existsSync(from))
      throw new PackageError(`dist/${dir} does not exist: run \`npm run build\` first.`);
    // Only compiled code: source maps point at TypeScript files that are not shipped, and a .js
    // whose .ts was deleted is a leftover of an earlier build.
    await cp(from, path.join(ARTIFACT, 'dist', dir), {
      recursive: true,
      filter: (src) => {
        if (/\.(map|d\.ts|tsbuildinfo)$/.test(src)) return false;
        if (!src.endsWith('.js')) return true;
        return existsSync(path.join(ROOT, path.relative(DIST, src)).replace(/\.js$/, '.ts'));
      },
    });
  }
  const deployed = deployedPackageJson(pkg);
  await writeFile(path.join(ARTIFACT, 'package.json'), `${JSON.stringify(deployed, null, 2)}\n`);
  await copyFile(lockFile, path.join(ARTIFACT, 'package-lock.json'));

  const files = await listFiles(ARTIFACT);
  const problems = [];
  if (typeof deployed.main !== 'string' || !files.includes(path.normalize(deployed.main))) {
    problems.push(`package.json main (${String(deployed.main)}) is not in the artifact`);
  }
  problems.push(...(await importProblems(files, deployed.dependencies ?? {})));
  if (problems.length > 0) {
    throw new PackageError(`the staged artifact would not run:\n  - ${problems.join('\n  - ')}`);
  }

  let total = 0;
  for (const rel of files) {
    const { size } = await stat(path.join(ARTIFACT, rel));
    total += size;
    process.stdout.write(`  ${formatSize(size).padStart(10)}  ${rel}\n`);
  }
  process.stdout.write(
    `staged ${files.length} files, ${formatSize(total)}, in ${path.relative(process.cwd(), ARTIFACT) || '.'}/ — next: terraform -chdir=terraform apply\n`,
  );
}

main(process.argv.slice(2)).catch((err) => {
  process.stderr.write(
    `npm run package: ${err instanceof PackageError ? err.message : (err?.stack ?? String(err))}\n`,
  );
  process.exitCode = 1;
});
