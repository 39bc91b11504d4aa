/** Plain-text tables and durations for the CLI's human output (`--json` is for scripts). */

/** Columns padded to their widest cell, two spaces apart; no trailing spaces. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return `${[header, ...rows].map(line).join('\n')}\n`;
}

/** Label / value lines, values aligned. */
export function formatPairs(pairs: readonly (readonly [string, string])[]): string {
  const width = Math.max(0, ...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${k.padEnd(width)}  ${v}`.trimEnd()).join('\n') + '\n';
}

/** A duration for people: `850 ms`, `42 s`, `7 min 5 s`, `3 h 12 min`, `2 d 4 h`; `-` when unknown. */
export function formatDuration(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '-';
  const t = Math.max(0, ms);
  if (t < 1000) return `${Math.round(t)} ms`;
  const s = Math.floor(t / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86_400)} d ${Math.floor((s % 86_400) / 3600)} h`;
}

/** How long ago a Unix-ms instant was, e.g. `42 s ago`; `-` when unknown. */
export function formatAgo(atMs: number | undefined, now = Date.now()): string {
  return atMs === undefined ? '-' : `${formatDuration(now - atMs)} ago`;
}
