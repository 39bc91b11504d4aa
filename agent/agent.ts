/**
 * The agent process: sources -> outbox (SQLite) -> uplink.
 * Lifecycle: start() opens the outbox, starts the uplink (it drains whatever was left
 * pending by a previous run), then the sources; stop() stops the sources first, so no
 * read is left half-committed, then the uplink, then closes the outbox.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeError } from '../protocols/errors.js';
import { createLogger, type Logger } from '../protocols/log.js';
import type { AgentConfig, SourceConfig } from './config.js';
import { AgentMetrics } from './metrics/metrics.js';
import { startMetricsServer, type MetricsServer } from './metrics/server.js';
import { Outbox } from './outbox/outbox.js';
import { FileSource } from './sources/file/index.js';
import { MqttSource } from './sources/mqtt/index.js';
import { OpcUaSource } from './sources/opcua/index.js';
import { SoapSource } from './sources/soap/index.js';
import type { Source, SourceContext } from './sources/source.js';
import { createUplink, type Uplink } from './uplink/index.js';

export type AgentState = 'INITIALIZED' | 'RUNNING' | 'DRAINING' | 'STOPPED';

export function createSource(config: SourceConfig, dataDir: string, logger: Logger): Source {
  switch (config.kind) {
    case 'opcua':
      // The OPC UA client's certificate store lives with the agent's data, not in a home directory.
      return new OpcUaSource({ ...config, pkiDir: config.pkiDir ?? join(dataDir, 'pki') }, logger.child({ source: config.name }));
    case 'soap':
      return new SoapSource(config, logger.child({ source: config.name }));
    case 'file':
      return new FileSource(config, logger.child({ source: config.name }));
    case 'mqtt':
      // Unmappable messages are kept with the agent's data, per source.
      return new MqttSource({ ...config, quarantineDir: config.quarantineDir ?? join(dataDir, 'quarantine', config.name) }, logger.child({ source: config.name }));
  }
}

/** How often the agent writes `status.json` for `plantlink agent status`. */
const STATUS_EVERY_MS = 5000;

export class Agent {
  state: AgentState = 'INITIALIZED';
  readonly outbox: Outbox;
  readonly uplink: Uplink;
  readonly sources: Source[];
  private readonly logger: Logger;
  private readonly resumeListeners = new Set<() => void>();
  private statusTimer: NodeJS.Timeout | undefined;
  readonly metrics: AgentMetrics;
  private metricsServer: MetricsServer | undefined;

  constructor(private readonly config: AgentConfig, options: { logger?: Logger } = {}) {
    this.logger = options.logger ?? createLogger('plantlink-agent', { level: config.log.level });
    this.outbox = new Outbox({
      path: join(config.agent.dataDir, 'outbox.sqlite'),
      plant: config.agent.plant,
      maxBytes: config.outbox.maxBytes,
      maxEvents: config.outbox.maxEvents,
      onFull: config.outbox.onFull,
      ledgerRetentionDays: config.outbox.ledgerRetentionDays,
      ledgerMaxRows: config.outbox.ledgerMaxRows,
    });
    this.outbox.on('full', (reason) => this.logger.error({ alarm: 'outbox_full', policy: config.outbox.onFull }, reason));
    this.outbox.on('resumed', () => {
      this.logger.warn({ alarm: 'outbox_full', cleared: true }, 'outbox has room again; sources resume');
      for (const l of this.resumeListeners) {
        // Each source on its own: one failing to resume must not keep the others paused.
        try {
          l();
        } catch (e) {
          this.logger.error({ err: describeError(e) }, 'a source failed to resume');
        }
      }
    });
    this.outbox.on('quarantined', (q) => this.logger.error(q, 'event quarantined in the outbox (failed validation)'));
    this.uplink = createUplink(config.uplink, this.outbox, { agentId: config.agent.id, plant: config.agent.plant }, this.logger.child({ component: 'uplink' }));
    this.sources = config.sources.map((s) => createSource(s, config.agent.dataDir, this.logger));
    this.metrics = new AgentMetrics({
      outbox: this.outbox,
      sources: () => this.sources.map((s) => ({ name: s.name, kind: s.kind, state: s.health().state })),
      uplink: () => this.uplink.status(),
    });
    this.uplink.on('acked', (_stored, _rejected, rttMs) => this.metrics.ackRtt(rttMs));
  }

