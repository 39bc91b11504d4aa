/**
 * The relay's embedded MQTT broker (aedes), for a single relay: MQTT over TCP, TLS and
 * WebSocket, the relay consuming agents' batches in-process.
 *
 * Invariants
 * - A client authenticates with username = agent id, password = that agent's token (checked
 *   against the relay's token hashes), and client id = agent id, so no agent can take over
 *   another's persistent session (and with it, its acks subscription).
 * - An agent may publish only to its own events topic (not retained) and subscribe only to
 *   its own acks topic, both named by its registered plant and id. A refused publish ends the
 *   connection (MQTT 3.1.1 has no negative PUBACK); a refused subscription gets SUBACK 0x80.
 * - A batch is handed to the intake in aedes's delivery of the publish (which completes when
 *   the intake has resolved); the ack is published after the store's commit resolved. aedes PUBACKs a QoS 1 publish
 *   before delivering it: that PUBACK means nothing to the agent, the ack frame does.
 * - Broker state (sessions, retained welcomes) is in memory and dies with the relay. The
 *   welcomes are published again at start; agents resubscribe on every connection and resend
 *   whatever was unacknowledged.
 *
 * - aedes 1.2 has no packet size limit below MQTT's 256 MB, so every connection goes through
 *   packet-size-guard.ts: a packet announcing more than 64 KiB before authentication, or more
 *   than the frame limit plus 64 KiB after, ends the connection before its body is read.
 *
 * Known limits (aedes 1.2): MQTT 3.1.1 only (MQTT 5 clients are refused); `$share/...`
 * subscriptions are acknowledged but receive nothing (agents cannot make any here anyway).
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createTcpServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer } from 'node:tls';
import { Aedes, type AedesPublishPacket, type AuthenticateError, type Client, type PublishPacket } from 'aedes';
import { createWebSocketStream, WebSocketServer } from 'ws';
import { describeError } from '../../../protocols/errors.js';
import type { Logger } from '../../../protocols/log.js';
import { MQTT_HEADROOM_BYTES } from '../../../protocols/uplink/mqtt-client.js';
import { acksTopic, EVENTS_FILTER, eventsTopic } from '../../../protocols/uplink/mqtt-topics.js';
import type { AgentCredential, AgentDirectory } from '../agent-auth.js';
import type { IngressObserver } from '../observer.js';
import type { ConnectedAgent } from '../ws-ingress.js';
import type { MqttListenersConfig } from './config.js';
import type { MqttBatchHandler, Reply } from './mqtt-batches.js';
import { guardPacketSize, UNAUTHENTICATED_MAX_PACKET_BYTES } from './packet-size-guard.js';
import { listen } from '../../../protocols/listen.js';

/** CONNACK return codes of MQTT 3.1.1. */
const IDENTIFIER_REJECTED = 2;
const BAD_USERNAME_OR_PASSWORD = 4;

export interface BrokerPorts {
  tcp?: number;
  tls?: number;
  ws?: number;
}

interface Session {
  agent: AgentCredential;
  info: ConnectedAgent;
}

export class EmbeddedBroker {
  private readonly sessions = new WeakMap<Client, Session>();
  private readonly servers: { kind: keyof BrokerPorts; server: NetServer | HttpServer }[] = [];
  private wss: WebSocketServer | undefined;
  private broker: Aedes | undefined;

  constructor(
    private readonly deps: {
      config: MqttListenersConfig;
      agents: AgentDirectory;
      handler: MqttBatchHandler;
      /** The relay's frame limit (`ingress.maxFrameBytes`); a WebSocket message carries one frame plus MQTT's own header. */
      maxFrameBytes: number;
      observer?: IngressObserver | undefined;
      logger: Logger;
    },
  ) {}

  async start(): Promise<void> {
    const broker = await Aedes.createBroker({
      id: 'plantlink-relay',
      authenticate: (client, username, password, done) => this.authenticate(client, username, password, done),
      authorizePublish: (client, packet, done) => this.authorizePublish(client, packet, done),
      authorizeSubscribe: (client, sub, done) => {
        const session = this.sessions.get(client);
        if (session && sub.topic === acksTopic(session.agent.plant, session.agent.id)) return done(null, sub);
        this.deps.logger.warn({ agent: session?.agent.id, topic: sub.topic }, 'subscription refused: an agent may only subscribe to its own acks topic');
        done(null, null); // SUBACK 0x80; the connection stays
      },
    });
    this.broker = broker;
    broker.on('client', (client) => {
      const session = this.sessions.get(client);
      if (!session) return;
      this.deps.observer?.connected(session.agent, session.info.remote);
      this.deps.logger.info({ agent: session.agent.id, plant: session.agent.plant, remote: session.info.remote }, 'agent connected (MQTT)');
    });
    broker.on('clientDisconnect', (client) => {
      const session = this.sessions.get(client);
      if (!session) return;
      this.deps.observer?.disconnected(session.agent);
      this.deps.logger.info({ agent: session.agent.id, remote: session.info.remote }, 'agent disconnected (MQTT)');
    });
    // aedes reports persistence failures here; unheard, they would crash the relay.
    // (aedes emits it, aedes.d.ts does not declare it.)
    (broker as unknown as NodeJS.EventEmitter).on('error', (err: unknown) => this.deps.logger.error({ err: describeError(err) }, 'MQTT broker error'));
    broker.on('clientError', (client, err) => this.deps.logger.warn({ agent: this.sessions.get(client)?.agent.id, err: describeError(err) }, 'MQTT client error; connection closed'));
    await new Promise<void>((resolve) => broker.subscribe(EVENTS_FILTER, (packet, done) => void this.deliver(packet, done), () => resolve()));
    for (const welcome of this.deps.handler.welcomes()) await this.publish(welcome, true);
    await this.listen(broker);
  }

