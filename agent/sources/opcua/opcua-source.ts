/**
 * The OPC UA source: a supervised subscription feeding the line state machine.
 *
 * Invariants:
 * - One `ctx.commit` per change batch, with the drafts of every line AND their new
 *   line states: the outbox makes both durable in one transaction. The in-memory line
 *   state advances only after `committed`, so memory always equals what is on disk.
 * - `paused` (outbox full): the batch is dropped without advancing state, health says
 *   `paused`, and further batches are dropped too; on `onResume` the source catches up.
 * - Catch-up (after every (re)subscription and every resume): first the raw history of
 *   every node since the last committed value (OPC UA Historical Access), then the
 *   current / initial values, then live batches buffered meanwhile. With history nothing
 *   is missed; nodes without history collapse what happened into catch-up milestones.
 * - Restarts emit nothing twice: the persisted per-node timestamps make the initial
 *   values of every (re)subscription a no-op unless they really are newer.
 * - Quantity deadband: the line machine applies it (the source of truth, persisted with the
 *   line state). With `onServer`, the counter nodes also carry it as a server-side filter;
 *   a live batch whose milestones could depend on values the filter hid is applied only
 *   after those counters are read back (`server-deadband.ts`), so the events are the same
 *   with or without the filter. Batches wait in order meanwhile, as during a catch-up.
 * - A security problem (server certificate not trusted, ours refused, user refused) shows
 *   in health as the sentence to act on, with the `plantlink agent trust` command for this
 *   source; the client keeps retrying, so the fix needs no restart.
 */
import path from 'node:path';
import type { Logger } from '../../../protocols/log.js';
import { describeError } from '../../../protocols/errors.js';
import { describeSecurityProblem, type SecurityProblem } from '../../../protocols/opcua/security.js';
import {
  OpcUaSubscriptionClient,
  type Change,
  type ClientHealth,
  type MonitoredItemSpec,
} from '../../../protocols/opcua/subscription-client.js';
import type { EventDraft, Source, SourceContext, SourceHealth, StateWrite } from '../source.js';
import { OpcUaSourceConfig, type OpcUaSourceConfigInput } from './config.js';
import {
  applyChanges,
  coerceLineState,
  COUNTERS,
  NODE_ROLES,
  type CounterRole,
  type LineChange,
  type LineContext,
  type LineState,
  type NodeRole,
} from './line-machine.js';
import { asFilled, countersToReadBack, ServerReferences, type LiveBatch, type ReadBackView } from './server-deadband.js';

interface Line {
  key: string; // state key, `line/<equipment>`
  context: LineContext;
  state: LineState;
  /** Counter items of the line the server applies the deadband to, this generation. */
  filtered: Array<{ item: string; role: CounterRole }>;
}

/** Delay between attempts to reconcile after a resume when the read fails. */
const RECONCILE_RETRY_MS = 1000;
/** History reads that may fail in a row before the catch-up falls back to current values. */
const MAX_HISTORY_FAILURES = 3;
/** Live batches held while catching up; past this the catch-up ends with a current-values read. */
const MAX_BUFFERED_BATCHES = 10_000;

export class OpcUaSource implements Source {
  readonly kind = 'opcua';
  readonly name: string;
  private readonly config: OpcUaSourceConfig;
  private readonly items = new Map<string, { line: number; role: NodeRole }>();
  private lines: Line[] = [];
  private ctx: SourceContext | undefined;
  private log: Logger | undefined;
  private client: OpcUaSubscriptionClient | undefined;
  private clientHealth: ClientHealth = { state: 'stopped' };
  private everConnected = false;
  private paused: { reason: string } | undefined;
  /**
   * Set while catching up or reading back what a server deadband hid: live batches wait here,
   * in order, until what comes before them is applied. Applied earlier, a live change could
   * meet state that misses values (a completion stamped with a stale good count).
   */
  private reconcileBuffer: LiveBatch[] | undefined;
  private reconcileTimer: NodeJS.Timeout | undefined;
  private unsubscribeResume: (() => void) | undefined;
  private warnedNoHistory = false;
  /** Items whose history the server refused: read back from current values. */
  private readonly noHistory = new Set<string>();
  private readonly references = new ServerReferences();
  private readonly readBackView: ReadBackView = {
    itemOf: (item) => this.items.get(item),
    stateOf: (line) => this.lines[line]!.state,
    filteredCounters: (line) => this.lines[line]!.filtered,
  };
  private bufferOverflowed = false;
  private commitRetryTimer: NodeJS.Timeout | undefined;
  private stopped = true;

