/**
 * Outbound MQTT uplink: drains the outbox to the relay through an MQTT broker (the relay's
 * embedded one, or an external broker the relay consumes from).
 *
 * Same contract as the WebSocket uplink (see uplink.ts): an outbox row is deleted only on the
 * relay's `ack` frame on this agent's acks topic, which the relay publishes after its inbox
 * commit. The broker's PUBACK only means the broker has the batch; it changes nothing here.
 *
 * Invariants
 * - One MQTT client per connection attempt, never mqtt.js's own reconnect: a new client has
 *   an empty in-memory store, so mqtt.js never replays batches behind our back; the outbox is
 *   the only queue. The session is persistent (clean session / clean start off) so the broker
 *   keeps the acks subscription and queues acks while the agent is away.
 * - Nothing is sent before the relay's welcome (retained on the acks topic, re-sent by the
 *   broker on every SUBSCRIBE), which carries the relay's limits.
 * - Whatever is in flight when the connection ends, or when no ack came within the ack
 *   timeout, is read again from the outbox and resent; the relay dedupes on (source, id).
 * - Batch numbers start at a random offset per process, so an ack queued for a previous run's
 *   batch cannot be taken for a new batch's (see batch-window.ts).
 * - To a relay whose welcome lists `ledger`, the outbox's ledger goes along on the events topic
 *   (ledger-sender.ts): one frame per status tick when there are new entries, the next one
 *   right after its ack while no batch is in flight (events first), and again after
 *   `ackTimeoutMs` without an ack.
 * - An error frame naming no batch while a ledger frame waits for its ack is that frame's
 *   refusal: behind a shared subscription, during a rolling upgrade, an older relay replica
 *   that knows no ledger frames answers `unexpected_frame`. Batches are unaffected, so the
 *   connection stays; ledger frames pause for `LEDGER_PAUSE_MS` (or until a relay's new
 *   welcome) and are then tried again from the cursor. Any other error frame naming no batch
 *   still ends the connection.
 */
import { randomInt } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect, type IClientOptions, type MqttClient } from 'mqtt';
import { backoffMs, describeError } from '../../protocols/errors.js';
import type { Logger } from '../../protocols/log.js';
import { LEDGER_FEATURE, RelayFrame, STATUS_FEATURE, type AckFrame, type ErrorFrame, type StatusFrame, type WelcomeFrame } from '../../protocols/uplink/frames.js';
import { AGENT_MAX_PACKET_BYTES, noDelay, urlForLogs } from '../../protocols/uplink/mqtt-client.js';
import { acksTopic, eventsTopic } from '../../protocols/uplink/mqtt-topics.js';
import type { Outbox } from '../outbox/outbox.js';
import { BatchWindow } from './batch-window.js';
import { LedgerSender } from './ledger-sender.js';
import type { MqttUplinkConfig } from './mqtt-config.js';
import type { Uplink, UplinkEvents, UplinkHealth } from './uplink.js';

export interface AgentIdentity {
  agentId: string;
  plant: string;
}

/** CONNACK codes that mean "these credentials will not do" (3.1.1: 2, 4, 5; MQTT 5: 0x85, 0x86, 0x87, 0x8A). */
const REFUSED_CODES = new Set([2, 4, 5, 133, 134, 135, 138]);
/** PUBACK reason codes of MQTT 5 that mean the broker's ACL refused the publish. */
const NOT_AUTHORIZED = 135;
/** Ack timeouts double while nothing is acknowledged, up to this factor. */
const MAX_ACK_TIMEOUT_FACTOR = 8;
/**
 * How long ledger frames pause after a relay refused one with an error frame. Not for the whole
 * connection: the agent's connection to an external broker outlives a rolling upgrade of the
 * relays behind it, so waiting for a reconnect could hold the ledger back for weeks.
 */
const LEDGER_PAUSE_MS = 5 * 60_000;