  /** The ports actually listened on (useful with port 0). */
  get ports(): BrokerPorts {
    const ports: BrokerPorts = {};
    for (const { kind, server } of this.servers) ports[kind] = (server.address() as AddressInfo).port;
    return ports;
  }

  connected(): ConnectedAgent[] {
    const broker = this.broker as (Aedes & { clients: Record<string, Client> }) | undefined;
    if (!broker) return [];
    return Object.values(broker.clients)
      .map((c) => this.sessions.get(c)?.info)
      .filter((i): i is ConnectedAgent => i !== undefined)
      .map((i) => ({ ...i }));
  }

  async close(): Promise<void> {
    // Stop accepting, then close every client (aedes), then wait for the listeners to be done.
    const closed = this.servers.map(({ server }) => new Promise<void>((resolve) => server.close(() => resolve())));
    for (const ws of this.wss?.clients ?? []) ws.terminate();
    const broker = this.broker;
    if (broker) await new Promise<void>((resolve) => broker.close(() => resolve()));
    for (const { server } of this.servers) if ('closeAllConnections' in server) server.closeAllConnections();
    await Promise.all(closed);
    this.wss?.close();
    this.servers.length = 0;
  }

  private authenticate(client: Client, username: string | undefined, password: Buffer | undefined, done: (error: AuthenticateError | null, success: boolean | null) => void): void {
    const remote = remoteOf(client);
    const refuse = (code: number, reason: string) => {
      // The username is an agent id, never a secret; log it only when it looks like one.
      const claimed = username && /^[A-Za-z0-9_-]{1,64}$/.test(username) ? username : undefined;
      this.deps.logger.warn({ remote, claimedAgent: claimed, reason }, 'agent refused: authentication failed (MQTT)');
      done(Object.assign(new Error(reason), { returnCode: code }) as AuthenticateError, false);
    };
    if (!username || !password) return refuse(BAD_USERNAME_OR_PASSWORD, 'username (the agent id) and password (its token) are required');
    const auth = this.deps.agents.authenticateToken(password.toString('utf8'));
    if (!auth.ok) return refuse(BAD_USERNAME_OR_PASSWORD, auth.reason);
    if (auth.agent.id !== username) return refuse(BAD_USERNAME_OR_PASSWORD, 'the username must be the agent id the token was issued to');
    if (client.id !== username) return refuse(IDENTIFIER_REJECTED, 'the client id must be the agent id');
    const info: ConnectedAgent = { id: auth.agent.id, plant: auth.agent.plant, remote, connectedMs: Date.now(), lastFrameMs: undefined, batches: 0, events: 0 };
    this.sessions.set(client, { agent: auth.agent, info });
    done(null, true);
  }

  private authorizePublish(client: Client | null, packet: PublishPacket, done: (error?: Error | null) => void): void {
    if (!client) return done(null); // the relay's own acks and welcomes
    const session = this.sessions.get(client);
    const own = session ? eventsTopic(session.agent.plant, session.agent.id) : undefined;
    if (session && packet.topic === own && !packet.retain) {
      session.info.lastFrameMs = Date.now();
      return done(null);
    }
    const reason = `agent ${session?.agent.id ?? '?'} may only publish (not retained) to ${own ?? 'its own events topic'}, not ${packet.topic}`;
    this.deps.logger.warn({ agent: session?.agent.id, topic: packet.topic, retain: packet.retain }, 'publish refused; closing the connection');
    done(new Error(reason));
  }

