/**
 * An in-memory SourceContext for source tests: stands in for the SQLite outbox.
 *
 * Like the outbox it applies a commit's events and state atomically, dedupes events by
 * their derived id, stores state as JSON (so a source cannot keep references into it),
 * rejects invalid drafts by throwing, and can be put in `paused` (full) mode.
 */
import { deriveEventId } from '../../../../protocols/events/event-id.js';
import { EVENT_TYPES } from '../../../../protocols/events/registry.js';
import { createLogger, type Logger } from '../../../../protocols/log.js';
import type { CommitOutcome, EventDraft, SourceContext, StateWrite } from '../../../../agent/sources/source.js';

export interface StoredEvent {
  id: string;
  draft: EventDraft;
}

export class MemorySourceContext implements SourceContext {
  readonly events: StoredEvent[] = [];
  readonly states = new Map<string, string>();
  duplicates = 0;
  commits = 0;
  pausedCommits = 0;
  private readonly ids = new Set<string>();
  private readonly resumeListeners = new Set<() => void>();
  private pausedReason: string | undefined;

  constructor(
    readonly plant = 'plant-1',
    readonly logger: Logger = createLogger('test', { level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
  ) {}

  commit(events: EventDraft[], state: StateWrite[] = []): CommitOutcome {
    for (const draft of events) {
      const schema = EVENT_TYPES[draft.type];
      if (!schema) throw new Error(`unknown event type ${draft.type}`);
      const parsed = schema.safeParse(draft.data);
      if (!parsed.success) throw new Error(`invalid draft data: ${parsed.error.message}`);
    }
    if (this.pausedReason !== undefined) {
      this.pausedCommits++;
      return { status: 'paused', reason: this.pausedReason };
    }
    this.commits++;
    let appended = 0;
    let duplicates = 0;
    for (const draft of events) {
      const id = deriveEventId(draft.fact);
      if (this.ids.has(id)) {
        duplicates++;
        continue;
      }
      this.ids.add(id);
      this.events.push({ id, draft: JSON.parse(JSON.stringify(draft)) as EventDraft });
      appended++;
    }
    this.duplicates += duplicates;
    for (const write of state) {
      if (write.value === undefined) this.states.delete(write.key);
      else this.states.set(write.key, JSON.stringify(write.value));
    }
    return { status: 'committed', appended, duplicates };
  }

  loadState<T>(key: string): T | undefined {
    const raw = this.states.get(key);
    return raw === undefined ? undefined : (JSON.parse(raw) as T);
  }

  onResume(listener: () => void): () => void {
    this.resumeListeners.add(listener);
    return () => this.resumeListeners.delete(listener);
  }

  /** From now on commits return `paused` (outbox full). */
  pause(reason = 'outbox full'): void {
    this.pausedReason = reason;
  }

  /** Commits succeed again and resume listeners are told. */
  resume(): void {
    this.pausedReason = undefined;
    for (const listener of [...this.resumeListeners]) listener();
  }
}
