/**
 * The log catalogue: the logger accepts only its names (checked by the compiler); this checks the
 * other direction, that every name in it is emitted somewhere, so dashboards and alerts built on
 * the list never wait for a line that cannot come.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LOG_EVENT_NAMES } from '../../shared/log-events.js';

const ROOT = new URL('../..', import.meta.url).pathname;
const SOURCES = ['functions', 'shared']
  .flatMap((dir) =>
    readdirSync(join(ROOT, dir), { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile() && e.name.endsWith('.ts') && e.name !== 'log-events.ts')
      .map((e) => join(e.parentPath, e.name)),
  )
  .map((file) => readFileSync(file, 'utf8'))
  .join('\n');

describe('log catalogue', () => {
  it.each(LOG_EVENT_NAMES)('%s is emitted by the functions', (name) => {
    expect(SOURCES).toContain(`'${name}'`);
  });
});