interface Connection {
  client: MqttClient;
  welcome: WelcomeFrame | undefined;
  /** The last transport error (TLS, refused connection, ...), kept for the close that follows. */
  failure: string | undefined;
  /** Why we ended it ourselves, and whether that means "fix the configuration". */
  dropped: { detail: string; unauthorized: boolean } | undefined;
  closed: boolean;
  /** Ledger frames wait until then (Date.now() ms): a relay refused one (see the module comment). */
  ledgerPausedUntilMs?: number;
  /** Whether this connection already warned about a refused ledger frame (once per connection). */
  ledgerRefusalWarned?: boolean;
}

export class MqttUplink extends EventEmitter<UplinkEvents> implements Uplink {
  private conn: Connection | undefined;
  private readonly window: BatchWindow;
  private readonly ledger: LedgerSender;
  private readonly topics: { events: string; acks: string };
  private attempt = 0;
  private ackTimeouts = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private ackTimer: NodeJS.Timeout | undefined;
  private statusTimer: NodeJS.Timeout | undefined;
  private stopped = true;
  private health: UplinkHealth = { state: 'disconnected' };
  private readonly onAppended = () => this.pump();

  constructor(
    private readonly config: MqttUplinkConfig,
    private readonly outbox: Outbox,
    private readonly identity: AgentIdentity,
    private readonly logger: Logger,
  ) {
    super();
    this.topics = { events: eventsTopic(identity.plant, identity.agentId), acks: acksTopic(identity.plant, identity.agentId) };
    this.window = new BatchWindow(outbox, logger, randomInt(0, 2 ** 47));
    this.ledger = new LedgerSender(outbox, logger, config.ackTimeoutMs);
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.outbox.on('appended', this.onAppended);
    this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.outbox.off('appended', this.onAppended);
    clearTimeout(this.reconnectTimer);
    this.clearConnectionTimers();
    const conn = this.conn;
    this.conn = undefined;
    // Forced: a graceful end would wait for the PUBACKs of batches in flight, which may never
    // come (broker gone) and would change nothing (they stay in the outbox until acked).
    if (conn && !conn.closed) await new Promise<void>((resolve) => conn.client.end(true, {}, () => resolve()));
    this.window.reset();
    this.ledger.reset();
    this.setHealth({ state: 'stopped' });
  }

  status(): UplinkHealth & { inFlight: number } {
    return { ...this.health, inFlight: this.window.size };
  }

  private setHealth(next: UplinkHealth): void {
    this.health = { ...next, ...(this.health.lastAckMs !== undefined && next.lastAckMs === undefined ? { lastAckMs: this.health.lastAckMs } : {}) };
    this.emit('state', this.health);
  }

