/**
 * The relay process: ingress -> store (dedupe, routing) -> one delivery worker per sink.
 * Lifecycle: start() opens the store (connects and migrates a shared one), starts the sinks
 * and workers, then listens; stop() refuses new connections, stops the workers after their
 * current batch, and closes. The store is the embedded SQLite inbox or a PostgreSQL database
 * shared with other replicas (relay/store/README.md).
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { CloudEventV1 } from '../protocols/events/envelope.js';
import { createLogger, type Logger } from '../protocols/log.js';
import { SinkConfig, type RelayConfig } from './config.js';
import { AdaptiveRateLimiter, RateLimitConfig } from './delivery/rate-limiter.js';
import { SinkWorker } from './delivery/sink-worker.js';
import { operatorApi } from './api/operator-api.js';
import { AgentTracker } from './agents/agent-tracker.js';
import { WebConsole } from './console/console.js';
import { Reconciler } from './reconcile/reconcile.js';
import { metricsNeedToken } from './metrics/config.js';
import { RelayMetrics } from './metrics/metrics.js';
import type { Inbox } from './inbox/inbox.js';
import { createStore } from './store/open-store.js';
import { SqliteStore } from './store/sqlite/sqlite-store.js';
import type { RelayStore } from './store/store.js';
import { AgentDirectory } from './ingress/agent-auth.js';
import { WebSocketIngress } from './ingress/ws-ingress.js';
import { BatchIntake } from './ingress/batch-intake.js';
import { MqttIngress, type BrokerPorts } from './ingress/mqtt/mqtt-ingress.js';
import type { IngressObserver } from './ingress/observer.js';
import { resolveLanes } from './router/lanes.js';
import { Router } from './router/router.js';
import { HubSpotSink } from './sinks/hubspot/index.js';
import { NetSuiteSink } from './sinks/netsuite/index.js';
import { SalesforceSink } from './sinks/salesforce/index.js';
import { WebhookSink } from './sinks/webhook/index.js';
import type { Sink } from './sinks/sink.js';
import { listen } from '../protocols/listen.js';

export type RelayState = 'INITIALIZED' | 'RUNNING' | 'DRAINING' | 'STOPPED';

const PRUNE_EVERY_MS = 3_600_000;

/** Builds a sink with its own request pacing, or with `sharedLimiter` (a route's lane into the same API). */
export function createSink(config: SinkConfig, logger: Logger, sharedLimiter?: AdaptiveRateLimiter): { sink: Sink; limiter: AdaptiveRateLimiter } {
  const limiter = sharedLimiter ?? new AdaptiveRateLimiter(RateLimitConfig.parse(config.rateLimit ?? {}));
  const log = logger.child({ sink: config.name });
  const runtime = { gate: limiter };
  switch (config.kind) {
    case 'salesforce':
      return { sink: new SalesforceSink(config, log, runtime), limiter };
    case 'hubspot':
      return { sink: new HubSpotSink(config, log, runtime), limiter };
    case 'netsuite':
      return { sink: new NetSuiteSink(config, log, runtime), limiter };
    case 'webhook':
      return { sink: new WebhookSink(config, log, runtime), limiter };
  }
}

export interface RelayOptions {
  logger?: Logger;
  /** Called for every successful delivery (the demo prints these). */
  onDelivered?: (sink: string, event: CloudEventV1, recordIds: string[]) => void;
}

export class Relay {
  state: RelayState = 'INITIALIZED';
  readonly store: RelayStore;
  private readonly logger: Logger;
  private readonly server: Server;
  private readonly ingress: WebSocketIngress;
  /** MQTT ingress (embedded broker or external broker), when `mqtt` is configured. */
  private readonly mqtt: MqttIngress | undefined;
  private readonly sinks: Sink[];
  private readonly limiters: Map<string, AdaptiveRateLimiter>;
  private readonly workers: SinkWorker[];
  private readonly tls: boolean;
  private pruneTimer: NodeJS.Timeout | undefined;
  private pruning = false;
  /** Connection state and reported backlog of every agent. */
  readonly agents: AgentTracker;
  /** Prometheus figures, served at /metrics. */
  readonly metrics: RelayMetrics;
  /** The web console at /console/ (relay/console/README.md). */
  private readonly webConsole: WebConsole;

