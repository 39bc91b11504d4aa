/**
 * The SOAP source's cursor: the watermark it asks from, and the records it has already
 * committed at or after that watermark, so it can re-read the boundary without sending twice.
 *
 * Why both: a "changed since T" service may hold several changes stamped with the same T, and
 * may show them across two polls (or pages). Asking from the last change time *inclusive*
 * (minus `overlapMs`) re-reads the boundary, so nothing stamped T is missed; the `recent` set
 * makes the re-read harmless, even after the outbox dropped its copy (the outbox dedupes only
 * pending rows). Entries older than (watermark - overlapMs) are pruned, because no later poll
 * can return them. Past MAX_RECENT entries (thousands of changes in one millisecond) the
 * oldest are dropped and re-reads may be sent again: downstream dedupe by event id still
 * holds, nothing is lost.
 *
 * Persisted as JSON under the state key `cursor`, in the same commit as the page's events.
 */

export const CURSOR_STATE_KEY = 'cursor';
export const MAX_RECENT = 10_000;

export interface CursorState {
  v: 1;
  /** Unix ms: changes at or after it may still be unseen. */
  watermarkMs: number;
  /** [record key, its change time in ms] of records committed (or quarantined) at or after watermark - overlap. */
  recent: Array<[string, number]>;
}

export function initialCursor(initialIso: string): CursorState {
  return { v: 1, watermarkMs: Date.parse(initialIso), recent: [] };
}

/** The persisted cursor, or undefined if it is not one (a newer or damaged format). */
export function coerceCursor(value: unknown): CursorState | undefined {
  if (!value || typeof value !== 'object') return undefined;
  const c = value as Partial<CursorState>;
  if (c.v !== 1 || typeof c.watermarkMs !== 'number' || !Number.isFinite(c.watermarkMs) || !Array.isArray(c.recent)) return undefined;
  const recent = c.recent.filter((e): e is [string, number] => Array.isArray(e) && typeof e[0] === 'string' && typeof e[1] === 'number');
  return { v: 1, watermarkMs: c.watermarkMs, recent };
}

export interface SeenRecord {
  key: string;
  /** Change time used for pruning: the item's change time, or the run's server time. */
  timeMs: number;
}

/**
 * The cursor after committing a page: the records added to `recent`, the watermark moved to
 * `watermarkMs` (never backwards), and entries no later poll can return pruned.
 */
export function advanceCursor(cursor: CursorState, seen: SeenRecord[], watermarkMs: number, overlapMs: number): { cursor: CursorState; truncated: boolean } {
  const nextWatermark = Math.max(cursor.watermarkMs, watermarkMs);
  const floor = nextWatermark - overlapMs;
  const merged = new Map<string, number>();
  for (const [key, t] of cursor.recent) merged.set(key, t);
  for (const { key, timeMs } of seen) merged.set(key, Math.max(timeMs, merged.get(key) ?? timeMs));
  let recent = [...merged].filter(([, t]) => t >= floor);
  let truncated = false;
  if (recent.length > MAX_RECENT) {
    recent = recent.sort((a, b) => a[1] - b[1]).slice(-MAX_RECENT);
    truncated = true;
  }
  return { cursor: { v: 1, watermarkMs: nextWatermark, recent }, truncated };
}

export function sameCursor(a: CursorState, b: CursorState): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
