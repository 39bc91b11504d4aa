/**
 * The relay's Prometheus metrics, in a registry of its own (never prom-client's global
 * one), so several relays can run in one process (tests) without sharing figures.
 *
 * Cost rules
 * - Hot-path figures (ingress batches, delivery outcomes) are counters and a histogram
 *   incremented through label children bound once per plant or sink and cached: no label
 *   lookup by object, no allocation per event.
 * - Figures that need SQL (pending deliveries, dead letters, milestones not yet in the CRM)
 *   or another component's state (agents, rate limiters) are computed in `collect()`
 *   callbacks when Prometheus scrapes, never per event. The store's queries (async) run once
 *   per scrape, in `scrape()` before the registry collects; the gauges read that snapshot
 *   (a bare `registry.metrics()` sees the previous scrape's figures). Other computed values
 *   are shared per scrape through protocols/scrape-cache.ts.
 *
 * The metric names are listed in relay/metrics/README.md.
 */
import { LatencyWindow } from './latency-window.js';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { ScrapeCache } from '../../protocols/scrape-cache.js';
import { PRODUCTION_MILESTONE_V1 } from '../../protocols/events/production-milestone.v1.js';
import type { AgentView } from '../agents/agent-tracker.js';
import type { RateLimiterStatus } from '../delivery/rate-limiter.js';
import type { DeliveryMetrics } from '../delivery/sink-worker.js';
import type { DeliveryBacklogRow, PlantPendingRow, RelayStore } from '../store/store.js';
import type { AgentCredential } from '../ingress/agent-auth.js';
import type { BatchReport, IngressObserver } from '../ingress/observer.js';

/** Sink kinds whose deliveries count as "in the CRM" for the business figures. */
const CRM_KINDS = new Set(['salesforce', 'hubspot']);

/** Plant-to-sink latency buckets, seconds: sub-second live flow up to a day-long outage backlog. */
const LATENCY_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800, 3600, 4 * 3600, 24 * 3600];

export interface RelayMetricsDeps {
  store: Pick<RelayStore, 'open' | 'deliveryBacklog' | 'pendingByPlant'>;
  /** The configured sinks, so each has a series (0 rather than absent) from the start. */
  sinks: readonly { name: string; kind: string }[];
  limiters: () => ReadonlyMap<string, RateLimiterStatus>;
  agents: () => readonly AgentView[];
  now?: () => number;
}

interface PlantCounters {
  received: Counter.Internal;
  stored: Counter.Internal;
  duplicate: Counter.Internal;
  rejected: Map<string, Counter.Internal>;
}

export class RelayMetrics implements Pick<IngressObserver, 'batch'> {
  readonly registry = new Registry();
  private readonly now: () => number;
  private readonly plants = new Map<string, PlantCounters>();
  private readonly cache = new ScrapeCache();
  private readonly received;
  private readonly stored;
  private readonly duplicates;
  private readonly rejections;
  private readonly deliveries;
  private readonly latency;
  private readonly replayed;
  private readonly crmSinks: string[];
  /** What the store said at the start of the current scrape. */
  private storeFigures: { backlog: DeliveryBacklogRow[]; pending: PlantPendingRow[] } = { backlog: [], pending: [] };
  /** Running totals since start, as plain numbers (the console's per-minute chart samples them). */
  readonly totals = { stored: 0, delivered: 0, deadLettered: 0 };
  /** Agent-to-sink latency per minute (the console's chart). */
  readonly agentToSink: LatencyWindow;