  constructor(
    config: OpcUaSourceConfigInput,
    private readonly logger?: Logger,
  ) {
    this.config = OpcUaSourceConfig.parse(config);
    this.name = this.config.name;
  }

  async start(ctx: SourceContext): Promise<void> {
    if (!this.stopped) throw new Error(`source ${this.name} is already started`);
    this.stopped = false;
    this.ctx = ctx;
    const log = (this.logger ?? ctx.logger).child({ source: this.name, kind: this.kind });
    this.log = log;
    const c = this.config;

    const specs: MonitoredItemSpec[] = [];
    this.items.clear();
    this.lines = c.lines.map((line, index) => {
      const { value: deadband, onServer } = line.quantityDeadband;
      for (const role of NODE_ROLES) {
        const node = line.nodes[role];
        if (!node) continue;
        const key = `${index}:${role}`;
        this.items.set(key, { line: index, role });
        const filtered = role in COUNTERS && deadband > 0 && onServer;
        specs.push({ key, node, ...(filtered ? { deadband: { type: 'absolute' as const, value: deadband } } : {}) });
      }
      const key = `line/${line.equipment}`;
      return {
        key,
        context: { plant: ctx.plant, sourceName: this.name, equipment: line.equipment, unit: line.unit, states: line.states, quantityDeadband: deadband },
        state: coerceLineState(ctx.loadState(key)),
        filtered: [],
      };
    });

    const client = new OpcUaSubscriptionClient({
      endpointUrl: c.endpointUrl,
      items: specs,
      publishingIntervalMs: c.publishingIntervalMs,
      maxKeepAliveCount: c.maxKeepAliveCount,
      stallAfterKeepAlives: c.stallAfterKeepAlives,
      samplingIntervalMs: c.samplingIntervalMs,
      queueSize: c.queueSize,
      sessionTimeoutMs: c.sessionTimeoutMs,
      operationTimeoutMs: c.operationTimeoutMs,
      reconnectBaseMs: c.reconnect.baseMs,
      reconnectMaxMs: c.reconnect.maxMs,
      security: c.security,
      identity: c.identity,
      ...(c.pkiDir ? { pkiDir: c.pkiDir } : {}),
      ownCertificate: c.ownCertificate,
      applicationName: `plantlink-${this.name}`,
      // one certificate per PKI folder, shared by the agent's sources: named after the agent, not a source
      certificateName: 'plantlink-agent',
      logger: log,
    });
    this.client = client;
    client.on('changes', (batch) => this.onBatch(batch));
    client.on('health', (health) => {
      this.clientHealth = health;
      if (health.state === 'connected') this.everConnected = true;
    });
    client.on('resubscribed', (info) => {
      clearTimeout(this.reconcileTimer);
      this.trackServerDeadbands(specs, info.failedItems.concat(info.deadbandRefused));
      if (c.historyCatchUp) {
        // First what happened while we were away (history), then the initial values and
        // live changes, which wait in the buffer meanwhile.
        this.reconcileBuffer = [];
        void this.catchUp(false);
      } else {
        // The initial values that follow are a consistent snapshot: they reconcile everything,
        // including what a pause dropped; what was buffered before them is older and collapses into them.
        this.reconcileBuffer = undefined;
      }
      for (const f of info.failedItems) {
        const item = this.items.get(f.key);
        log.error({ equipment: item ? c.lines[item.line]?.equipment : undefined, node: item?.role, reason: f.reason }, 'OPC UA node cannot be monitored');
      }
      log.info({ generation: info.generation }, 'subscribed to the OPC UA server');
    });
    this.unsubscribeResume = ctx.onResume(() => this.onResume());
    client.start();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.reconcileTimer);
    clearTimeout(this.commitRetryTimer);
    this.unsubscribeResume?.();
    this.unsubscribeResume = undefined;
    await this.client?.stop();
    this.client = undefined;
  }

  health(): SourceHealth {
    if (this.stopped) return { state: 'stopped' };
    const h = this.clientHealth;
    const activity = h.lastActivityMs === undefined ? {} : { lastActivityMs: h.lastActivityMs };
    if (this.paused) return { state: 'paused', detail: this.paused.reason, ...activity };
    if (h.problem && h.state !== 'connected') {
      return { state: this.everConnected ? 'disconnected' : 'starting', detail: this.explain(h.problem), ...activity };
    }
    switch (h.state) {
      case 'connecting':
        return this.everConnected
          ? { state: 'disconnected', detail: `reconnecting${h.detail ? `: ${h.detail}` : ''}`, ...activity }
          : { state: 'starting', ...(h.detail ? { detail: h.detail } : {}), ...activity };
      case 'connected':
      case 'stalled':
      case 'disconnected':
      case 'stopped':
        return { state: h.state, ...(h.detail ? { detail: h.detail } : {}), ...activity };
    }
  }

  /** The client's sentence, plus the command that fixes it for this source. */
  private explain(problem: SecurityProblem): string {
    const sentence = describeSecurityProblem(problem);
    if (problem.kind !== 'server-certificate-untrusted') return sentence;
    const file = problem.file ? ` --file '${path.basename(problem.file)}'` : ' --all-rejected';
    return `${sentence}: plantlink agent trust --config <agent config> --source ${this.name}${file}`;
  }

  /** Which counter items carry a server deadband in the new generation (asked for, and not refused). */
  private trackServerDeadbands(specs: MonitoredItemSpec[], notFiltered: Array<{ key: string }>): void {
    const refused = new Set(notFiltered.map((f) => f.key));
    const filtered = specs.filter((s) => s.deadband && !refused.has(s.key)).map((s) => s.key);
    this.references.reset(filtered);
    for (const line of this.lines) line.filtered = [];
    for (const key of filtered) {
      const item = this.items.get(key)!;
      this.lines[item.line]!.filtered.push({ item: key, role: item.role as CounterRole });
    }
  }

  private onBatch(changes: Change[]): void {
    if (this.stopped) return;
    const batch = this.references.receive(changes); // the server's references move even if we drop the batch
    batch.receivedMs = Date.now();
    if (this.paused) return; // dropped; reconciled from history / current values on resume
    if (this.reconcileBuffer) {
      // Bounded: past the cap, live batches are dropped and the catch-up ends with a read of
      // the current values instead (history already covers what happened up to that read).
      if (this.reconcileBuffer.length < MAX_BUFFERED_BATCHES) this.reconcileBuffer.push(batch);
      else this.bufferOverflowed = true;
      return;
    }
    if (countersToReadBack(batch, this.readBackView).size === 0) {
      this.apply(batch.changes, batch.receivedMs);
      return;
    }
    this.reconcileBuffer = [batch];
    void this.drain(this.reconcileBuffer);
  }

  /** `readAtMs`: when the agent received the values (the events' `readtime`); default: now. */
  private apply(batch: Change[], readAtMs?: number): void {
    const ctx = this.ctx;
    const log = this.log;
    if (!ctx || !log) return;
    const perLine = new Map<number, LineChange[]>();
    for (const change of batch) {
      const item = this.items.get(change.item);
      if (!item) continue;
      let list = perLine.get(item.line);
      if (!list) perLine.set(item.line, (list = []));
      list.push({ role: item.role, value: change.value, sourceTimestampMs: change.sourceTimestampMs, statusGood: change.statusGood, status: change.status });
    }

    const drafts: EventDraft[] = [];
    const writes: StateWrite[] = [];
    const next = new Map<number, LineState>();
    for (const [index, changes] of perLine) {
      const line = this.lines[index]!;
      const result = applyChanges(line.context, line.state, changes);
      for (const { change, reason, detail } of result.ignored) {
        const fields = { equipment: line.context.equipment, node: change.role, value: change.value, reason, detail };
        if (reason === 'not-newer') log.debug(fields, 'OPC UA value is not newer than the last seen; ignored');
        else log.warn(fields, 'OPC UA value ignored');
      }
      for (const note of result.notes) log.warn({ equipment: line.context.equipment }, note);
      if (JSON.stringify(result.state) === JSON.stringify(line.state)) continue;
      drafts.push(...(readAtMs === undefined ? result.drafts : result.drafts.map((d) => ({ ...d, readAtMs }))));
      writes.push({ key: line.key, value: result.state });
      next.set(index, result.state);
    }
    if (writes.length === 0) return;

    let outcome;
    try {
      outcome = ctx.commit(drafts, writes);
    } catch (e) {
      // The outbox could not commit (disk full, I/O error): state stays where it is, and the
      // source catches up from there once a retry succeeds, exactly as after a full outbox.
      log.error({ err: describeError(e), drafts: drafts.length }, 'committing OPC UA milestones failed; will catch up');
      this.paused = { reason: `outbox commit failed: ${describeError(e)}` };
      clearTimeout(this.commitRetryTimer);
      this.commitRetryTimer = setTimeout(() => this.onResume(), RECONCILE_RETRY_MS);
      return;
    }
    if (outcome.status === 'paused') {
      this.paused = { reason: outcome.reason };
      log.warn({ reason: outcome.reason, dropped: drafts.length }, 'outbox paused; OPC UA changes will be reconciled on resume');
      return;
    }
    for (const [index, state] of next) this.lines[index]!.state = state;
    if (drafts.length > 0) {
      log.debug({ appended: outcome.appended, duplicates: outcome.duplicates }, 'OPC UA milestones committed');
    }
  }

  private onResume(): void {
    if (!this.paused || this.stopped) return;
    this.paused = undefined;
    this.log?.info('outbox resumed; reconciling OPC UA values');
    this.reconcileBuffer = [];
    void this.catchUp(true);
  }

  /** Per monitored item (all, or those given), the source timestamp of the last value committed. */
  private lastCommitted(keys: Iterable<string> = this.items.keys()): Map<string, number> {
    const since = new Map<string, number>();
    for (const key of keys) {
      const item = this.items.get(key);
      const seen = item && this.lines[item.line]?.state.nodes[item.role];
      // A node never seen has no baseline: its current value reconciles it.
      if (seen) since.set(key, seen.ts);
    }
    return since;
  }

  /**
   * Applies, in this order: the history since the last committed values (when enabled),
   * the current values (when `withCurrent`: after a pause; a resubscription brings its own
   * initial values), then the batches buffered meanwhile. Values not newer than what is
   * committed are no-ops, so overlaps between the three are harmless.
   */
  private async catchUp(withCurrent: boolean, historyFailures = 0): Promise<void> {
    clearTimeout(this.reconcileTimer);
    const buffer = this.reconcileBuffer;
    if (!buffer || this.stopped || !this.client) return;
    const retry = (what: string, e: unknown, failures: number) => {
      // not connected: retry; a new subscription starts its own catch-up (see 'resubscribed')
      this.log?.warn({ err: describeError(e) }, `${what} failed; retrying`);
      if (this.reconcileBuffer === buffer && !this.stopped) {
        this.reconcileTimer = setTimeout(() => void this.catchUp(withCurrent, failures), RECONCILE_RETRY_MS);
      }
    };
    let useHistory = this.config.historyCatchUp && historyFailures < MAX_HISTORY_FAILURES;
    if (this.config.historyCatchUp && !useHistory) {
      this.log?.error({ failures: historyFailures }, 'OPC UA history keeps failing; catching up from current values only this time');
    }
    while (useHistory) {
      const since = this.lastCommitted();
      let history;
      try {
        history = await this.client.readHistory(since);
      } catch (e) {
        return retry('reading OPC UA history', e, historyFailures + 1);
      }
      const readMs = Date.now();
      if (this.reconcileBuffer !== buffer || this.stopped) return; // superseded
      this.noteNoHistory(history.unsupported);
      if (history.changes.length > 0) {
        this.log?.info({ changes: history.changes.length }, 'replaying OPC UA history since the last committed values');
        this.apply(history.changes, readMs);
        if (this.paused) return; // full again: the next resume catches up again
      }
      // More is waiting only if the server cut the read short AND we made progress; a page
      // of values the machine ignores (bad status) would otherwise be read forever.
      const progressed = [...this.lastCommitted()].some(([k, ts]) => ts !== since.get(k));
      useHistory = history.truncated.length > 0 && history.changes.length > 0 && progressed;
    }
    let current: Change[] = [];
    if (withCurrent || this.bufferOverflowed) {
      try {
        current = await this.client.readCurrent();
      } catch (e) {
        return retry('reading current OPC UA values', e, historyFailures);
      }
    }
    if (this.reconcileBuffer !== buffer || this.stopped) return;
    this.bufferOverflowed = false;
    if (current.length > 0) buffer.unshift({ ...asFilled(current), receivedMs: Date.now() });
    await this.drain(buffer);
  }

  private noteNoHistory(items: string[]): void {
    for (const item of items) this.noHistory.add(item);
    if (items.length > 0 && !this.warnedNoHistory) {
      this.warnedNoHistory = true;
      this.log?.warn({ items }, 'these OPC UA nodes keep no history; changes made while disconnected are reconciled from current values only');
    }
  }

  /**
   * Applies the waiting batches in order; before a batch whose milestones could depend on
   * values a server deadband hid, reads those counters back and applies them with it. Batches
   * arriving meanwhile join the queue. Ends when the queue is empty, or when superseded (a new
   * catch-up), paused or stopped.
   */
  private async drain(buffer: LiveBatch[]): Promise<void> {
    clearTimeout(this.reconcileTimer);
    while (this.reconcileBuffer === buffer && !this.stopped) {
      if (this.paused) {
        this.reconcileBuffer = undefined; // the resume catches up from history
        return;
      }
      const batch = buffer[0];
      if (!batch) {
        this.reconcileBuffer = undefined;
        if (this.bufferOverflowed) {
          // live batches were dropped while we were busy: catch up on them
          this.reconcileBuffer = [];
          void this.catchUp(true);
        }
        return;
      }
      const keys = batch.filled ? new Set<string>() : countersToReadBack(batch, this.readBackView);
      if (keys.size === 0) {
        buffer.shift();
        this.apply(batch.changes, batch.receivedMs);
        continue;
      }
      let hidden: Change[];
      try {
        hidden = await this.readBack(batch, keys);
      } catch (e) {
        if (this.reconcileBuffer !== buffer || this.stopped) return;
        batch.failures += 1;
        if (batch.failures >= MAX_HISTORY_FAILURES) {
          this.log?.error({ err: describeError(e), failures: batch.failures }, 'reading back what the OPC UA deadband hid keeps failing; applying the changes as received, their counts may be off by up to the deadband');
          batch.filled = true;
          continue;
        }
        this.log?.warn({ err: describeError(e) }, 'reading back what the OPC UA deadband hid failed; retrying');
        this.reconcileTimer = setTimeout(() => void this.drain(buffer), RECONCILE_RETRY_MS);
        return;
      }
      if (this.reconcileBuffer !== buffer || this.stopped) return;
      buffer.shift();
      this.apply([...hidden, ...batch.changes], batch.receivedMs);
    }
  }

  /**
   * The values of the given counter items up to the newest change of the batch that the
   * subscription did not deliver: from history since the last committed value, or, for nodes
   * without history, the current value if it is not newer than the batch.
   */
  private async readBack(batch: LiveBatch, keys: ReadonlySet<string>): Promise<Change[]> {
    const client = this.client;
    if (!client) throw new Error('the source is stopped');
    const untilMs = Math.max(...batch.changes.map((c) => c.sourceTimestampMs));
    const since = this.lastCommitted([...keys].filter((k) => this.config.historyCatchUp && !this.noHistory.has(k)));
    const fromCurrent = new Set([...keys].filter((k) => !since.has(k)));
    const values: Change[] = [];
    while (since.size > 0) {
      const history = await client.readHistory(since, untilMs);
      this.noteNoHistory(history.unsupported);
      for (const item of history.unsupported) {
        since.delete(item);
        fromCurrent.add(item);
      }
      values.push(...history.changes);
      if (history.truncated.length === 0 || history.changes.length === 0) break;
      // more is waiting: every item goes on after the last value read of it
      for (const c of history.changes) if (since.has(c.item)) since.set(c.item, Math.max(since.get(c.item)!, c.sourceTimestampMs));
    }
    if (fromCurrent.size > 0) {
      const current = await client.readCurrent(fromCurrent);
      values.push(...current.filter((c) => c.sourceTimestampMs <= untilMs));
    }
    return values;
  }

}
