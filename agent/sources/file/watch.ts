/**
 * Tells the source when to look at the drop folder again: file-system notifications
 * (fs.watch) when asked for and available, and always a rescan every `pollIntervalMs`,
 * because notifications are lost on network shares, on overflow, and when the folder is
 * re-created. Losing a notification therefore only delays a file, never strands it.
 */
import { watch, type FSWatcher } from 'node:fs';
import type { Logger } from '../../../protocols/log.js';

export class FolderWatcher {
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly folder: string,
    private readonly options: { mode: 'events' | 'poll'; pollIntervalMs: number },
    private readonly onChange: () => void,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.stopped = false;
    this.timer = setInterval(() => {
      this.ensureWatching();
      this.onChange();
    }, this.options.pollIntervalMs);
    this.ensureWatching();
  }

  /** (Re)starts fs.watch in `events` mode; a missing folder is retried on the next poll. */
  private ensureWatching(): void {
    if (this.stopped || this.options.mode !== 'events' || this.watcher) return;
    try {
      const w = watch(this.folder, { persistent: true }, () => this.onChange());
      w.on('error', (e) => {
        this.log.warn({ err: e.message, folder: this.folder }, 'folder notifications failed; polling until they work again');
        w.close();
        if (this.watcher === w) this.watcher = undefined;
      });
      this.watcher = w;
    } catch (e) {
      this.log.debug({ err: (e as Error).message, folder: this.folder }, 'cannot watch the folder yet; polling');
    }
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.watcher?.close();
    this.watcher = undefined;
  }
}
