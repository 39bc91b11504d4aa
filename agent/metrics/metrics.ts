/**
 * The agent's Prometheus metrics, in a registry of its own (never prom-client's global
 * one), so several agents can run in one process (tests) without sharing figures.
 *
 * Cost rules: per-event figures are counters bound once per source (outbox events carry the
 * source name, and the outbox emits once per append or ack transaction, not per event);
 * the outbox backlog, source health and uplink state are read in `collect()` callbacks when
 * Prometheus scrapes. The metric names are listed in agent/metrics/README.md.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { ScrapeCache } from '../../protocols/scrape-cache.js';
import type { Outbox, OutboxStats } from '../outbox/outbox.js';
import type { SourceHealthState } from '../sources/source.js';

/** Every source health state, so each gets a 0/1 series (a Record, so a new state is a compile error here). */
const SOURCE_STATES = Object.keys({ starting: 1, connected: 1, stalled: 1, disconnected: 1, paused: 1, stopped: 1 } satisfies Record<SourceHealthState, 1>);
const UPLINK_STATES = ['connecting', 'connected', 'disconnected', 'unauthorized', 'stopped'];

/** Ack round trips: loopback milliseconds up to a slow satellite link with a busy relay disk. */
const RTT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export interface AgentMetricsDeps {
  outbox: Outbox;
  sources: () => readonly { name: string; kind: string; state: string }[];
  uplink: () => { state: string };
  now?: () => number;
}

export class AgentMetrics {
  readonly registry = new Registry();
  private readonly rtt: Histogram;
  private readonly cache = new ScrapeCache();

  constructor(deps: AgentMetricsDeps) {
    const now = deps.now ?? Date.now;
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });

    const perSource = (name: string, help: string, extra: string[] = []) => new Counter({ name, help, labelNames: ['source', ...extra], registers });
    const appended = perSource('plantlink_agent_events_appended_total', 'Events committed to the outbox, by source (duplicates of pending events not counted).');
    const acked = perSource('plantlink_agent_events_acked_total', 'Events the relay committed (removed from the outbox), by source.');
    const quarantined = perSource(
      'plantlink_agent_events_quarantined_total',
      'Events moved to the outbox\'s quarantine, by source and stage: agent (failed validation at append) or relay (refused by the relay).',
      ['stage'],
    );
    // Children bound once per source; sources are few and fixed by config.
    const bound = new Map<Counter, Map<string, Counter.Internal>>();
    const child = (counter: Counter, ...labels: string[]) => {
      let byLabels = bound.get(counter);
      if (!byLabels) bound.set(counter, (byLabels = new Map()));
      const key = labels.join('\u0000');
      let c = byLabels.get(key);
      if (!c) byLabels.set(key, (c = counter.labels(...labels)));
      return c;
    };
    deps.outbox.on('appended', (count, source) => child(appended, source).inc(count));
    deps.outbox.on('acked', (bySource) => {
      for (const [source, n] of bySource) child(acked, source).inc(n);
    });
    deps.outbox.on('quarantined', (q) => child(quarantined, q.source, 'agent').inc());
    deps.outbox.on('rejected', (bySource) => {
      for (const [source, n] of bySource) child(quarantined, source, 'relay').inc(n);
    });

    // One outbox read per scrape, shared by the gauges below.
    const stats = this.cache.memo((): OutboxStats | undefined => (deps.outbox.open ? deps.outbox.stats() : undefined));
    const outboxGauge = (name: string, help: string, value: (s: OutboxStats) => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          const s = stats();
          if (s) this.set(value(s));
        },
      });
    outboxGauge('plantlink_agent_outbox_pending_events', 'Events waiting in the outbox for the relay\'s ack.', (s) => s.pending);
    outboxGauge('plantlink_agent_outbox_pending_bytes', 'Bytes of the events waiting in the outbox.', (s) => s.pendingBytes);
    outboxGauge('plantlink_agent_outbox_oldest_pending_age_seconds', 'Age of the oldest pending event since it entered the outbox; 0 when none waits.', (s) =>
      s.oldestPendingMs === undefined ? 0 : Math.max(0, now() - s.oldestPendingMs) / 1000,
    );
    outboxGauge('plantlink_agent_outbox_quarantined_events', 'Events in the outbox\'s quarantine (`plantlink agent status` lists them).', (s) => s.rejected);
    outboxGauge('plantlink_agent_outbox_full', 'Whether the outbox is over its quota (1): sources pause or new events are dropped, per outbox.onFull.', (s) => (s.full ? 1 : 0));
    new Counter({
      name: 'plantlink_agent_outbox_dropped_total',
      help: 'Events dropped because the outbox was full (onFull: drop_newest), since the agent started.',
      registers,
      collect() {
        const s = stats();
        if (!s) return;
        this.reset();
        this.inc(s.dropped);
      },
    });

    new Gauge({
      name: 'plantlink_agent_source_state',
      help: 'Source health: 1 for the state the source is in, 0 for the others.',
      labelNames: ['source', 'kind', 'state'] as const,
      registers,
      collect() {
        this.reset();
        for (const s of deps.sources()) {
          for (const state of SOURCE_STATES) this.set({ source: s.name, kind: s.kind, state }, s.state === state ? 1 : 0);
        }
      },
    });
    new Gauge({
      name: 'plantlink_agent_uplink_connected',
      help: 'Whether the uplink to the relay is connected and welcomed (1) or not (0).',
      registers,
      collect() {
        this.set(deps.uplink().state === 'connected' ? 1 : 0);
      },
    });
    new Gauge({
      name: 'plantlink_agent_uplink_state',
      help: 'Uplink state: 1 for the current one, 0 for the others (unauthorized: the relay refused the token).',
      labelNames: ['state'] as const,
      registers,
      collect() {
        this.reset();
        const current = deps.uplink().state;
        for (const state of new Set([...UPLINK_STATES, current])) this.set({ state }, state === current ? 1 : 0);
      },
    });
    this.rtt = new Histogram({
      name: 'plantlink_agent_uplink_ack_rtt_seconds',
      help: 'From sending a batch to the relay\'s ack for it (the relay validates and fsyncs before acking).',
      buckets: RTT_BUCKETS,
      registers,
    });
  }

  /** An ack arrived `rttMs` after its batch was sent. */
  ackRtt(rttMs: number): void {
    this.rtt.observe(rttMs / 1000);
  }

  async scrape(): Promise<{ contentType: string; body: string }> {
    this.cache.beginScrape();
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
