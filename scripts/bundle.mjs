/**
 * One bundle per Cloud Function (esbuild): the function's entry (`functions/entries/<name>/index.ts`)
 * with everything it imports, the Google clients included, tree-shaken, as ES modules for Node 20.
 * Each SDK that the code imports dynamically (on a port's first call) becomes a chunk of its own,
 * read from disk only when that call comes: a cold start parses what the path it takes needs. The
 * functions framework stays outside: the runtime's framework must be the very module the bundle
 * registers its target with, so it is the artifact's one dependency.
 *
 * Used by `npm run package` (scripts/package.mjs), `npm run bench:cold-start` and the bundle tests.
 */
import { readFile } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * The deployed functions: target name (shared/function-targets.ts, checked by
 * test/bundle/bundles.test.ts) and entry file.
 */
export const FUNCTION_BUNDLES = Object.freeze([
  { target: 'submitBatchJob', entry: 'functions/entries/submit-batch-job/index.ts' },
  { target: 'pollBatchJobs', entry: 'functions/entries/poll-batch-jobs/index.ts' },
]);

/** Packages left outside the bundles: the artifact installs them. */
export const EXTERNAL_PACKAGES = Object.freeze(['@google-cloud/functions-framework']);

/** The file name of each bundle's entry in its folder. */
export const BUNDLE_MAIN = 'index.js';

/**
 * Bundled CommonJS code calls `require`, and reads `__dirname` / `__filename`, which an ES module
 * does not have: each output file defines them for itself (after its own imports, under names the
 * bundled code may use freely).
 */
const BANNER = [
  "import { createRequire as __bundleCreateRequire } from 'node:module';",
  "import { dirname as __bundleDirname } from 'node:path';",
  "import { fileURLToPath as __bundleFileURLToPath } from 'node:url';",
  'const require = __bundleCreateRequire(import.meta.url);',
  'const __filename = __bundleFileURLToPath(import.meta.url);',
  'const __dirname = __bundleDirname(__filename);',
].join('\n');

/**
 * JSON files (the clients' protocol descriptions run to megabytes) as `JSON.parse` of a string:
 * V8 reads a JSON string several times faster than the same data as an object literal.
 */
const jsonAsParse = {
  name: 'json-as-parse',
  setup(build) {
    build.onLoad({ filter: /\.json$/ }, async (args) => {
      const text = await readFile(args.path, 'utf8');
      // Parsed here first: a malformed file fails the build, not a cold start.
      const json = JSON.stringify(JSON.parse(text));
      return { contents: `module.exports = JSON.parse(${JSON.stringify(json)});`, loader: 'js' };
    });
  },
};

/** `@scope/name/sub` → `@scope/name`; `name/sub` → `name`. */
export function packageName(specifier) {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? specifier);
}

const BUILTINS = new Set(builtinModules);
const isBuiltin = (specifier) => specifier.startsWith('node:') || BUILTINS.has(specifier);

/**
 * Bundles one function into `outDir` (`index.js` and its chunks). Resolves to what was written and
 * what it imports from outside: `files` (relative to outDir, with sizes), `packages` (bytes each
 * package contributes to the output, largest first), and `externals` (packages the bundle imports
 * at run time).
 */
export async function bundleFunction({ target, entry }, outDir, options = {}) {
  const result = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: { [BUNDLE_MAIN.replace(/\.js$/, '')]: path.join(ROOT, entry) },
    outdir: outDir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    external: [...EXTERNAL_PACKAGES],
    banner: { js: BANNER },
    plugins: [jsonAsParse],
    chunkNames: '[name]-[hash]',
    // Whitespace and syntax only: function and class names stay in stack traces.
    minifyWhitespace: true,
    minifySyntax: true,
    legalComments: 'eof',
    metafile: true,
    logLevel: options.logLevel ?? 'warning',
    write: true,
  });
  const outputs = Object.entries(result.metafile.outputs);
  const files = outputs
    .map(([file, out]) => ({
      file: path.relative(outDir, path.join(ROOT, file)),
      bytes: out.bytes,
    }))
    .sort((a, b) => a.file.localeCompare(b.file));
  const externals = new Set();
  for (const [, out] of outputs) {
    for (const imported of out.imports) {
      if (imported.external && !isBuiltin(imported.path)) externals.add(packageName(imported.path));
    }
  }
  const packages = new Map();
  for (const [, out] of outputs) {
    for (const [input, { bytesInOutput }] of Object.entries(out.inputs)) {
      const name = /.*node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input)?.[1] ?? '(batch-courier)';
      packages.set(name, (packages.get(name) ?? 0) + bytesInOutput);
    }
  }
  return {
    target,
    files,
    externals: [...externals].sort(),
    packages: [...packages].sort((a, b) => b[1] - a[1]),
  };
}

/** Bundles every function into `outRoot/<target>/`. */
export async function bundleFunctions(outRoot, options = {}) {
  const bundles = [];
  for (const fn of FUNCTION_BUNDLES) {
    bundles.push(await bundleFunction(fn, path.join(outRoot, fn.target), options));
  }
  return bundles;
}