  /** aedes's in-process delivery of one agent publish: store, then publish the answer. */
  private async deliver(packet: AedesPublishPacket, done: () => void): Promise<void> {
    try {
      const { reply, ackedEvents } = await this.deps.handler.onMessage(packet.topic, Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload));
      // aedes stamps the publisher's client id on the packet (untyped in its d.ts).
      const clientId = (packet as AedesPublishPacket & { clientId?: string }).clientId;
      const session = clientId ? this.sessionById(clientId) : undefined;
      if (session && ackedEvents !== undefined) {
        session.info.batches++;
        session.info.events += ackedEvents;
      }
      if (reply) void this.publish(reply, false);
    } catch (e) {
      // Never let one message take the broker down; the agent resends after its ack timeout.
      this.deps.logger.error({ err: describeError(e), topic: packet.topic }, 'handling an MQTT batch failed');
    }
    done();
  }

  private sessionById(clientId: string): Session | undefined {
    const client = (this.broker as (Aedes & { clients: Record<string, Client> }) | undefined)?.clients[clientId];
    return client ? this.sessions.get(client) : undefined;
  }

  private publish(reply: Reply, retain: boolean): Promise<void> {
    const broker = this.broker!;
    const packet: PublishPacket = { cmd: 'publish', topic: reply.topic, payload: Buffer.from(reply.payload), qos: 1, retain, dup: false };
    return new Promise((resolve) =>
      broker.publish(packet, (err) => {
        if (err) this.deps.logger.error({ err: describeError(err), topic: reply.topic }, 'could not publish to an agent; it resends after its ack timeout');
        resolve();
      }),
    );
  }

  private async listen(broker: Aedes): Promise<void> {
    const { tcp, tls, ws } = this.deps.config;
    const handle = (conn: Socket) => {
      // aedes leaves Nagle's algorithm on: a small ack written behind another would wait for
      // the agent's delayed ACK (~40 ms per batch round trip). The ws library turns it off itself.
      conn.setNoDelay(true);
      broker.handle(conn);
      this.guard(conn);
    };
    if (tcp) await this.serve('tcp', createTcpServer(handle), tcp.host, tcp.port);
    if (tls) {
      const ca = tls.caFile ? readFileSync(tls.caFile) : undefined;
      const server = createTlsServer({ cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile), ...(ca ? { ca, requestCert: true, rejectUnauthorized: true } : {}) }, handle);
      server.on('tlsClientError', (err) => this.deps.logger.debug({ err: describeError(err) }, 'TLS handshake with an MQTT client failed'));
      await this.serve('tls', server, tls.host, tls.port);
    }
    if (ws) {
      const refuse = (_req: IncomingMessage, res: ServerResponse) => res.writeHead(426, { 'Content-Type': 'text/plain' }).end('MQTT over WebSocket only\n');
      const server = ws.tls ? createHttpsServer({ cert: readFileSync(ws.tls.certFile), key: readFileSync(ws.tls.keyFile) }, refuse) : createHttpServer(refuse);
      this.wss = new WebSocketServer({
        server,
        path: ws.path,
        // One MQTT packet per WebSocket message: the frame plus MQTT's own header.
        maxPayload: this.deps.maxFrameBytes + 64 * 1024,
        perMessageDeflate: false,
        handleProtocols: (offered) => (offered.has('mqtt') ? 'mqtt' : offered.has('mqttv3.1') ? 'mqttv3.1' : false),
      });
      // ws re-emits its HTTP server's errors here; unheard, a bind failure would crash the relay instead of failing start().
      this.wss.on('error', (err) => this.deps.logger.warn({ err: describeError(err) }, 'MQTT WebSocket listener error'));
      this.wss.on('connection', (socket, req) => {
        const stream = createWebSocketStream(socket);
        stream.on('error', (err) => this.deps.logger.debug({ err: describeError(err) }, 'MQTT WebSocket stream error'));
        broker.handle(stream, req);
        // createWebSocketStream joins messages into one byte stream: maxPayload alone bounds nothing.
        this.guard(stream);
      });
      await this.serve('ws', server, ws.host, ws.port);
    }
  }

  /** Ends a connection whose next packet announces more than it may send (see packet-size-guard.ts). */
  private guard(conn: Duplex): void {
    guardPacketSize(
      conn,
      () => {
        // aedes hangs its Client on the stream; it is in `sessions` once authenticated.
        const client = (conn as Duplex & { client?: Client }).client;
        return client && this.sessions.has(client) ? this.deps.maxFrameBytes + MQTT_HEADROOM_BYTES : UNAUTHENTICATED_MAX_PACKET_BYTES;
      },
      (err) => {
        const client = (conn as Duplex & { client?: Client }).client;
        this.deps.logger.warn({ agent: client ? this.sessions.get(client)?.agent.id : undefined, announced: err.announced, limit: err.limit }, 'MQTT packet too large; connection closed');
      },
    );
  }

  private serve(kind: keyof BrokerPorts, server: NetServer | HttpServer, host: string, port: number): Promise<void> {
    this.servers.push({ kind, server });
    return listen(server, port, host, this.deps.logger, `mqtt ${kind}`).then(() => {
      this.deps.logger.info({ listener: kind, host, port: (server.address() as AddressInfo).port }, 'MQTT listener up');
    });
  }
}

function remoteOf(client: Client): string {
  const socket = (client.req?.socket ?? client.conn) as Partial<Socket>;
  return `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
}
