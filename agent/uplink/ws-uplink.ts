/**
 * Outbound WebSocket uplink: drains the outbox to the relay.
 *
 * The outbox drives delivery. Batches are read in sequence order and at most
 * `maxInFlight` are unacknowledged at a time. An outbox row is deleted only when the
 * relay's ack for its batch arrives (the relay acks after its fsync'd commit); a row the
 * relay refuses moves to the outbox's `rejected` table with the relay's reason. When the
 * socket goes away, everything in flight is simply read again from the outbox after the
 * next welcome: resume is from the oldest unacknowledged event, and the relay dedupes.
 *
 * To a relay whose welcome lists `ledger`, the outbox's ledger goes along (ledger-sender.ts):
 * one frame on every status tick when there are new entries, and the next one right after its
 * ack while no event batch is in flight, so events go first when there is a backlog.
 */
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { backoffMs, describeError } from '../../protocols/errors.js';
import type { Logger } from '../../protocols/log.js';
import {
  AckFrame,
  CloseCode,
  closeReason,
  LEDGER_FEATURE,
  RelayFrame,
  STATUS_FEATURE,
  subprotocolFor,
  SUPPORTED_UPLINK_VERSIONS,
  type StatusFrame,
  type WelcomeFrame,
} from '../../protocols/uplink/frames.js';
import type { Outbox } from '../outbox/outbox.js';
import type { WebSocketUplinkConfig } from './config.js';
import { BatchWindow } from './batch-window.js';
import { LedgerSender } from './ledger-sender.js';
import type { Uplink, UplinkEvents, UplinkHealth } from './uplink.js';

export type { UplinkHealth, UplinkState } from './uplink.js';

/** A ledger frame unacknowledged this long is sent again (the socket's close normally comes first). */
const LEDGER_ACK_TIMEOUT_MS = 60_000;

export class WebSocketUplink extends EventEmitter<UplinkEvents> implements Uplink {
  private ws: WebSocket | undefined;
  private welcome: WelcomeFrame | undefined;
  /** The batches in flight over the outbox: shared with the MQTT uplink (batch-window.ts). */
  private readonly window: BatchWindow;
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private statusTimer: NodeJS.Timeout | undefined;
  private awaitingPong = false;
  private stopped = true;
  private health: UplinkHealth = { state: 'disconnected' };
  private readonly onAppended = () => this.pump();
  private readonly ledger: LedgerSender;

