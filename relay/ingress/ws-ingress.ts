/**
 * WebSocket ingress: where agents connect. Owns the upgrade (auth, version negotiation),
 * heartbeats and connection bookkeeping; what a batch frame means (validation, plant
 * checks, inbox commit, the ack) is batch-intake.ts, shared with the MQTT ingress.
 *
 * Per connection, frames are handled one at a time, in arrival order (a `SerialQueue` per
 * connection; the store's commit is async), so acks leave in batch order and an ack is only
 * ever sent after the store's commit for its batch resolved (a `ledger-ack` likewise after
 * its ledger entries' commit). A frame that is not a batch at
 * all ends the connection with an error frame and a close code; the agent resends from its
 * outbox.
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { describeError } from '../../protocols/errors.js';
import type { Logger } from '../../protocols/log.js';
import {
  CloseCode,
  closeReason,
  LEDGER_FEATURE,
  negotiateVersion,
  STATUS_FEATURE,
  subprotocolFor,
  SUPPORTED_UPLINK_VERSIONS,
  type ErrorFrame,
  type WelcomeFrame,
} from '../../protocols/uplink/frames.js';
import type { RelayStore } from '../store/store.js';
import type { Router } from '../router/router.js';
import type { AgentCredential, AgentDirectory } from './agent-auth.js';
import { BatchIntake, SerialQueue } from './batch-intake.js';
import type { IngressObserver } from './observer.js';

/** The close code after each error frame, so the agent can tell "fix your config" from "try again". */
const CLOSE_CODE_FOR: Record<ErrorFrame['code'], number> = {
  malformed_frame: CloseCode.invalidPayload,
  unexpected_frame: CloseCode.protocolViolation,
  frame_too_large: CloseCode.tooLarge,
  batch_too_large: CloseCode.protocolViolation,
  forbidden_topic: CloseCode.protocolViolation,
  internal: CloseCode.internal,
};

export interface IngressLimits {
  maxFrameBytes: number;
  maxBatchEvents: number;
  maxInFlight: number;
  heartbeatMs: number;
}

export interface ConnectedAgent {
  id: string;
  plant: string;
  remote: string;
  connectedMs: number;
  lastFrameMs: number | undefined;
  batches: number;
  events: number;
}

export class WebSocketIngress {
  private readonly wss: WebSocketServer;
  private readonly connections = new Map<string, { ws: WebSocket; info: ConnectedAgent }>();
  private heartbeat: NodeJS.Timeout | undefined;
  private readonly intake: BatchIntake;

