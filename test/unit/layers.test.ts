/**
 * The layer rule: only adapters (shared/adapters) and composition roots (functions/**\/index.ts,
 * functions/dependencies.ts)
 * import Google SDKs; handlers and pure logic never do.
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
    const offenders = [...tsFiles('functions'), ...tsFiles('shared')].filter((file) => {
      const allowed =
        file.startsWith('shared/adapters/') ||
        file === 'functions/dependencies.ts' ||
        /^functions\/(.+\/)?index\.ts$/.test(file);
      return !allowed && SDK.test(readFileSync(join(ROOT, file), 'utf8'));
    });
    expect(offenders).toEqual([]);
  });

  it('handlers never read process.env', () => {
    const offenders = [...tsFiles('functions'), ...tsFiles('shared')].filter(
      (file) =>
        !file.endsWith('index.ts') && /process\.env/.test(readFileSync(join(ROOT, file), 'utf8')),
    );
    expect(offenders).toEqual([]);
  });
});
