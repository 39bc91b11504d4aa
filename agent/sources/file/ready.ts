/**
 * The `ready` conventions: when has the writer finished a file? A file that is not ready is
 * left where it is, untouched, and looked at again later.
 */
import type { FileSourceConfig } from './config.js';
import type { DropEntry } from './folder.js';

type Ready = FileSourceConfig['ready'];

export class Readiness {
  /** size-stable: the last look at each file and how many looks in a row saw it unchanged. */
  private readonly looks = new Map<string, { size: number; mtimeMs: number; seen: number; atMs: number }>();

  constructor(private readonly ready: Ready) {}

  /** Files that are not data: done markers. */
  isMarker(name: string): boolean {
    return this.ready.mode === 'done-marker' && name.toLowerCase().endsWith(this.ready.suffix.toLowerCase());
  }

  markerOf(name: string): string | undefined {
    return this.ready.mode === 'done-marker' ? `${name}${this.ready.suffix}` : undefined;
  }

  /** How long to wait before looking again while files are waiting (size-stable only). */
  get recheckMs(): number | undefined {
    return this.ready.mode === 'size-stable' ? this.ready.intervalMs : undefined;
  }

  /**
   * Splits the candidates (matching data files, oldest first) into ready and waiting.
   * `present` holds every file name in the folder (to find markers).
   */
  observe(candidates: DropEntry[], present: Set<string>, nowMs = Date.now()): { ready: DropEntry[]; waiting: DropEntry[] } {
    const ready: DropEntry[] = [];
    const waiting: DropEntry[] = [];
    const r = this.ready;
    switch (r.mode) {
      case 'rename':
        return { ready: candidates, waiting };
      case 'done-marker':
        for (const c of candidates) (present.has(`${c.name}${r.suffix}`) ? ready : waiting).push(c);
        return { ready, waiting };
      case 'size-stable': {
        const names = new Set(candidates.map((c) => c.name));
        for (const name of this.looks.keys()) if (!names.has(name)) this.looks.delete(name);
        for (const c of candidates) {
          const last = this.looks.get(c.name);
          if (!last || last.size !== c.size || last.mtimeMs !== c.mtimeMs) {
            this.looks.set(c.name, { size: c.size, mtimeMs: c.mtimeMs, seen: 1, atMs: nowMs });
          } else if (nowMs - last.atMs >= r.intervalMs) {
            // Looks closer together than intervalMs (a burst of watch events) do not count.
            last.seen++;
            last.atMs = nowMs;
          }
          (this.looks.get(c.name)!.seen >= r.checks ? ready : waiting).push(c);
        }
        return { ready, waiting };
      }
    }
  }

  /** The file was claimed: forget it. */
  forget(name: string): void {
    this.looks.delete(name);
  }
}
