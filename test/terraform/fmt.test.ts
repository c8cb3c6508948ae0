/** `terraform fmt -check`: the only check that needs the terraform binary (no providers needed). */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ROOT } from './tf-module.js';

const hasTerraform = spawnSync('terraform', ['version'], { stdio: 'ignore' }).status === 0;

describe('terraform: format', () => {
  // Skipped, not failed, where no terraform binary is on PATH: some machines cannot install one,
  // and formatting is the only thing here that needs it.
  it.skipIf(!hasTerraform)(
    `terraform fmt -check -recursive terraform${hasTerraform ? '' : ' (skipped: no terraform binary on PATH)'}`,
    () => {
      const run = spawnSync('terraform', ['fmt', '-check', '-recursive', 'terraform'], {
        cwd: ROOT,
        encoding: 'utf8',
      });
      expect(run.stdout, 'files terraform fmt would rewrite').toBe('');
      expect(run.status).toBe(0);
    },
  );
});