  /** The metrics listener's base URL (http://host:port), when `metrics.listen` is set and it started. */
  get metricsUrl(): string | undefined {
    return this.metricsServer?.url;
  }

  /** For /readyz: the agent takes data while it runs with its outbox open. */
  readiness(): { ready: true } | { ready: false; reason: string } {
    if (!this.outbox.open) return { ready: false, reason: 'outbox is closed' };
    if (this.state !== 'RUNNING') return { ready: false, reason: `agent is ${this.state.toLowerCase()}` };
    return { ready: true };
  }

  private async startMetricsServer(): Promise<void> {
    const listen = this.config.metrics.listen;
    if (!listen) return;
    try {
      this.metricsServer = await startMetricsServer(listen, { scrape: () => this.metrics.scrape(), ready: () => this.readiness() }, this.logger);
      this.logger.info({ url: `${this.metricsServer.url}/metrics` }, 'metrics listener started');
    } catch (e) {
      // Monitoring must never stop the data: without the listener the agent still forwards events.
      this.logger.error({ err: String(e), host: listen.host, port: listen.port }, 'metrics listener failed to start; running without it');
    }
  }

  private contextFor(source: Source): SourceContext {
    return {
      plant: this.config.agent.plant,
      logger: this.logger.child({ source: source.name }),
      commit: (events, state) => this.outbox.append(source.name, events, state),
      loadState: <T>(key: string) => this.outbox.loadState<T>(source.name, key),
      onResume: (listener) => {
        this.resumeListeners.add(listener);
        return () => this.resumeListeners.delete(listener);
      },
    };
  }

  async start(): Promise<void> {
    const stats = this.outbox.stats();
    this.logger.info({ agent: this.config.agent.id, plant: this.config.agent.plant, pending: stats.pending }, 'agent starting');
    await this.startMetricsServer();
    this.uplink.start();
    for (const source of this.sources) await source.start(this.contextFor(source));
    this.state = 'RUNNING';
    this.writeStatus();
    this.statusTimer = setInterval(() => {
      this.writeStatus();
      this.pruneLedger();
    }, STATUS_EVERY_MS);
    this.statusTimer.unref();
  }

  /** Drops ledger rows past their retention or the row cap, a bounded number per call (see Outbox.pruneLedger, trimLedger). */
  private pruneLedger(): void {
    try {
      const pruned = this.outbox.pruneLedger();
      if (pruned > 0) this.logger.debug({ pruned }, 'pruned old ledger entries');
      const trimmed = this.outbox.trimLedger();
      if (trimmed.unsent > 0) {
        this.logger.warn(
          { pruned: trimmed.pruned, unsent: trimmed.unsent, ledgerMaxRows: this.config.outbox.ledgerMaxRows },
          'ledger over its row cap: pruned the oldest entries, some never sent to the relay',
        );
      } else if (trimmed.pruned > 0) {
        this.logger.debug({ pruned: trimmed.pruned }, 'pruned the oldest ledger entries beyond the row cap');
      }
    } catch (e) {
      // Housekeeping: a failure here (disk, closing) must not crash the agent from a timer.
      this.logger.warn({ err: String(e) }, 'could not prune the outbox ledger');
    }
  }

  /** Live status for `plantlink agent status` (another process): written atomically, never torn. */
  private writeStatus(): void {
    const file = join(this.config.agent.dataDir, 'status.json');
    try {
      writeFileSync(`${file}.tmp`, JSON.stringify({ writtenMs: Date.now(), agent: this.config.agent.id, plant: this.config.agent.plant, ...this.status() }));
      renameSync(`${file}.tmp`, file);
    } catch (e) {
      this.logger.warn({ err: String(e) }, 'could not write status.json');
    }
  }

  status() {
    return {
      state: this.state,
      outbox: this.outbox.stats(),
      uplink: this.uplink.status(),
      sources: this.sources.map((s) => ({ name: s.name, kind: s.kind, ...s.health() })),
    };
  }

  async stop(): Promise<void> {
    if (this.state === 'STOPPED') return;
    this.state = 'DRAINING';
    clearInterval(this.statusTimer);
    for (const source of this.sources) await source.stop();
    await this.uplink.stop();
    this.state = 'STOPPED';
    this.writeStatus();
    this.outbox.close();
    this.state = 'STOPPED';
    await this.metricsServer?.close();
    this.logger.info('agent stopped');
  }
}
