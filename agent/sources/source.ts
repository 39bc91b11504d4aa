/**
 * The contract between a plant-side source and the agent's outbox.
 *
 * A source turns what it reads into `EventDraft`s and hands them to `ctx.commit`
 * together with the source's own progress state (last-seen values, cursors). Both are
 * written in ONE durable SQLite transaction, so after a crash either the events and the
 * state that produced them are both on disk, or neither is and the source re-derives
 * them from its last committed state. A source acknowledges its upstream (deletes a
 * file, advances a cursor) only after `commit` returned `committed`.
 */
import type { Logger } from '../../protocols/log.js';
import type { SourceFact } from '../../protocols/events/event-id.js';

export interface EventDraft {
  /** CloudEvents type, e.g. `com.plantlink.production.milestone.v1`. */
  type: string;
  /** Business key events are ordered by, e.g. `work-order/WO-1001`. */
  subject: string;
  /** The source fact; the event id is derived from it. `fact.occurredAtMs` is also the event `time`. */
  fact: SourceFact;
  /** Event data, valid against the schema of `type`. */
  data: unknown;
  /** Correlation id from the source if it has one; defaults to the event id. */
  correlationId?: string;
  /**
   * When the source read the fact (Unix ms): the event's `readtime`, for the relay's trace.
   * Defaults to the time of the append. Not part of the event id.
   */
  readAtMs?: number;
}

export interface StateWrite {
  /** Key unique within the source, e.g. a line name. */
  key: string;
  /** JSON-serialisable state; `undefined` deletes it. */
  value: unknown;
}

export type CommitOutcome =
  | { status: 'committed'; appended: number; duplicates: number }
  /** The outbox is full and its policy is `pause`: nothing was written, not even the state. Retry after `onResume`. */
  | { status: 'paused'; reason: string };

export interface SourceContext {
  readonly plant: string;
  readonly logger: Logger;
  /** Appends events and saves source state in one durable transaction. Throws only on programming errors (invalid drafts). */
  commit(events: EventDraft[], state?: StateWrite[]): CommitOutcome;
  /** Reads the source state last committed under `key`. */
  loadState<T>(key: string): T | undefined;
  /** Called when the outbox has room again after a `paused` outcome. Returns an unsubscribe function. */
  onResume(listener: () => void): () => void;
}

export type SourceHealthState = 'starting' | 'connected' | 'stalled' | 'disconnected' | 'paused' | 'stopped';

export interface SourceHealth {
  state: SourceHealthState;
  /** Human-readable detail: last error, why stalled, etc. */
  detail?: string;
  /** Unix ms of the last data or keep-alive from the upstream. */
  lastActivityMs?: number;
}

export interface Source {
  readonly name: string;
  readonly kind: string;
  start(ctx: SourceContext): Promise<void>;
  stop(): Promise<void>;
  health(): SourceHealth;
}
