/**
 * The layer rule: only adapters (shared/adapters) and composition roots (functions/**\/index.ts,
 * functions/dependencies.ts, and the command's cli/dependencies.ts) import Google SDKs; handlers,
 * pure logic and the command's own code never do.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = new URL('../..', import.meta.url).pathname;

function tsFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)));
}

const SDK =
  /from\s+['"](@google-cloud\/[^'"]+|google-auth-library)['"]|import\(\s*['"](@google-cloud\/[^'"]+|google-auth-library)['"]\s*\)/;

describe('layer rule', () => {
  it('only adapters and composition roots import @google-cloud/* or google-auth-library', () => {
    const offenders = [...tsFiles('functions'), ...tsFiles('shared'), ...tsFiles('cli')].filter(
      (file) => {
        const allowed =
          file.startsWith('shared/adapters/') ||
          file === 'functions/dependencies.ts' ||
          file === 'cli/dependencies.ts' ||
          /^functions\/(.+\/)?index\.ts$/.test(file);
        return !allowed && SDK.test(readFileSync(join(ROOT, file), 'utf8'));
      },
    );
    expect(offenders).toEqual([]);
  });

  it('the command sees SDKs only through its composition root', () => {
    // Checked on the command's files themselves, so that the rule above cannot pass by missing them.
    const cli = tsFiles('cli');
    expect(cli).toContain('cli/dependencies.ts');
    expect(cli.filter((f) => SDK.test(readFileSync(join(ROOT, f), 'utf8')))).toEqual([
      'cli/dependencies.ts',
    ]);
  });

  it('handlers never read process.env', () => {
    const offenders = [...tsFiles('functions'), ...tsFiles('shared')].filter(
      (file) =>
        !file.endsWith('index.ts') && /process\.env/.test(readFileSync(join(ROOT, file), 'utf8')),
    );
    expect(offenders).toEqual([]);
  });
});
