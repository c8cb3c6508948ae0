/**
 * The deployed lock file: the repository's, cut down to the functions framework's own tree with
 * npm's resolution (a package's own node_modules first, then each enclosing one), so that Cloud
 * Build's `npm ci` installs exactly the versions tested here.
 */
import { describe, expect, it } from 'vitest';
import { PackageError, pruneLock, type LockFile } from '../../scripts/package.mjs';

const lock: LockFile = {
  name: 'batch-courier',
  version: '0.1.0',
  lockfileVersion: 3,
  requires: true,
  packages: {
    '': {
      name: 'batch-courier',
      dependencies: { framework: '^5.0.0', sdk: '^1.0.0' },
      devDependencies: { tester: '^1.0.0' },
    },
    'node_modules/framework': {
      version: '5.0.5',
      dependencies: { express: '^5.0.0', shared: '^2.0.0' },
      optionalDependencies: { 'native-speedup': '^1.0.0' },
    },
    'node_modules/framework/node_modules/shared': { version: '2.1.0' },
    'node_modules/express': { version: '5.1.0', dependencies: { shared: '^1.0.0' } },
    'node_modules/shared': { version: '1.4.0' },
    'node_modules/sdk': { version: '1.0.0', dependencies: { shared: '^1.0.0' } },
    'node_modules/tester': { version: '1.0.0', dev: true },
  },
};

describe('pruneLock', () => {
  it("keeps the dependency's tree, each package where npm resolves it, and nothing else", () => {
    const pruned = pruneLock(lock, { framework: '^5.0.0' });
    expect(Object.keys(pruned.packages)).toEqual([
      '',
      'node_modules/express',
      'node_modules/framework',
      'node_modules/framework/node_modules/shared',
      'node_modules/shared',
    ]);
    expect(pruned.packages['']).toEqual({
      name: 'batch-courier',
      dependencies: { framework: '^5.0.0' },
    });
    expect(pruned.packages['node_modules/express']).toBe(lock.packages['node_modules/express']);
    expect(pruned).toMatchObject({ lockfileVersion: 3, requires: true });
  });

  it('an optional dependency that is not installed is left out; a required one is an error', () => {
    expect(() => pruneLock(lock, { framework: '^5.0.0' })).not.toThrow();
    const broken: LockFile = {
      ...lock,
      packages: { ...lock.packages, 'node_modules/express': { dependencies: { gone: '^1' } } },
    };
    expect(() => pruneLock(broken, { framework: '^5.0.0' })).toThrow(PackageError);
    expect(() => pruneLock(broken, { framework: '^5.0.0' })).toThrow(
      'package-lock.json has no gone for node_modules/express: run `npm install`',
    );
  });

  it('a lock file without a packages map is refused', () => {
    expect(() => pruneLock({ lockfileVersion: 1 } as unknown as LockFile, {})).toThrow(
      /lockfileVersion 2 or 3 is required/,
    );
  });
});
