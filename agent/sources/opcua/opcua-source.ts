/**
 * The OPC UA source: a supervised subscription feeding the line state machine.
 *
 * Invariants:
 * - One `ctx.commit` per change batch, with the drafts of every line AND their new
 *   line states: the outbox makes both durable in one transaction. The in-memory line
 *   state advances only after `committed`, so memory always equals what is on disk.
 * - `paused` (outbox full): the batch is dropped without advancing state, health says
 *   `paused`, and further batches are dropped too; on `onResume` the current values
 *   are read and reconciled, the same way a reconnection reconciles. Nothing that
 *   the plant still shows is lost; changes in between collapse into catch-up milestones.
 * - Restarts emit nothing twice: the persisted per-node timestamps make the initial
 *   values of every (re)subscription a no-op unless they really are newer.
 */
import type { Logger } from '../../../protocols/log.js';
import { describeError } from '../../../protocols/errors.js';
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
  NODE_ROLES,
  type LineChange,
  type LineContext,
  type LineState,
  type NodeRole,
} from './line-machine.js';

interface Line {
  key: string; // state key, `line/<equipment>`
  context: LineContext;
  state: LineState;
}

/** Delay between attempts to reconcile after a resume when the read fails. */
const RECONCILE_RETRY_MS = 1000;

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
   * Set while reconciling after a resume: live batches wait here until the current values
   * are applied. Applied earlier, a live change could meet state that misses what the
   * pause dropped (a completion stamped with a stale good count).
   */
  private reconcileBuffer: Change[][] | undefined;
  private reconcileTimer: NodeJS.Timeout | undefined;
  private unsubscribeResume: (() => void) | undefined;
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
      for (const role of NODE_ROLES) {
        const node = line.nodes[role];
        if (!node) continue;
        const key = `${index}:${role}`;
        this.items.set(key, { line: index, role });
        specs.push({ key, node });
      }
      const key = `line/${line.equipment}`;
      return {
        key,
        context: { plant: ctx.plant, sourceName: this.name, equipment: line.equipment, unit: line.unit, states: line.states },
        state: coerceLineState(ctx.loadState(key)),
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
      applicationName: `plantlink-${this.name}`,
      logger: log,
    });
    this.client = client;
    client.on('changes', (batch) => this.onBatch(batch));
    client.on('health', (health) => {
      this.clientHealth = health;
      if (health.state === 'connected') this.everConnected = true;
    });
    client.on('resubscribed', (info) => {
      // The initial values that follow are a consistent snapshot: they reconcile everything,
      // including what a pause dropped; what was buffered before them is older and collapses into them.
      this.reconcileBuffer = undefined;
      clearTimeout(this.reconcileTimer);
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

  private onBatch(batch: Change[]): void {
    if (this.stopped || this.paused) return; // dropped; reconciled from current values on resume
    if (this.reconcileBuffer) {
      this.reconcileBuffer.push(batch);
      return;
    }
    this.apply(batch);
  }

  private apply(batch: Change[]): void {
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
      drafts.push(...result.drafts);
      writes.push({ key: line.key, value: result.state });
      next.set(index, result.state);
    }
    if (writes.length === 0) return;

    let outcome;
    try {
      outcome = ctx.commit(drafts, writes);
    } catch (e) {
      // a programming error (an invalid draft): keep state where it is and say so loudly
      log.error({ err: describeError(e), drafts: drafts.length }, 'committing OPC UA milestones failed');
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
    this.log?.info('outbox resumed; reconciling current OPC UA values');
    this.reconcileBuffer = [];
    void this.reconcile();
  }

  private async reconcile(): Promise<void> {
    clearTimeout(this.reconcileTimer);
    if (!this.reconcileBuffer || this.stopped || !this.client) return;
    let current: Change[];
    try {
      current = await this.client.readCurrent();
    } catch (e) {
      // not connected: retry; a new subscription's initial values would reconcile first (see 'resubscribed')
      this.log?.debug({ err: describeError(e) }, 'reconciling after resume failed; retrying');
      if (this.reconcileBuffer && !this.stopped) this.reconcileTimer = setTimeout(() => void this.reconcile(), RECONCILE_RETRY_MS);
      return;
    }
    const buffered = this.reconcileBuffer;
    if (!buffered || this.stopped) return; // superseded by a resubscription, or stopped
    this.reconcileBuffer = undefined;
    // the snapshot first, then what arrived meanwhile (changes the snapshot already holds are not newer)
    for (const batch of [current, ...buffered]) {
      if (this.paused) return; // full again: the next resume reconciles again
      this.apply(batch);
    }
  }
}