  constructor(
    private readonly config: WebSocketUplinkConfig,
    private readonly outbox: Outbox,
    private readonly logger: Logger,
  ) {
    super();
    this.window = new BatchWindow(outbox, logger);
    this.ledger = new LedgerSender(outbox, logger, LEDGER_ACK_TIMEOUT_MS);
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
    clearInterval(this.heartbeatTimer);
    clearInterval(this.statusTimer);
    const ws = this.ws;
    this.ws = undefined;
    if (ws && ws.readyState !== WebSocket.CLOSED) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          ws.terminate();
          resolve();
        }, 2000);
        ws.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
        if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
        else ws.close(1000, 'agent stopping');
      });
    }
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
    const tls = this.config.tls;
    let tlsFiles: { ca?: Buffer; cert?: Buffer; key?: Buffer };
    try {
      tlsFiles = {
        ...(tls?.caFile ? { ca: readFileSync(tls.caFile) } : {}),
        ...(tls?.certFile ? { cert: readFileSync(tls.certFile) } : {}),
        ...(tls?.keyFile ? { key: readFileSync(tls.keyFile) } : {}),
      };
    } catch (e) {
      // A certificate being rotated, a share not mounted yet: retry, never crash-loop.
      const delay = backoffMs(this.attempt++, this.config.reconnect.initialDelayMs, this.config.reconnect.maxDelayMs);
      this.setHealth({ state: 'disconnected', detail: `cannot read TLS files: ${describeError(e)}` });
      this.logger.error({ err: describeError(e), retryInMs: delay }, 'cannot read uplink TLS files');
      this.reconnectTimer = setTimeout(() => this.connect(), delay);
      return;
    }
    const ws = new WebSocket(
      this.config.url,
      SUPPORTED_UPLINK_VERSIONS.map(subprotocolFor),
      {
        headers: { Authorization: `Bearer ${this.config.token}` },
        handshakeTimeout: this.config.connectTimeoutMs,
        maxPayload: 16 * 1024 * 1024, // acks list every refused event with its reason
        perMessageDeflate: false,
        ...tlsFiles,
        ...(tls ? { rejectUnauthorized: tls.rejectUnauthorized } : {}),
      },
    );
    this.ws = ws;
    let refused: string | undefined;

    ws.on('unexpected-response', (_req, res) => {
      const status = res.statusCode ?? 0;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (body.length < 1000) body += chunk;
      });
      res.on('end', () => {
        refused = `relay refused the connection: HTTP ${status} ${body.trim().slice(0, 300)}`;
        ws.terminate();
      });
      if (status === 401 || status === 403) this.setHealth({ state: 'unauthorized', detail: `HTTP ${status}` });
    });
    ws.on('message', (data, isBinary) => {
      // Frames still arriving after we started closing are not applied: they are resent or re-acked.
      if (ws.readyState !== WebSocket.OPEN) return;
      if (isBinary) return this.protocolError('binary frame from relay');
      try {
        this.onFrame(data.toString());
      } catch (e) {
        // Applying an ack writes the outbox; if that fails (disk full, I/O error, closing) the
        // process must not die from a socket callback. Unacked rows stay pending and are resent.
        this.logger.error({ err: describeError(e) }, 'could not apply a relay frame to the outbox; reconnecting to resend from it');
        ws.close(1011, 'agent outbox error');
      }
    });
    ws.on('pong', () => {
      this.awaitingPong = false;
    });
    let failure: string | undefined;
    ws.on('error', (err) => {
      // Kept for the close that follows: "self-signed certificate", "ECONNREFUSED", ...
      failure = describeError(err);
      if (!refused) this.logger.debug({ err: failure }, 'uplink socket error');
    });
    ws.on('close', (code, reason) => {
      if (this.ws !== ws) return;
      this.ws = undefined;
      const wasWelcomed = this.welcome !== undefined;
      clearInterval(this.heartbeatTimer);
      clearInterval(this.statusTimer);
      const lost = this.window.reset();
      this.ledger.reset();
      this.welcome = undefined;
      if (this.stopped) return;
      const detail = refused ?? (failure && !wasWelcomed ? `connection failed: ${failure}` : `closed (${code}${reason.length ? `: ${reason.toString()}` : ''})`);
      const unauthorized = /HTTP 40[13]/.test(detail);
      this.setHealth({ state: unauthorized ? 'unauthorized' : 'disconnected', detail });
      const delay = backoffMs(this.attempt++, this.config.reconnect.initialDelayMs, this.config.reconnect.maxDelayMs);
      const log = unauthorized ? this.logger.error.bind(this.logger) : this.logger.warn.bind(this.logger);
      log({ detail, unackedBatches: lost, retryInMs: delay }, unauthorized ? 'relay refused this agent\'s credentials; check uplink.token' : 'uplink disconnected; will reconnect');
      this.reconnectTimer = setTimeout(() => this.connect(), delay);
    });
  }

  private onFrame(text: string): void {
    let frame: RelayFrame;
    try {
      const parsed = RelayFrame.safeParse(JSON.parse(text));
      if (!parsed.success) return this.protocolError(`unexpected frame from relay: ${parsed.error.issues[0]?.message}`);
      frame = parsed.data;
    } catch (e) {
      return this.protocolError(`malformed frame from relay: ${describeError(e)}`);
    }
    switch (frame.t) {
      case 'welcome':
        this.welcome = frame;
        this.attempt = 0;
        this.window.reset();
        this.setHealth({ state: 'connected', connectedSinceMs: Date.now() });
        this.logger.info({ relayProtocol: frame.protocol, plant: frame.plant }, 'uplink connected');
        this.startHeartbeat();
        this.pump();
        this.startStatusReports(frame);
        return;
      case 'ack':
        return this.onAck(frame);
      case 'ledger-ack':
        if (!this.ledger.ack(frame.upto, frame.refused)) return;
        // More entries waiting (after an outage): send on while no event batch waits for its ack.
        if (this.window.size === 0) this.sendLedger();
        return;
      case 'error':
        this.logger.error({ code: frame.code, reason: frame.reason }, 'relay reported a protocol error');
        return;
    }
  }

  private onAck(ack: AckFrame): void {
    if (!this.window.has(ack.batch)) return this.protocolError(`ack for unknown batch ${ack.batch}`);
    // Rejected rows move to `rejected` before the stored ones are deleted (batch-window.ts).
    const applied = this.window.ack(ack);
    if (!applied) return this.protocolError(`ack for batch ${ack.batch} does not match it`);
    this.health.lastAckMs = Date.now();
    this.emit('acked', applied.stored, applied.rejected, applied.rttMs);
    this.pump();
  }

  private pump(): void {
    const ws = this.ws;
    const welcome = this.welcome;
    if (!ws || !welcome || ws.readyState !== WebSocket.OPEN) return;
    // An event too large for this relay's frames is quarantined by the window instead of sent:
    // it would close the socket (1009) and block the backlog behind it on every reconnect.
    this.window.fill(
      {
        maxInFlight: Math.min(this.config.maxInFlight, welcome.maxInFlight),
        maxBatchEvents: Math.min(this.config.maxBatchEvents, welcome.maxBatchEvents),
        maxFrameBytes: welcome.maxFrameBytes,
      },
      (_batch, frame) => ws.send(frame),
    );
  }

  private startHeartbeat(): void {
    clearInterval(this.heartbeatTimer);
    this.awaitingPong = false;
    this.heartbeatTimer = setInterval(() => {
      const ws = this.ws;
      if (!ws) return;
      if (this.awaitingPong) {
        this.logger.warn('relay did not answer a ping; dropping the connection');
        ws.terminate();
        return;
      }
      this.awaitingPong = true;
      ws.ping();
    }, this.config.heartbeatMs);
    this.heartbeatTimer.unref();
  }

  /**
   * Tells the relay this agent's backlog now and every `statusIntervalMs`, if the relay takes
   * status frames, and sends the next ledger frame on the same tick, if it takes ledger frames.
   */
  private startStatusReports(welcome: WelcomeFrame): void {
    clearInterval(this.statusTimer);
    const status = welcome.features?.includes(STATUS_FEATURE) ?? false;
    const ledger = welcome.features?.includes(LEDGER_FEATURE) ?? false;
    if (!status && !ledger) return;
    const tick = () => {
      if (status) report();
      if (ledger) this.sendLedger();
    };
    const report = () => {
      const ws = this.ws;
      if (!ws || ws.readyState !== WebSocket.OPEN) return;
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
      ws.send(JSON.stringify(frame));
    };
    tick();
    this.statusTimer = setInterval(tick, this.config.statusIntervalMs);
    this.statusTimer.unref();
  }

  /** Sends the next ledger frame, if the relay takes them, none is in flight and there are new entries. */
  private sendLedger(): void {
    const ws = this.ws;
    const welcome = this.welcome;
    if (!ws || !welcome || ws.readyState !== WebSocket.OPEN || !welcome.features?.includes(LEDGER_FEATURE)) return;
    const next = this.ledger.next(welcome.plant, welcome.maxFrameBytes);
    if (next) ws.send(next.frame);
  }

  private protocolError(reason: string): void {
    this.logger.error({ reason }, 'uplink protocol error; reconnecting');
    this.ws?.close(CloseCode.protocolViolation, closeReason(reason));
  }
}
