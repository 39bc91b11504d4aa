/**
 * WebSocket ingress: where agents connect. Owns the upgrade (auth, version negotiation),
 * frame validation and the ack.
 *
 * Per connection, frames are handled one at a time and synchronously (SQLite commits are
 * synchronous), so acks leave in batch order and an ack is only ever sent after the inbox
 * commit for its batch returned. Bad events are refused one by one (recorded with their
 * reason, listed in the ack); the rest of their batch is stored. A frame that is not a
 * batch at all ends the connection with a reason; the agent resends from its outbox.
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { MAX_EVENT_BYTES, sourceUri } from '../../protocols/events/envelope.js';
import { validateEvent } from '../../protocols/events/registry.js';
import { describeError } from '../../protocols/errors.js';
import type { Logger } from '../../protocols/log.js';
import {
  BatchFrame,
  CloseCode,
  negotiateVersion,
  subprotocolFor,
  SUPPORTED_UPLINK_VERSIONS,
  type AckFrame,
  type ErrorFrame,
  type Rejection,
  type WelcomeFrame,
} from '../../protocols/uplink/frames.js';
import type { Inbox, IncomingEvent, IngressRejection } from '../inbox/inbox.js';
import type { Router } from '../router/router.js';
import type { AgentCredential, AgentDirectory } from './agent-auth.js';

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

  constructor(
    private readonly deps: {
      agents: AgentDirectory;
      inbox: Inbox;
      router: Router;
      limits: IngressLimits;
      logger: Logger;
      /** Called after a batch with new events was committed (wakes the delivery engine). */
      onStored?: () => void;
    },
  ) {
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
    const remote = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`;
    const url = new URL(req.url ?? '/', 'http://relay');
    if (url.pathname !== path) return refuse(socket, 404, `no WebSocket endpoint at ${url.pathname}; agents connect to ${path}`);
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
    ws.on('message', (data, isBinary) => {
      info.lastFrameMs = Date.now();
      if (isBinary) return this.fail(ws, log, 'unexpected_frame', 'binary frames are not part of the protocol', CloseCode.protocolViolation);
      this.onFrame(ws, agent, info, log, data.toString('utf8'));
    });
    ws.on('error', (err) => {
      const tooLarge = err instanceof RangeError || /max payload/i.test(err.message);
      log.warn({ err: describeError(err) }, tooLarge ? `frame over the ${this.deps.limits.maxFrameBytes}-byte limit; connection closed` : 'agent socket error');
    });
    ws.on('close', (code, reason) => {
      if (this.connections.get(agent.id) === entry) this.connections.delete(agent.id);
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
    };
    ws.send(JSON.stringify(welcome));
    log.info('agent connected');
  }

  private onFrame(ws: WebSocket, agent: AgentCredential, info: ConnectedAgent, log: Logger, text: string): void {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      return this.fail(ws, log, 'malformed_frame', `frame is not JSON (${describeError(e)})`, CloseCode.invalidPayload);
    }
    const frame = BatchFrame.safeParse(json);
    if (!frame.success) {
      const issue = frame.error.issues[0];
      return this.fail(ws, log, 'unexpected_frame', `not a batch frame: ${issue?.path.join('.') || '(root)'}: ${issue?.message}`, CloseCode.protocolViolation);
    }
    const { batch, events } = frame.data;
    if (events.length > this.deps.limits.maxBatchEvents) {
      return this.fail(ws, log, 'batch_too_large', `${events.length} events in one batch; the limit is ${this.deps.limits.maxBatchEvents}`, CloseCode.protocolViolation);
    }
    const accepted: IncomingEvent[] = [];
    const rejections: IngressRejection[] = [];
    const rejected: Rejection[] = [];
    const sourcePrefix = `${sourceUri(agent.plant, '')}`;
    events.forEach((raw, index) => {
      const id = typeof raw === 'object' && raw !== null && typeof (raw as { id?: unknown }).id === 'string' ? (raw as { id: string }).id.slice(0, 128) : undefined;
      let body: string;
      try {
        body = JSON.stringify(raw);
      } catch (e) {
        // e.g. nesting deep enough to overflow the stack: refuse this event, keep the rest.
        body = '"<not serialisable>"';
        return refuse('invalid_envelope', `event cannot be serialised: ${describeError(e)}`);
      }
      function refuse(code: Rejection['code'], reason: string) {
        rejected.push({ index, ...(id ? { id } : {}), code, reason });
        rejections.push({ agent: agent.id, plant: agent.plant, id, code, reason, body: body.slice(0, MAX_EVENT_BYTES) });
      }
      const bytes = Buffer.byteLength(body);
      if (bytes > MAX_EVENT_BYTES) return refuse('event_too_large', `event is ${bytes} bytes; the limit is ${MAX_EVENT_BYTES}`);
      const check = validateEvent(raw);
      if (!check.ok) return refuse(check.code, check.reason);
      if (check.event.plant !== agent.plant) {
        return refuse('plant_mismatch', `agent ${agent.id} speaks for plant "${agent.plant}", not "${check.event.plant}"`);
      }
      if (!check.event.source.startsWith(sourcePrefix)) {
        return refuse('plant_mismatch', `agent ${agent.id} may only send events from sources under ${sourcePrefix}, not "${check.event.source}"`);
      }
      const sinks = this.deps.router.route(check.event);
      if (sinks.length === 0) log.warn({ id: check.event.id, type: check.event.type }, 'event matches no route; stored but delivered nowhere');
      accepted.push({ event: check.event, body, sinks });
    });
    let result;
    try {
      result = this.deps.inbox.store(agent.id, accepted, rejections);
    } catch (e) {
      // Not acknowledged: the agent keeps the batch and resends it after reconnecting.
      log.error({ err: describeError(e), batch }, 'could not store a batch; closing so the agent resends');
      return this.fail(ws, log, 'internal', 'relay could not store the batch', CloseCode.internal);
    }
    info.batches++;
    info.events += events.length;
    if (rejected.length > 0) log.warn({ batch, rejected: rejected.map((r) => ({ id: r.id, code: r.code, reason: r.reason })) }, 'events rejected at ingress');
    const ack: AckFrame = { t: 'ack', batch, stored: result.stored, duplicates: result.duplicates, rejected };
    ws.send(JSON.stringify(ack));
    if (result.stored > 0) this.deps.onStored?.();
  }

  private fail(ws: WebSocket, log: Logger, code: ErrorFrame['code'], reason: string, closeCode: number): void {
    log.warn({ code, reason }, 'protocol violation; closing the connection');
    const frame: ErrorFrame = { t: 'error', code, reason };
    ws.send(JSON.stringify(frame));
    ws.close(closeCode, reason.slice(0, 120));
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