  constructor(
    private readonly deps: {
      agents: AgentDirectory;
      store: RelayStore;
      router: Router;
      limits: IngressLimits;
      logger: Logger;
      /** Called after a batch with new events was committed (wakes the delivery engine). */
      onStored?: () => void;
      /** Told about connections, committed batches and backlog reports (agent tracking, metrics). */
      observer?: IngressObserver;
    },
  ) {
    this.intake = new BatchIntake({ store: deps.store, router: deps.router, limits: deps.limits, onStored: deps.onStored, observer: deps.observer });
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: deps.limits.maxFrameBytes,
      perMessageDeflate: false,
      clientTracking: false,
      handleProtocols: (offered) => {
        const v = negotiateVersion(offered);
        return v === undefined ? false : subprotocolFor(v);
      },
    });
  }

  attach(server: Server, path: string): void {
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head, path));
    this.heartbeat = setInterval(() => this.pingAll(), this.deps.limits.heartbeatMs);
    this.heartbeat.unref();
  }

  connected(): ConnectedAgent[] {
    return [...this.connections.values()].map((c) => ({ ...c.info }));
  }

  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    for (const { ws } of this.connections.values()) ws.close(CloseCode.goingAway, 'relay stopping');
    this.connections.clear();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, path: string): void {
    // Node takes its own error listener off an upgraded socket: a peer resetting it while we
    // refuse (a scanner, a health check, an agent stopping) would otherwise crash the relay.
    socket.on('error', () => socket.destroy());
    const remote = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`;
    const pathname = pathOf(req.url);
    if (pathname !== path) return refuse(socket, 404, `no WebSocket endpoint at ${pathname.slice(0, 200)}; agents connect to ${path}`);
    const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    if (negotiateVersion(offered) === undefined) {
      this.deps.logger.warn({ remote, offered }, 'agent refused: no common uplink protocol version');
      return refuse(socket, 426, `no common protocol version; this relay speaks ${SUPPORTED_UPLINK_VERSIONS.map(subprotocolFor).join(', ')}`);
    }
    const auth = this.deps.agents.authenticate(req.headers.authorization);
    if (!auth.ok) {
      // Log the claimed agent id only when the header looks like one of our tokens, so a
      // pasted secret without its prefix (or a Basic header) never reaches the log.
      const claimed = /^Bearer ([A-Za-z0-9_-]{1,64})\./.exec(req.headers.authorization ?? '')?.[1];
      this.deps.logger.warn({ remote, claimedAgent: claimed, reason: auth.reason }, 'agent refused: authentication failed');
      return refuse(socket, 401, `authentication failed: ${auth.reason}`);
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws, auth.agent, remote));
  }

  private onConnection(ws: WebSocket, agent: AgentCredential, remote: string): void {
    const log = this.deps.logger.child({ agent: agent.id, plant: agent.plant, remote });
    const previous = this.connections.get(agent.id);
    if (previous) {
      log.warn('agent reconnected while an older connection was open; closing the older one');
      previous.ws.close(CloseCode.goingAway, 'replaced by a newer connection');
    }
    const info: ConnectedAgent = { id: agent.id, plant: agent.plant, remote, connectedMs: Date.now(), lastFrameMs: undefined, batches: 0, events: 0 };
    const entry = { ws, info };
    this.connections.set(agent.id, entry);
    (ws as WebSocket & { isAlive?: boolean }).isAlive = true;
    ws.on('pong', () => ((ws as WebSocket & { isAlive?: boolean }).isAlive = true));
    const frames = new SerialQueue();
    ws.on('message', (data, isBinary) => {
      info.lastFrameMs = Date.now();
      const text = isBinary ? undefined : data.toString('utf8');
      void frames.run(async () => {
        // A frame queued behind one that ended the connection is not answered.
        if (ws.readyState !== ws.OPEN) return;
        if (text === undefined) return this.fail(ws, log, 'unexpected_frame', 'binary frames are not part of the protocol', CloseCode.protocolViolation);
        await this.onFrame(ws, agent, info, log, text);
      }).catch((e: unknown) => log.error({ err: describeError(e) }, 'handling a frame failed'));
    });
    ws.on('error', (err) => {
      const tooLarge = err instanceof RangeError || /max payload/i.test(err.message);
      log.warn({ err: describeError(err) }, tooLarge ? `frame over the ${this.deps.limits.maxFrameBytes}-byte limit; connection closed` : 'agent socket error');
    });
    ws.on('close', (code, reason) => {
      if (this.connections.get(agent.id) === entry) {
        this.connections.delete(agent.id);
        this.deps.observer?.disconnected(agent);
      }
      log.info({ code, reason: reason.toString() }, 'agent disconnected');
    });
    const welcome: WelcomeFrame = {
      t: 'welcome',
      protocol: Number(ws.protocol.slice('plantlink.v'.length)),
      agent: agent.id,
      plant: agent.plant,
      maxFrameBytes: this.deps.limits.maxFrameBytes,
      maxBatchEvents: this.deps.limits.maxBatchEvents,
      maxInFlight: this.deps.limits.maxInFlight,
      features: [STATUS_FEATURE, LEDGER_FEATURE],
    };
    ws.send(JSON.stringify(welcome));
    this.deps.observer?.connected(agent, remote);
    log.info('agent connected');
  }

  private async onFrame(ws: WebSocket, agent: AgentCredential, info: ConnectedAgent, log: Logger, text: string): Promise<void> {
    const result = await this.intake.handle(agent, text, log);
    if (result.kind === 'error') {
      const { code, reason } = result.frame;
      return this.fail(ws, log, code, reason, CLOSE_CODE_FOR[code]);
    }
    if (result.kind === 'status') return;
    if (result.kind === 'ledger') return ws.send(JSON.stringify(result.frame));
    info.batches++;
    info.events += result.events;
    ws.send(JSON.stringify(result.frame));
  }

  private fail(ws: WebSocket, log: Logger, code: ErrorFrame['code'], reason: string, closeCode: number): void {
    log.warn({ code, reason }, 'protocol violation; closing the connection');
    const frame: ErrorFrame = { t: 'error', code, reason };
    ws.send(JSON.stringify(frame));
    ws.close(closeCode, closeReason(reason));
  }

  private pingAll(): void {
    for (const { ws } of this.connections.values()) {
      const w = ws as WebSocket & { isAlive?: boolean };
      if (w.isAlive === false) {
        w.terminate();
        continue;
      }
      w.isAlive = false;
      w.ping();
    }
  }
}

function refuse(socket: Duplex, status: number, message: string): void {
  const reasons: Record<number, string> = { 401: 'Unauthorized', 404: 'Not Found', 426: 'Upgrade Required' };
  const body = `${message}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${reasons[status] ?? 'Error'}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

/**
 * The request's path, normalised as URL parsing does (absolute-form targets some proxies send,
 * dot segments); the raw path when it cannot be parsed (`//[`), since anyone can send one
 * before logging in and a throw here would take the relay down.
 */
function pathOf(target: string | undefined): string {
  try {
    return new URL(target ?? '/', 'http://relay').pathname;
  } catch {
    return (target ?? '/').split('?')[0]!;
  }
}
