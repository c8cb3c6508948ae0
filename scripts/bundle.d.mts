/** Types of scripts/bundle.mjs, for the TypeScript that imports it (tests, benchmarks). */

/** One deployed function: its target name and entry file (relative to the repository root). */
export interface FunctionBundle {
  target: string;
  entry: string;
}

/** What {@link bundleFunction} wrote. */
export interface BundleResult {
  target: string;
  /** Files written, relative to the output folder, with their sizes in bytes. */
  files: { file: string; bytes: number }[];
  /** Packages the bundle imports at run time (node built-ins aside). */
  externals: string[];
  /** Bytes each package contributes to the output, largest first. */
  packages: [name: string, bytes: number][];
}

export interface BundleOptions {
  /** esbuild's log level (default `warning`). */
  logLevel?: 'silent' | 'error' | 'warning' | 'info';
}

export const ROOT: string;
export const FUNCTION_BUNDLES: readonly FunctionBundle[];
export const EXTERNAL_PACKAGES: readonly string[];
export const BUNDLE_MAIN: string;
export function packageName(specifier: string): string;
export function bundleFunction(
  fn: FunctionBundle,
  outDir: string,
  options?: BundleOptions,
): Promise<BundleResult>;
export function bundleFunctions(outRoot: string, options?: BundleOptions): Promise<BundleResult[]>;
