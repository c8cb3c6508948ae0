/**
 * How the command shows things to a person: colours (only on a terminal, and never with NO_COLOR),
 * borderless tables, ages, sizes and progress bars. JSON output (`--json`) bypasses all of it.
 */
import Table from 'cli-table3';
import picocolors from 'picocolors';

/** Colour functions; identity functions when colour is off. */
export type Colors = ReturnType<typeof picocolors.createColors>;

/** Colours for a stream: on for a terminal unless NO_COLOR is set (FORCE_COLOR forces them). */
export function colorsFor(
  stream: { isTTY?: boolean },
  env: Readonly<Record<string, string | undefined>>,
): Colors {
  const on =
    env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '0'
      ? true
      : env.NO_COLOR === undefined && stream.isTTY === true && env.TERM !== 'dumb';
  return picocolors.createColors(on);
}

/** A table without borders, columns two spaces apart, header dimmed. */
export function table(head: string[], rows: (string | number)[][], c: Colors): string {
  const t = new Table({
    head: head.map((h) => c.dim(h)),
    chars: {
      top: '',
      'top-mid': '',
      'top-left': '',
      'top-right': '',
      bottom: '',
      'bottom-mid': '',
      'bottom-left': '',
      'bottom-right': '',
      left: '',
      'left-mid': '',
      mid: '',
      'mid-mid': '',
      right: '',
      'right-mid': '',
      middle: '  ',
    },
    style: { 'padding-left': 0, 'padding-right': 0, head: [], border: [] },
  });
  t.push(...rows.map((r) => r.map(String)));
  return t
    .toString()
    .split('\n')
    .map((l) => l.trimEnd())
    .join('\n');
}

/** `42s ago`, `5m ago`, `3h ago`, `2d ago` (or `in 5m` for the future). */
export function ago(iso: string | null | undefined, now: Date): string {
  if (!iso) return '-';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  const diff = now.getTime() - t;
  const text = duration(Math.abs(diff));
  return diff >= 0 ? `${text} ago` : `in ${text}`;
}

/** A duration, in its largest whole unit: `42s`, `5m`, `3h`, `2d`. */
export function duration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

/** `812 B`, `2.9 kB`, `14.2 MB`. */
export function bytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n;
  let unit = 'B';
  for (const u of units) {
    if (v < 1000) break;
    v /= 1000;
    unit = u;
  }
  return `${v.toFixed(1)} ${unit}`;
}

/** A progress bar of `width` cells for `done` of `total`, with its percentage. */
export function progressBar(done: number, total: number, width = 20): string {
  const ratio = total > 0 ? Math.min(1, Math.max(0, done / total)) : 0;
  const full = Math.round(ratio * width);
  return `${'█'.repeat(full)}${'░'.repeat(width - full)} ${String(Math.floor(ratio * 100)).padStart(3)}%`;
}

/** A model resource name without its publisher path: `gemini-2.5-flash`. */
export function shortModel(model: string): string {
  return model.replace(/^(projects\/[^/]+\/locations\/[^/]+\/)?publishers\/[^/]+\/models\//, '');
}

/** `label   value` lines, labels padded to one column. */
export function fields(rows: [string, string][], c: Colors): string {
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${c.dim(k.padEnd(width))}  ${v}`).join('\n');
}