  constructor(private readonly deps: RelayMetricsDeps) {
    this.now = deps.now ?? Date.now;
    this.agentToSink = new LatencyWindow(this.now);
    this.crmSinks = deps.sinks.filter((s) => CRM_KINDS.has(s.kind)).map((s) => s.name);
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });

    this.received = new Counter({ name: 'plantlink_relay_events_received_total', help: 'Events received from agents, refused ones included.', labelNames: ['plant'] as const, registers });
    this.stored = new Counter({ name: 'plantlink_relay_events_stored_total', help: 'Events newly committed to the inbox.', labelNames: ['plant'] as const, registers });
    this.duplicates = new Counter({ name: 'plantlink_relay_events_duplicate_total', help: 'Events received again (already in the inbox; not delivered twice).', labelNames: ['plant'] as const, registers });
    this.rejections = new Counter({
      name: 'plantlink_relay_ingress_rejections_total',
      help: 'Events refused at ingress (schema validation, size, plant), by reason; recorded in the inbox and quarantined at the agent.',
      labelNames: ['plant', 'reason'] as const,
      registers,
    });
    this.deliveries = new Counter({
      name: 'plantlink_relay_deliveries_total',
      help: 'Delivery outcomes by sink: delivered, retried (transient; error_class throttled or transient) or dead_lettered (permanent; error_class is the error code).',
      labelNames: ['sink', 'outcome', 'error_class'] as const,
      registers,
    });
    this.latency = new Histogram({
      name: 'plantlink_relay_delivery_latency_seconds',
      help: 'From the event time (when it happened at the plant) to the sink confirming the write.',
      labelNames: ['sink'] as const,
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.replayed = new Counter({ name: 'plantlink_relay_dead_letters_replayed_total', help: 'Dead letters put back to pending through the operator API.', registers });

    this.sinkGauges(registers);
    this.businessGauges(registers);
    this.agentGauges(registers);
  }

  /** Ingress observer: counts a committed batch. */
  batch(agent: AgentCredential, report: BatchReport): void {
    const c = this.forPlant(agent.plant);
    c.received.inc(report.received);
    if (report.result.stored > 0) c.stored.inc(report.result.stored);
    this.totals.stored += report.result.stored;
    if (report.result.duplicates > 0) c.duplicate.inc(report.result.duplicates);
    for (const r of report.rejected) {
      let child = c.rejected.get(r.code);
      if (!child) c.rejected.set(r.code, (child = this.rejections.labels(agent.plant, r.code)));
      child.inc();
    }
  }

  private forPlant(plant: string): PlantCounters {
    let c = this.plants.get(plant);
    if (!c) {
      c = { received: this.received.labels(plant), stored: this.stored.labels(plant), duplicate: this.duplicates.labels(plant), rejected: new Map() };
      this.plants.set(plant, c);
    }
    return c;
  }

  /** The delivery worker's hook for one sink, with its label children bound once. */
  forSink(sink: string): DeliveryMetrics {
    const delivered = this.deliveries.labels(sink, 'delivered', 'none');
    const latency = this.latency.labels(sink);
    const classes = new Map<string, Counter.Internal>();
    const child = (outcome: string, errorClass: string) => {
      const key = `${outcome}\u0000${errorClass}`;
      let c = classes.get(key);
      if (!c) classes.set(key, (c = this.deliveries.labels(sink, outcome, errorClass)));
      return c;
    };
    return {
      delivered: (eventTimeMs, readTimeMs) => {
        delivered.inc();
        this.totals.delivered++;
        const now = this.now();
        // A plant clock ahead of ours would give a negative latency: count it as immediate.
        latency.observe(Math.max(0, now - eventTimeMs) / 1000);
        if (readTimeMs !== undefined) this.agentToSink.record(now - readTimeMs);
      },
      retried: (errorClass) => child('retried', errorClass).inc(),
      deadLettered: (errorClass) => {
        child('dead_lettered', errorClass).inc();
        this.totals.deadLettered++;
      },
    };
  }

  replays(count: number): void {
    if (count > 0) this.replayed.inc(count);
  }

  async scrape(): Promise<{ contentType: string; body: string }> {
    this.cache.beginScrape();
    this.storeFigures = await this.readStore();
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  private async readStore(): Promise<{ backlog: DeliveryBacklogRow[]; pending: PlantPendingRow[] }> {
    const { store } = this.deps;
    // A closed store (shutting down) gives no rows rather than a failed scrape.
    if (!store.open) return { backlog: [], pending: [] };
    const [backlog, pending] = await Promise.all([
      store.deliveryBacklog(),
      store.pendingByPlant({ types: [PRODUCTION_MILESTONE_V1], sinks: this.crmSinks }),
    ]);
    return { backlog, pending };
  }

  private sinkGauges(registers: Registry[]): void {
    const { deps, now } = this;
    const backlog = this.cache.memo(() => {
      const bySink = new Map(deps.sinks.map((s) => [s.name, { pending: 0, dead: 0, oldest: null as number | null }]));
      for (const r of this.storeFigures.backlog) bySink.set(r.sink, { pending: r.pending, dead: r.dead, oldest: r.oldestPendingReceivedMs });
      return bySink;
    });
    new Gauge({
      name: 'plantlink_relay_deliveries_pending',
      help: 'Deliveries waiting in the inbox (due or backing off), by sink.',
      labelNames: ['sink'] as const,
      registers,
      collect() {
        this.reset();
        for (const [sink, b] of backlog()) this.set({ sink }, b.pending);
      },
    });
    new Gauge({
      name: 'plantlink_relay_deliveries_oldest_pending_age_seconds',
      help: 'Age of the oldest pending delivery since the relay received its event, by sink; 0 when none is pending.',
      labelNames: ['sink'] as const,
      registers,
      collect() {
        this.reset();
        const t = now();
        for (const [sink, b] of backlog()) this.set({ sink }, b.oldest === null ? 0 : Math.max(0, t - b.oldest) / 1000);
      },
    });
    new Gauge({
      name: 'plantlink_relay_dead_letters',
      help: 'Dead letters (permanently refused deliveries, kept for replay), by sink.',
      labelNames: ['sink'] as const,
      registers,
      collect() {
        this.reset();
        for (const [sink, b] of backlog()) this.set({ sink }, b.dead);
      },
    });

    const limiters = this.cache.memo(() => deps.limiters());
    new Gauge({
      name: 'plantlink_relay_sink_rate_limit_rps',
      help: 'Requests per second the sink is currently paced at (after 429s and quota slow-downs); absent while unpaced.',
      labelNames: ['sink'] as const,
      registers,
      collect() {
        this.reset();
        for (const [sink, s] of limiters()) if (s.currentRps !== undefined) this.set({ sink }, s.currentRps);
      },
    });
    new Counter({
      name: 'plantlink_relay_sink_throttles_total',
      help: 'Times the sink API answered 429 / request limit exceeded.',
      labelNames: ['sink'] as const,
      registers,
      collect() {
        this.reset();
        for (const [sink, s] of limiters()) this.inc({ sink }, s.throttles);
      },
    });
    new Gauge({
      name: 'plantlink_relay_sink_api_quota_remaining',
      help: 'API calls left in the daily allocation, from the last Sforce-Limit-Info header; absent until the API reported one.',
      labelNames: ['sink'] as const,
      registers,
      collect() {
        this.reset();
        for (const [sink, s] of limiters()) if (s.quota) this.set({ sink }, Math.max(0, s.quota.max - s.quota.used));
      },
    });
    new Gauge({
      name: 'plantlink_relay_sink_api_quota_limit',
      help: 'The daily API allocation, from the last Sforce-Limit-Info header; absent until the API reported one.',
      labelNames: ['sink'] as const,
      registers,
      collect() {
        this.reset();
        for (const [sink, s] of limiters()) if (s.quota) this.set({ sink }, s.quota.max);
      },
    });
  }

  private businessGauges(registers: Registry[]): void {
    const { deps, now } = this;
    const plants = () => new Set(deps.agents().map((a) => a.plant));
    const pending = this.cache.memo(() => {
      const byPlant = new Map([...plants()].map((p) => [p, { events: 0, oldest: null as number | null }]));
      for (const r of this.storeFigures.pending) byPlant.set(r.plant, { events: r.events, oldest: r.oldestTimeMs });
      return byPlant;
    });
    new Gauge({
      name: 'plantlink_relay_milestones_pending_crm',
      help: 'Production milestones stored at the relay but not yet written to a CRM sink (Salesforce, HubSpot), by plant.',
      labelNames: ['plant'] as const,
      registers,
      collect() {
        this.reset();
        for (const [plant, p] of pending()) this.set({ plant }, p.events);
      },
    });
    new Gauge({
      name: 'plantlink_relay_milestones_oldest_undelivered_age_seconds',
      help: 'Age (since it happened at the plant) of the oldest milestone not yet in the CRM, by plant; 0 when none is waiting. Dead letters are in plantlink_relay_dead_letters.',
      labelNames: ['plant'] as const,
      registers,
      collect() {
        this.reset();
        const t = now();
        for (const [plant, p] of pending()) this.set({ plant }, p.oldest === null ? 0 : Math.max(0, t - p.oldest) / 1000);
      },
    });
  }

  private agentGauges(registers: Registry[]): void {
    const agents = this.cache.memo(() => this.deps.agents());
    const labels = ['agent', 'plant'] as const;
    const gauge = (name: string, help: string, value: (a: AgentView) => number | undefined) =>
      new Gauge({
        name,
        help,
        labelNames: labels,
        registers,
        collect() {
          this.reset();
          for (const a of agents()) {
            const v = value(a);
            if (v !== undefined) this.set({ agent: a.id, plant: a.plant }, v);
          }
        },
      });
    gauge('plantlink_relay_agent_connected', 'Whether the agent is connected now (1) or not (0).', (a) => (a.connected ? 1 : 0));
    gauge('plantlink_relay_agent_backlog_events', 'Events waiting in the agent\'s outbox, as it last reported; absent until it reports.', (a) => a.backlog?.pending);
    gauge(
      'plantlink_relay_agent_oldest_pending_age_seconds',
      'Age of the oldest event waiting in the agent\'s outbox, from its last report; 0 when nothing waits; absent until it reports.',
      (a) => (a.backlog === undefined ? undefined : (a.backlog.oldestPendingAgeMs ?? 0) / 1000),
    );
    gauge('plantlink_relay_agent_last_seen_timestamp_seconds', 'When the agent last sent a frame (Unix time); absent if never since the relay started.', (a) =>
      a.lastSeenMs === undefined ? undefined : a.lastSeenMs / 1000,
    );
    gauge('plantlink_relay_agent_last_event_timestamp_seconds', 'Newest event time (plant clock, Unix time) the agent sent.', (a) =>
      a.lastEventMs === undefined ? undefined : a.lastEventMs / 1000,
    );
  }
}