  constructor(private readonly config: RelayConfig, options: RelayOptions = {}) {
    this.logger = options.logger ?? createLogger('plantlink-relay', { level: config.log.level });
    this.store = createStore(config.relay.store, config.relay.dataDir);
    // Every sink is a delivery lane; a route with its own mappings adds one (`<sink>:<route>`)
    // that paces its calls with its sink's limiter.
    const { lanes } = resolveLanes(config.sinks, config.routes, SinkConfig);
    this.limiters = new Map();
    this.sinks = lanes.map((lane) => {
      const built = createSink(lane.config, this.logger, this.limiters.get(lane.pacedBy));
      this.limiters.set(lane.name, built.limiter);
      return built.sink;
    });
    this.agents = new AgentTracker(config.agents);
    this.metrics = new RelayMetrics({
      store: this.store,
      sinks: this.sinks.map((s) => ({ name: s.name, kind: s.kind })),
      limiters: () => new Map([...this.limiters].map(([name, l]) => [name, l.status()])),
      agents: () => this.agents.list(),
    });
    this.workers = this.sinks.map(
      (sink) =>
        new SinkWorker(
          sink,
          this.store,
          config.delivery,
          this.logger.child({ sink: sink.name }),
          (event, ids) => options.onDelivered?.(sink.name, event, ids),
          this.metrics.forSink(sink.name),
        ),
    );
    const tls = config.relay.listen.tls;
    this.tls = Boolean(tls);
    const reconciler = new Reconciler({ store: this.store, sinks: this.sinks, retentionHours: config.relay.retentionHours });
    const wakeAll = () => this.workers.forEach((w) => w.wake());
    const onReplay = (replayed: number) => {
      this.metrics.replays(replayed);
      wakeAll();
    };
    const api = operatorApi({
      reconciler,
      onResend: wakeAll,
      config: config.api,
      store: this.store,
      status: async () => ({ ...this.status(), counts: await this.store.counts() }),
      ready: () => this.readiness(),
      agents: () => this.agentsView(),
      metrics: { requireToken: metricsNeedToken(config.metrics, config.relay.listen.host, config.api.tokens.length), scrape: () => this.metrics.scrape() },
      onReplay,
      logger: this.logger.child({ component: 'api' }),
    });
    this.webConsole = new WebConsole({
      config: config.console,
      tokens: config.api.tokens,
      tls: Boolean(tls),
      dataDir: config.relay.dataDir,
      store: this.store,
      agents: () => this.agentsView(),
      totals: () => this.metrics.totals,
      latency: () => this.metrics.agentToSink.lastHour(),
      reconciler,
      onResend: wakeAll,
      onReplay,
      logger: this.logger.child({ component: 'console' }),
    });
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      (this.webConsole.handles(req) ? this.webConsole.handle(req, res) : api(req, res)).catch((e: unknown) => {
        this.logger.error({ err: String(e) }, 'operator API request failed');
        if (!res.headersSent) res.writeHead(500).end();
      });
    };
    this.server = tls
      ? createHttpsServer(
          {
            cert: readFileSync(tls.certFile),
            key: readFileSync(tls.keyFile),
            ...(tls.caFile ? { ca: readFileSync(tls.caFile), requestCert: true, rejectUnauthorized: true } : {}),
          },
          handler,
        )
      : createHttpServer(handler);
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 30_000;
    this.ingress = new WebSocketIngress({
      agents: new AgentDirectory(config.agents),
      store: this.store,
      router: new Router(config.routes),
      limits: config.ingress,
      logger: this.logger.child({ component: 'ingress' }),
      onStored: () => this.workers.forEach((w) => w.wake()),
      observer: this.ingressObserver(),
    });
    this.ingress.attach(this.server, config.ingress.path);
    // Over MQTT, batches take the same intake (validation, plant checks, inbox commit, ack).
    this.mqtt = config.mqtt
      ? new MqttIngress({
          config: config.mqtt,
          agents: new AgentDirectory(config.agents),
          intake: new BatchIntake({
            store: this.store,
            router: new Router(config.routes),
            limits: config.ingress,
            onStored: () => this.workers.forEach((w) => w.wake()),
            observer: this.ingressObserver(),
          }),
          maxInFlight: config.ingress.maxInFlight,
          observer: this.ingressObserver(),
          logger: this.logger.child({ component: 'ingress' }),
        })
      : undefined;
  }

  /** What every ingress (WebSocket, MQTT) reports about agents goes to the tracker and the metrics. */
  private ingressObserver(): IngressObserver {
    return {
      connected: (agent, remote) => this.agents.connected(agent, remote),
      disconnected: (agent) => this.agents.disconnected(agent),
      status: (agent, frame) => this.agents.status(agent, frame),
      batch: (agent, report) => {
        this.agents.batch(agent, report);
        this.metrics.batch(agent, report);
      },
    };
  }

  /** The embedded SQLite inbox, for tests and tools that look inside it; throws with a shared store. */
  get inbox(): Inbox {
    if (!(this.store instanceof SqliteStore)) throw new Error(`relay.inbox: this relay keeps its state in ${this.store.kind}, not the embedded inbox`);
    return this.store.inbox;
  }

  async start(): Promise<void> {
    // Before anything that reads or writes it; a database that is away fails the start.
    await this.store.init?.();
    for (const sink of this.sinks) {
      try {
        await sink.start();
      } catch (e) {
        // Refused credentials for one CRM must not take ingress down for every plant: events
        // keep being stored, and this sink's worker retries (and says why) until it is fixed.
        this.logger.error({ sink: sink.name, err: String(e) }, 'sink failed to start; its deliveries wait until it recovers');
      }
    }
    for (const w of this.workers) w.start();
    const { host, port } = this.config.relay.listen;
    await listen(this.server, port, host, this.logger, 'relay');
    await this.mqtt?.start();
    this.state = 'RUNNING';
    void this.prune();
    this.pruneTimer = setInterval(() => void this.prune(), PRUNE_EVERY_MS);
    this.pruneTimer.unref();
    this.logger.info({ url: this.wsUrl, sinks: this.sinks.map((s) => s.name), agents: this.config.agents.length }, 'relay started');
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** The embedded MQTT broker's listening ports (empty without one). */
  get mqttPorts(): BrokerPorts {
    return this.mqtt?.ports ?? {};
  }

  get wsUrl(): string {
    const host = this.config.relay.listen.host === '0.0.0.0' ? '127.0.0.1' : this.config.relay.listen.host;
    return `${this.tls ? 'wss' : 'ws'}://${host}:${this.port}${this.config.ingress.path}`;
  }

  private async prune(): Promise<void> {
    // One at a time: a prune still walking a big store when the next is due must not be joined by another.
    if (this.pruning) return;
    this.pruning = true;
    try {
      const cutoff = Date.now() - this.config.relay.retentionHours * 3_600_000;
      const pruned = await this.store.prune(cutoff);
      if (pruned.events + pruned.rejections + pruned.versions > 0) this.logger.info(pruned, 'pruned delivered events past the retention window');
    } catch (e) {
      this.logger.error({ err: String(e) }, 'pruning the inbox failed; will try again');
    } finally {
      this.pruning = false;
    }
  }

  /** Ready to take agents' events: running, listening, inbox open. */
  readiness(): { ready: true } | { ready: false; reason: string } {
    if (this.state !== 'RUNNING') return { ready: false, reason: `relay is ${this.state.toLowerCase()}` };
    if (!this.server.listening) return { ready: false, reason: 'not listening' };
    if (!this.store.open) return { ready: false, reason: 'inbox is closed' };
    const store = this.store.health?.();
    if (store && !store.ok) return { ready: false, reason: store.reason };
    return { ready: true };
  }

  /** Each agent as the relay sees it, with its plant's deliveries still waiting at the relay. */
  async agentsView() {
    const relayPending = new Map((await this.store.pendingByPlant()).map((p) => [p.plant, p]));
    const now = Date.now();
    return this.agents.list().map((a) => {
      const p = relayPending.get(a.plant);
      return { ...a, relay: { pendingEvents: p?.events ?? 0, oldestPendingAgeMs: p ? Math.max(0, now - p.oldestTimeMs) : undefined } };
    });
  }

  /** In-memory state only (cheap, synchronous); the API's /v1/status adds the store's counts. */
  status() {
    return {
      state: this.state,
      agents: [...this.ingress.connected(), ...(this.mqtt?.connected() ?? [])],
      ...(this.mqtt ? { mqtt: this.mqtt.status() } : {}),
      sinks: this.workers.map((w) => ({ ...w.status(), pacing: this.limiters.get(w.status().sink)?.status() })),
    };
  }

  async stop(): Promise<void> {
    if (this.state === 'STOPPED') return;
    this.state = 'DRAINING';
    clearInterval(this.pruneTimer);
    await this.ingress.close();
    await this.mqtt?.close();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    for (const w of this.workers) await w.stop();
    for (const s of this.sinks) await s.stop();
    this.webConsole.close();
    await this.store.close();
    this.state = 'STOPPED';
    this.logger.info('relay stopped');
  }
}
