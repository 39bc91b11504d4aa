/**
 * The relay as an MQTT 5 client of an existing broker (e.g. Mosquitto): consumes every
 * agent's batches through the shared subscription `$share/<group>/plantlink/v1/+/+/events`,
 * so several relay replicas split the load, and publishes each ack on the agent's acks topic.
 *
 * Invariants
 * - The broker authenticates agents and its ACL keeps each to its own topics (see MQTT.md);
 *   the relay still refuses a batch whose topic names an agent or plant it does not have
 *   registered, and checks every event's plant and source (mqtt-batches.ts, batch-intake.ts).
 * - A message is handed to the batch handler in mqtt.js's 'message' event; mqtt.js PUBACKs
 *   it without waiting for the store's commit, so that PUBACK means nothing to the agent:
 *   the ack frame, published after the commit, does.
 * - Nothing here must survive a crash: a batch the relay received but did not ack is resent
 *   by its agent (on reconnect or after the agent's ack timeout) and deduped. That is why the
 *   relay's session need not be persistent, and by default is not: a replica that is down then
 *   holds no share of the subscription, so its share of the batches goes to the replicas up.
 * - The retained welcomes (the relay's limits) are published again on every connection, so a
 *   broker restarted without persistence has them again as soon as one relay is back.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { connect, type MqttClient } from 'mqtt';
import { describeError } from '../../../protocols/errors.js';
import type { Logger } from '../../../protocols/log.js';
import { MQTT_HEADROOM_BYTES, noDelay, urlForLogs } from '../../../protocols/uplink/mqtt-client.js';
import { sharedEventsFilter } from '../../../protocols/uplink/mqtt-topics.js';
import type { ExternalBrokerConfig } from './config.js';
import type { MqttBatchHandler, Reply } from './mqtt-batches.js';

export type BrokerState = 'connecting' | 'connected' | 'disconnected' | 'unauthorized' | 'stopped';

export interface ExternalBrokerStatus {
  state: BrokerState;
  detail?: string;
  url: string;
  clientId: string;
  /** Batches this replica acknowledged since it started. */
  batches: number;
  events: number;
}

export class ExternalBrokerConsumer {
  private client: MqttClient | undefined;
  private readonly clientId: string;
  private health: { state: BrokerState; detail?: string } = { state: 'connecting' };
  private batches = 0;
  private events = 0;

  constructor(
    private readonly deps: {
      config: ExternalBrokerConfig;
      handler: MqttBatchHandler;
      /** The relay's frame limit (`ingress.maxFrameBytes`): the broker may not send this relay a larger batch. */
      maxFrameBytes: number;
      logger: Logger;
    },
  ) {
    this.clientId = deps.config.clientId ?? `plantlink-relay-${hostname().replace(/[^A-Za-z0-9_-]/g, '-')}`.slice(0, 64);
  }

  /** Connects, and keeps reconnecting; never throws for a broker that is away. */
  start(): void {
    const c = this.deps.config;
    const persistent = c.sessionExpirySeconds > 0;
    const client = connect(c.url, {
      protocolVersion: 5,
      clientId: this.clientId,
      username: c.username,
      password: c.password,
      clean: !persistent,
      // Without it the broker would hand us whatever an agent published, up to MQTT's 256 MB.
      properties: { sessionExpiryInterval: c.sessionExpirySeconds, maximumPacketSize: this.deps.maxFrameBytes + MQTT_HEADROOM_BYTES },
      keepalive: c.keepaliveSeconds,
      reconnectPeriod: c.reconnectMs,
      // mqtt.js gives up after a refused CONNACK by default; a relay keeps trying (and saying why),
      // so fixing the broker's password file or ACL needs no relay restart.
      reconnectOnConnackError: true,
      // We subscribe on every connection whose session the broker did not keep (below).
      resubscribe: false,
      ...(c.caFile ? { ca: readFileSync(c.caFile) } : {}),
    });
    this.client = client;
    // A new socket on every reconnect: Nagle off on each (see noDelay).
    noDelay(client);
    client.on('connect', (connack) => {
      noDelay(client);
      this.onConnected(client, connack.sessionPresent);
    });
    client.on('message', (topic, payload) => void this.onMessage(client, topic, payload));
    client.on('error', (err) => {
      const code = (err as { code?: unknown }).code;
      const refused = code === 4 || code === 5 || code === 134 || code === 135;
      this.health = { state: refused ? 'unauthorized' : 'disconnected', detail: describeError(err) };
      this.deps.logger[refused ? 'error' : 'warn']({ err: describeError(err), broker: urlForLogs(c.url) }, refused ? 'broker refused the relay\'s credentials' : 'MQTT broker connection error');
    });
    client.on('offline', () => {
      if (this.health.state === 'connected') this.health = { state: 'disconnected', detail: 'broker connection lost; reconnecting' };
      this.deps.logger.warn({ broker: urlForLogs(c.url) }, 'MQTT broker connection lost; reconnecting');
    });
  }

  status(): ExternalBrokerStatus {
    return { ...this.health, url: urlForLogs(this.deps.config.url), clientId: this.clientId, batches: this.batches, events: this.events };
  }

  async close(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    this.health = { state: 'stopped' };
    if (!client) return;
    // Forced: acks still in flight to the broker are not worth waiting for; their agents resend.
    await new Promise<void>((resolve) => client.end(true, {}, () => resolve()));
  }

  private onConnected(client: MqttClient, sessionPresent: boolean): void {
    const filter = sharedEventsFilter(this.deps.config.sharedGroup);
    const welcome = () => {
      for (const w of this.deps.handler.welcomes()) this.publish(client, w, true);
      this.health = { state: 'connected' };
      this.deps.logger.info({ broker: urlForLogs(this.deps.config.url), clientId: this.clientId, filter }, 'consuming agent batches from the MQTT broker');
    };
    if (sessionPresent) return welcome();
    client.subscribe(filter, { qos: 1 }, (err, granted) => {
      const code = granted?.[0]?.qos;
      if (err || code === undefined || code >= 128) {
        const detail = `broker refused the subscription to ${filter} (${err ? describeError(err) : `reason code ${code ?? 'none'}`}); check its ACL for user ${this.deps.config.username}`;
        this.health = { state: 'unauthorized', detail };
        this.deps.logger.error({ broker: urlForLogs(this.deps.config.url) }, detail);
        return;
      }
      // Welcomes after the subscription: an agent that sees one may publish at once.
      welcome();
    });
  }

  private async onMessage(client: MqttClient, topic: string, payload: Buffer): Promise<void> {
    try {
      const { reply, ackedEvents } = await this.deps.handler.onMessage(topic, payload);
      if (ackedEvents !== undefined) {
        this.batches++;
        this.events += ackedEvents;
      }
      if (reply) this.publish(client, reply, false);
    } catch (e) {
      // Never let one message stop the consumer; its agent resends after the ack timeout.
      this.deps.logger.error({ err: describeError(e), topic }, 'handling an MQTT batch failed');
    }
  }

  private publish(client: MqttClient, reply: Reply, retain: boolean): void {
    client.publish(reply.topic, reply.payload, { qos: 1, retain }, (err) => {
      if (err) this.deps.logger.warn({ err: describeError(err), topic: reply.topic }, 'could not publish to an agent; it resends after its ack timeout');
    });
  }
}
