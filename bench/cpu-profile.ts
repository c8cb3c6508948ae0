/**
 * Where a `.cpuprofile` (written by `node --cpu-prof`) spends its time: self time per function and
 * per source file, most first. Garbage collection and idle time are their own rows.
 *
 *   node dist/bench/cpu-profile.js <file.cpuprofile> [rows]
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** One row of the summary: a function (or a file) and its self time. */
export interface ProfileRow {
  name: string;
  ms: number;
  share: number;
}

/** Where the file's path starts to be interesting (after `node_modules/` or the repository). */
function shortUrl(url: string): string {
  if (url === '') return '(native)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) return url.slice(nm + 'node_modules/'.length);
  const dist = url.lastIndexOf('/dist/');
  if (dist >= 0) return url.slice(dist + '/dist/'.length);
  return url.replace(/^file:\/\//, '');
}

/** Self time per function and per file of `path`, most first. */
export function summarizeProfile(path: string): {
  totalMs: number;
  functions: ProfileRow[];
  files: ProfileRow[];
} {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => {
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  const totalUs = profile.endTime - profile.startTime;
  const functions = new Map<string, number>();
  const files = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)?.callFrame;
    if (!frame) continue;
    const file = shortUrl(frame.url);
    const name = frame.url
      ? `${frame.functionName || '(anonymous)'} ${file}:${frame.lineNumber + 1}`
      : frame.functionName || '(anonymous)';
    functions.set(name, (functions.get(name) ?? 0) + us);
    const group = frame.url ? file : `(${frame.functionName || 'native'})`;
    files.set(group, (files.get(group) ?? 0) + us);
  }
  const rows = (m: Map<string, number>): ProfileRow[] =>
    [...m.entries()]
      .map(([name, us]) => ({ name, ms: us / 1000, share: us / totalUs }))
      .sort((a, b) => b.ms - a.ms);
  return { totalMs: totalUs / 1000, functions: rows(functions), files: rows(files) };
}

/** The summary as text: the `top` functions and files. */
export function formatProfile(path: string, top = 25): string {
  const { totalMs, functions, files } = summarizeProfile(path);
  const line = (r: ProfileRow): string =>
    `  ${(r.ms / 1000).toFixed(2).padStart(7)} s ${(r.share * 100).toFixed(1).padStart(5)}%  ${r.name}`;
  return [
    `profile ${path}: ${(totalMs / 1000).toFixed(1)} s`,
    'self time by function:',
    ...functions.slice(0, top).map(line),
    'self time by file:',
    ...files.slice(0, top).map(line),
  ].join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [path, top] = process.argv.slice(2);
  if (!path) throw new Error('usage: node dist/bench/cpu-profile.js <file.cpuprofile> [rows]');
  console.log(formatProfile(path, Number(top ?? 25)));
}
