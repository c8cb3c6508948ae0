/** Types of scripts/package.mjs, for the TypeScript that imports it (tests). */
import type { BundleResult } from './bundle.mjs';

/** A problem with the artifact, reported without a stack trace. */
export class PackageError extends Error {}

/** A package-lock.json (lockfileVersion 2 or 3), as far as pruning reads it. */
export interface LockFile {
  name?: string;
  version?: string;
  lockfileVersion: number;
  requires?: boolean;
  packages: Record<string, LockEntry>;
}

export interface LockEntry {
  version?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  devDependencies?: Record<string, string>;
  [field: string]: unknown;
}

/** The lock file cut down to what `dependencies` reach. */
export function pruneLock(lock: LockFile, dependencies: Record<string, string>): LockFile;

/** Stages every function's artifact under `outRoot/<target>/` (default `artifact/`). */
export function stageArtifact(outRoot?: string): Promise<BundleResult[]>;