  private connect(): void {
    if (this.stopped) return;
    this.setHealth({ state: 'connecting' });
    let client: MqttClient;
    try {
      // mqtt.js builds the TLS context here, synchronously: a key not matching its certificate
      // (one of the two files rotated, the other not yet) throws instead of emitting 'error'.
      client = connect(this.config.url, this.clientOptions());
    } catch (e) {
      // A certificate being rotated, a share not mounted yet: retry, never crash-loop.
      this.setHealth({ state: 'disconnected', detail: `cannot use the TLS files: ${describeError(e)}` });
      return this.retryLater(`cannot use the uplink TLS files: ${describeError(e)}`, 'error');
    }
    noDelay(client);
    const conn: Connection = { client, welcome: undefined, failure: undefined, dropped: undefined, closed: false };
    this.conn = conn;
    client.on('connect', (connack) => {
      if (this.conn === conn) this.onConnected(conn, connack.sessionPresent);
    });
    client.on('message', (topic, payload) => {
      if (this.conn !== conn || conn.dropped) return;
      try {
        this.onMessage(conn, topic, payload);
      } catch (e) {
        // As over WebSocket: an outbox write failing while applying an ack must not kill the
        // process from a client callback. Unacked rows stay pending and are resent.
        this.logger.error({ err: describeError(e) }, 'could not apply a relay message to the outbox; reconnecting to resend from it');
        this.drop(conn, `agent outbox error: ${describeError(e)}`, false);
      }
    });
    client.on('error', (err) => {
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'number' && REFUSED_CODES.has(code)) {
        conn.dropped = { detail: `broker refused the connection: ${err.message} (check uplink.token, and that the relay knows agent "${this.identity.agentId}")`, unauthorized: true };
      } else {
        conn.failure = describeError(err);
      }
      this.logger.debug({ err: describeError(err) }, 'uplink client error');
    });
    client.on('close', () => this.onClosed(conn));
  }

  private clientOptions(): IClientOptions {
    const tls = this.config.tls;
    return {
      clientId: this.identity.agentId,
      username: this.identity.agentId,
      password: this.config.token,
      protocolVersion: this.config.protocolVersion,
      clean: false,
      keepalive: this.config.keepaliveSeconds,
      connectTimeout: this.config.connectTimeoutMs,
      // We reconnect ourselves, with a fresh client (see the module comment).
      reconnectPeriod: 0,
      resubscribe: false,
      ...(this.config.protocolVersion === 5 ? { properties: { sessionExpiryInterval: this.config.sessionExpirySeconds, maximumPacketSize: AGENT_MAX_PACKET_BYTES } } : {}),
      ...(tls?.caFile ? { ca: readFileSync(tls.caFile) } : {}),
      ...(tls?.certFile ? { cert: readFileSync(tls.certFile) } : {}),
      ...(tls?.keyFile ? { key: readFileSync(tls.keyFile) } : {}),
      ...(tls ? { rejectUnauthorized: tls.rejectUnauthorized } : {}),
    };
  }

  private onConnected(conn: Connection, sessionPresent: boolean): void {
    this.logger.debug({ sessionPresent }, 'connected to the broker; subscribing to the acks topic');
    this.setHealth({ state: 'connecting', detail: `connected to the broker; waiting for the relay's welcome on ${this.topics.acks}` });
    // Subscribe on every connection, even to a resumed session: the broker re-sends the
    // retained welcome only in answer to a SUBSCRIBE.
    conn.client.subscribe(this.topics.acks, { qos: 1 }, (err, granted) => {
      if (this.conn !== conn) return;
      const code = granted?.[0]?.qos;
      if (err || code === undefined || code >= 128) {
        const why = err ? describeError(err) : `reason code ${code ?? 'none'}`;
        this.drop(conn, `broker refused the subscription to ${this.topics.acks} (${why}); is this agent registered for plant "${this.identity.plant}"?`, true);
      }
    });
  }

  private onMessage(conn: Connection, topic: string, payload: Buffer): void {
    if (topic !== this.topics.acks) return;
    let frame: RelayFrame;
    try {
      const parsed = RelayFrame.safeParse(JSON.parse(payload.toString('utf8')));
      if (!parsed.success) throw new Error(parsed.error.issues[0]?.message ?? 'not a relay frame');
      frame = parsed.data;
    } catch (e) {
      // Not fatal over MQTT: whoever else may write this topic cannot make us drop the connection.
      this.logger.warn({ err: describeError(e), topic }, 'unexpected message on the acks topic; ignored');
      return;
    }
    switch (frame.t) {
      case 'welcome':
        return this.onWelcome(conn, frame);
      case 'ack':
        return this.onAck(frame);
      case 'ledger-ack':
        // One from an earlier connection (persistent session) names no frame in flight: ignored.
        if (!this.ledger.ack(frame.upto, frame.refused)) return;
        // More entries waiting (after an outage): send on while no batch waits for its ack.
        if (this.window.size === 0) this.sendLedger(conn);
        return;
      case 'error':
        return this.onError(conn, frame);
    }
  }

  private onWelcome(conn: Connection, welcome: WelcomeFrame): void {
    const first = conn.welcome === undefined;
    conn.welcome = welcome; // a relay restarting re-publishes it, perhaps with new limits
    // A relay (re)started, perhaps upgraded: try the ledger again now rather than after the pause.
    delete conn.ledgerPausedUntilMs;
    if (first) {
      this.attempt = 0;
      this.setHealth({ state: 'connected', connectedSinceMs: Date.now() });
      this.logger.info({ relayProtocol: welcome.protocol, plant: welcome.plant, url: urlForLogs(this.config.url) }, 'uplink connected (MQTT)');
    }
    this.pump();
    this.startStatusReports(conn, welcome);
  }

  private onAck(ack: AckFrame): void {
    const result = this.window.ack(ack);
    if (!result) {
      // An ack queued in our persistent session for a batch of an earlier connection, or of one
      // resent after an ack timeout: those events are pending again and will be acked anew.
      this.logger.debug({ batch: ack.batch }, 'ack for a batch not in flight; ignored');
      return;
    }
    this.health.lastAckMs = Date.now();
    this.ackTimeouts = 0;
    this.armAckTimer(true);
    this.emit('acked', result.stored, result.rejected, result.rttMs);
    this.pump();
  }

  private onError(conn: Connection, frame: ErrorFrame): void {
    if (frame.batch !== undefined && !this.window.has(frame.batch)) {
      this.logger.debug({ batch: frame.batch, code: frame.code }, 'relay error about a batch not in flight; ignored');
      return;
    }
    if (frame.batch === undefined && this.ledger.busy) return this.onLedgerRefused(conn, frame);
    this.logger.error({ code: frame.code, reason: frame.reason, batch: frame.batch }, 'relay refused a batch; reconnecting to resend');
    this.drop(conn, `relay refused batch ${frame.batch ?? '?'}: ${frame.code}: ${frame.reason}`, frame.code === 'forbidden_topic');
  }

  /** A relay answered the ledger frame in flight with an error: pause the ledger, keep the connection. */
  private onLedgerRefused(conn: Connection, frame: ErrorFrame): void {
    this.ledger.reset();
    conn.ledgerPausedUntilMs = Date.now() + LEDGER_PAUSE_MS;
    const fields = { code: frame.code, reason: frame.reason, retryInMs: LEDGER_PAUSE_MS };
    if (conn.ledgerRefusalWarned) return this.logger.debug(fields, 'relay refused a ledger frame again; ledger paused');
    conn.ledgerRefusalWarned = true;
    this.logger.warn(
      fields,
      'a relay did not take a ledger frame (an older relay replica?); events go on, and the ledger is sent again from its cursor later or after a reconnect',
    );
  }

  private pump(): void {
    const conn = this.conn;
    const welcome = conn?.welcome;
    if (!conn || !welcome || !conn.client.connected) return;
    const limits = {
      maxInFlight: Math.min(this.config.maxInFlight, welcome.maxInFlight),
      maxBatchEvents: Math.min(this.config.maxBatchEvents, welcome.maxBatchEvents),
      maxFrameBytes: welcome.maxFrameBytes,
    };
    const sent = this.window.fill(limits, (batch, frame) => {
      conn.client.publish(this.topics.events, frame, { qos: 1 }, (err) => {
        if (err && this.conn === conn) this.onPublishFailed(conn, batch, err);
      });
    });
    if (sent > 0) this.armAckTimer(false);
  }

  private onPublishFailed(conn: Connection, batch: number, err: Error): void {
    const code = (err as { code?: unknown }).code;
    if (code === NOT_AUTHORIZED) {
      this.drop(conn, `broker refused the publish to ${this.topics.events} (not authorized); check the broker ACL for agent "${this.identity.agentId}"`, true);
    } else {
      // A connection going away fails its pending publishes; the close handles the resend.
      this.logger.debug({ batch, err: describeError(err) }, 'publish failed');
    }
  }

  /** Ensures a timer runs while batches are in flight; `restart` after progress (an ack). */
  private armAckTimer(restart: boolean): void {
    if (restart) {
      clearTimeout(this.ackTimer);
      this.ackTimer = undefined;
    }
    if (this.ackTimer || this.window.size === 0) return;
    const timeout = this.config.ackTimeoutMs * Math.min(2 ** this.ackTimeouts, MAX_ACK_TIMEOUT_FACTOR);
    this.ackTimer = setTimeout(() => {
      this.ackTimer = undefined;
      if (this.window.size === 0) return;
      this.ackTimeouts++;
      const lost = this.window.reset();
      this.logger.warn({ unackedBatches: lost, timeoutMs: timeout }, 'no ack from the relay in time; sending the unacknowledged events again');
      try {
        this.pump();
      } catch (e) {
        // Reading the outbox failed (I/O error, closing): not from a timer into the process.
        this.logger.error({ err: describeError(e) }, 'could not read the outbox to resend; reconnecting');
        if (this.conn) this.drop(this.conn, `agent outbox error: ${describeError(e)}`, false);
      }
    }, timeout);
    this.ackTimer.unref();
  }

  /**
   * Tells the relay this agent's backlog now and every `statusIntervalMs`, if the relay takes
   * status frames, and sends the next ledger frame on the same tick, if it takes ledger frames.
   */
  private startStatusReports(conn: Connection, welcome: WelcomeFrame): void {
    clearInterval(this.statusTimer);
    const status = welcome.features?.includes(STATUS_FEATURE) ?? false;
    const ledger = welcome.features?.includes(LEDGER_FEATURE) ?? false;
    if (!status && !ledger) return;
    const tick = () => {
      if (status) report();
      if (ledger) this.sendLedger(conn);
    };
    const report = () => {
      if (this.conn !== conn || !conn.client.connected) return;
      let frame: StatusFrame;
      try {
        const stats = this.outbox.stats();
        frame = {
          t: 'status',
          pending: stats.pending,
          pendingBytes: stats.pendingBytes,
          ...(stats.oldestPendingMs === undefined ? {} : { oldestPendingAgeMs: Math.max(0, Date.now() - stats.oldestPendingMs) }),
        };
      } catch (e) {
        // A report is informational: an outbox read failing here (closing, disk error) must not crash the agent from a timer.
        return this.logger.warn({ err: describeError(e) }, 'could not read the outbox backlog for the relay');
      }
      // QoS 0: a lost report is replaced by the next one.
      conn.client.publish(this.topics.events, JSON.stringify(frame), { qos: 0 });
    };
    tick();
    this.statusTimer = setInterval(tick, this.config.statusIntervalMs);
    this.statusTimer.unref();
  }

  /** Sends the next ledger frame, if the relay takes them, none is in flight and there are new entries. */
  private sendLedger(conn: Connection): void {
    const welcome = conn.welcome;
    if (this.conn !== conn || !conn.client.connected || !welcome?.features?.includes(LEDGER_FEATURE)) return;
    if (conn.ledgerPausedUntilMs !== undefined && Date.now() < conn.ledgerPausedUntilMs) return;
    const next = this.ledger.next(welcome.plant, welcome.maxFrameBytes);
    if (!next) return;
    // QoS 1, like batches: a lost frame is sent again after the ack timeout.
    conn.client.publish(this.topics.events, next.frame, { qos: 1 }, (err) => {
      if (err && this.conn === conn) this.logger.debug({ upto: next.upto, err: describeError(err) }, 'ledger publish failed');
    });
  }

  /** Ends this connection on purpose; the close handler reconnects (with backoff) and resends. */
  private drop(conn: Connection, detail: string, unauthorized: boolean): void {
    conn.dropped ??= { detail, unauthorized };
    conn.client.end(true);
  }

  private onClosed(conn: Connection): void {
    if (conn.closed) return;
    conn.closed = true;
    conn.client.end(true); // releases mqtt.js's timers; it would not reconnect by itself anyway
    if (this.conn !== conn) return;
    this.conn = undefined;
    this.clearConnectionTimers();
    const lost = this.window.reset();
    this.ledger.reset();
    if (this.stopped) return;
    const detail =
      conn.dropped?.detail ??
      (conn.failure && !conn.welcome ? `connection failed: ${conn.failure}` : `connection closed${conn.failure ? `: ${conn.failure}` : ''}`);
    const unauthorized = conn.dropped?.unauthorized ?? false;
    this.setHealth({ state: unauthorized ? 'unauthorized' : 'disconnected', detail });
    this.retryLater(detail, unauthorized ? 'error' : 'warn', lost);
  }

  private retryLater(detail: string, level: 'warn' | 'error', unackedBatches = 0): void {
    const delay = backoffMs(this.attempt++, this.config.reconnect.initialDelayMs, this.config.reconnect.maxDelayMs);
    this.logger[level]({ detail, unackedBatches, retryInMs: delay }, 'uplink disconnected; will reconnect');
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  private clearConnectionTimers(): void {
    clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    clearInterval(this.statusTimer);
  }
}

