/**
 * Seeding a table of requests from a JSONL file, as the examples and the tests do: a table shaped
 * like a user's (`review_id` beside a JSON `request` column), one row per line.
 */
import type { TableRef, TableStore } from './store.js';

/** Creates `ref` with a row per line of `jsonl` (`{"request": …}` lines); returns the row count. */
export function seedRequestsTable(store: TableStore, ref: TableRef, jsonl: string): number {
  const lines = jsonl.split('\n').filter((l) => l.trim() !== '');
  store.createTable(ref, [
    { name: 'review_id', type: 'INTEGER', mode: 'REQUIRED' },
    { name: 'request', type: 'JSON', mode: 'REQUIRED' },
  ]);
  store.insertRows(
    ref,
    lines.map((l, i) => ({
      review_id: i + 1,
      request: (JSON.parse(l) as { request: unknown }).request,
    })),
  );
  return lines.length;
}
