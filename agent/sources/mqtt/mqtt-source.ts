/**
 * The plant-floor MQTT source: subscribes to the plant's own broker, turns each message
 * into a record (JSON or Sparkplug B), maps it with the shared mapping language and commits
 * the event to the outbox.
 *
 * Invariants:
 * - A message is acknowledged (PUBACK) only after its outcome is durable: the event (and the
 *   Sparkplug alias map a BIRTH brings) committed to the outbox, or the message written to the
 *   quarantine file. mqtt.js sends the PUBACK when its `handleMessage` hook calls back, and
 *   hands over the next message only then, so messages are handled one at a time, in order.
 *   (`customHandleAcks` would do the same but mqtt.js 5.16 honours it only with MQTT 5.)
 * - Persistent session (clean = false, a stable clientId, and on MQTT 5 a session expiry):
 *   what is published while the agent is down, or before it acknowledged, is queued by the
 *   broker and delivered again on reconnect.
 * - Outbox full (`paused`): the message is not acknowledged; the source drops the connection
 *   (the broker keeps the session and the unacknowledged message) and connects again on
 *   `onResume`, when the broker redelivers. Holding the connection open instead would stall
 *   mqtt.js's keep-alive behind the held message and reconnect anyway.
 * - Event ids come from the mapped fact, so a message delivered again after a crash between
 *   the commit and the PUBACK is a duplicate the outbox ignores.
 * - A message that cannot be decoded, filtered or mapped is quarantined with its reason and
 *   acknowledged: one bad message never blocks the topic or loops.
 */
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import jsonata from 'jsonata';
import { connect, type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import { describeError } from '../../../protocols/errors.js';
import type { Logger } from '../../../protocols/log.js';
import { compileMapping, MappingError, type CompiledMapping } from '../../mapping/record-mapping.js';
import type { EventDraft, Source, SourceContext, SourceHealth, StateWrite } from '../source.js';
import { MqttSourceConfig, type MqttSourceConfigInput } from './config.js';
import { MessageQuarantine, type QuarantinedMessage } from './quarantine.js';
import { decodeSparkplug, nodeKey, parseSparkplugTopic, SparkplugDecodeError, type AliasMap } from './sparkplug.js';

/** What became of one message, emitted as `message` once it is acknowledged (or held). */
export type MessageOutcome =
  | { outcome: 'committed'; topic: string; appended: number; duplicates: number }
  | { outcome: 'skipped'; topic: string; reason: string }
  | { outcome: 'quarantined'; topic: string; reason: string }
  | { outcome: 'paused'; topic: string; reason: string };

export interface MqttSourceEvents {
  message: [MessageOutcome];
}

/** A message that does not become an event, with why. */
class Unusable extends Error {}

const ALIAS_STATE_PREFIX = 'sparkplug-aliases/';

interface Prepared {
  drafts: EventDraft[];
  state: StateWrite[];
  /** Alias maps to adopt in memory once `state` is committed. */
  aliases?: [string, AliasMap];
  skipped?: string;
  /** Set when the message is quarantined but still carries state to commit (a BIRTH that does not map). */
  quarantine?: string;
}

export class MqttSource extends EventEmitter<MqttSourceEvents> implements Source {
  readonly kind = 'mqtt';
  readonly name: string;
  private readonly config: MqttSourceConfig;
  private readonly mapping: CompiledMapping;
  private readonly when: jsonata.Expression | undefined;
  private readonly quarantine: MessageQuarantine;
  private ctx: SourceContext | undefined;
  private log: Logger | undefined;
  private client: MqttClient | undefined;
  private stopped = true;
  private paused: { reason: string } | undefined;
  private connected = false;
  private lastError: string | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private lastActivityMs: number | undefined;
  private unsubscribeResume: (() => void) | undefined;
  /** Sparkplug alias maps by node, loaded from source state on first use. */
  private readonly aliases = new Map<string, AliasMap | undefined>();
  private quarantined = 0;
  private lastQuarantine: QuarantinedMessage | undefined;

  constructor(
    config: MqttSourceConfigInput,
    private readonly logger?: Logger,
  ) {
    super();
    this.config = MqttSourceConfig.parse(config);
    this.name = this.config.name;
    this.mapping = compileMapping(this.config.map);
    this.when = this.config.when === undefined ? undefined : jsonata(this.config.when);
    this.quarantine = new MessageQuarantine(this.config.quarantineDir ?? resolve('data', 'quarantine', this.name));
  }

  async start(ctx: SourceContext): Promise<void> {
    if (!this.stopped) throw new Error(`source ${this.name} is already started`);
    this.stopped = false;
    this.ctx = ctx;
    this.log = (this.logger ?? ctx.logger).child({ source: this.name, kind: this.kind });
    if (this.config.tls && !this.config.tls.rejectUnauthorized) this.log.warn('tls.rejectUnauthorized is off: the broker certificate is not verified');
    this.unsubscribeResume = ctx.onResume(() => {
      if (!this.paused || this.stopped) return;
      this.paused = undefined;
      this.log?.info('outbox resumed; connecting to the plant broker again');
      this.connectClient();
    });
    this.connectClient();
    this.log.info({ url: this.config.url, topics: this.config.topics, format: this.config.format }, 'MQTT source started');
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.unsubscribeResume?.();
    this.unsubscribeResume = undefined;
    const client = this.client;
    this.client = undefined;
    this.paused = undefined;
    this.connected = false;
    // Not forced, so the PUBACKs already written reach the broker before DISCONNECT. A message
    // still being handled is not acknowledged (its client is gone); the broker delivers it again.
    await client?.endAsync(false);
  }

  health(): SourceHealth {
    if (this.stopped) return { state: 'stopped' };
    const activity = this.lastActivityMs === undefined ? {} : { lastActivityMs: this.lastActivityMs };
    if (this.paused) return { state: 'paused', detail: this.paused.reason, ...activity };
    if (!this.connected) {
      return this.lastError ? { state: 'disconnected', detail: this.lastError, ...activity } : { state: 'starting', ...activity };
    }
    const q = this.lastQuarantine;
    return { state: 'connected', ...(q ? { detail: `${this.quarantined} message(s) quarantined; latest: ${q.topic}: ${q.reason}` } : {}), ...activity };
  }

  // ---- connection --------------------------------------------------------------------------

  private clientOptions(): IClientOptions {
    const c = this.config;
    return {
      clientId: c.clientId,
      clean: false,
      protocolVersion: c.protocolVersion,
      keepalive: c.keepaliveSeconds,
      reconnectPeriod: c.reconnectMs,
      connectTimeout: 30_000,
      manualConnect: true,
      ...(c.username !== undefined ? { username: c.username, password: c.password } : {}),
      ...(c.tls?.caFile ? { ca: readFileSync(c.tls.caFile) } : {}),
      ...(c.tls ? { rejectUnauthorized: c.tls.rejectUnauthorized } : {}),
      ...(c.protocolVersion === 5 ? { properties: { sessionExpiryInterval: c.sessionExpirySeconds } } : {}),
    };
  }

  private connectClient(): void {
    if (this.stopped) return;
    let client: MqttClient;
    try {
      // Reads the CA file, synchronously: a file missing or unreadable (a share mounted late)
      // throws here, from a timer or the outbox's resume event. Reported and retried.
      client = connect(this.config.url, this.clientOptions());
    } catch (e) {
      return this.retryConnect(e);
    }
    this.client = client;
    // mqtt.js sends the PUBACK when this calls back, and only then hands over the next message.
    client.handleMessage = (packet, callback) => {
      void this.onPublish(client, packet).then(
        (outcome) => {
          if (!outcome) return;
          // Acknowledged first, reported after: a `message` event means the broker has its PUBACK.
          if (outcome.outcome !== 'paused' && client === this.client) callback();
          this.report(outcome);
        },
        (e) => {
          // Only a failed outbox write or quarantine write gets here: no PUBACK; reconnect so the broker redelivers.
          this.log?.error({ err: describeError(e), topic: packet.topic }, 'handling an MQTT message failed; it stays unacknowledged and is delivered again');
          if (client === this.client) client.end(true, () => client === this.client && !this.stopped && !this.paused && client.reconnect());
        },
      );
    };
    client.on('connect', (connack) => {
      if (client !== this.client) return;
      this.connected = true;
      this.lastError = undefined;
      this.lastActivityMs = Date.now();
      this.log?.info({ sessionPresent: connack.sessionPresent }, 'connected to the plant broker');
      // Subscribed again on every connection: harmless with a session present, needed without one.
      client.subscribe(this.config.topics, { qos: 1 }, (err, granted) => {
        if (err) {
          this.log?.error({ err: describeError(err) }, 'subscribing failed');
          return;
        }
        const refused = (granted ?? []).filter((g) => g.qos === 128);
        if (refused.length > 0) this.log?.error({ topics: refused.map((g) => g.topic) }, 'the broker refused subscriptions');
      });
    });
    client.on('close', () => {
      if (client !== this.client) return;
      if (this.connected) this.log?.warn('connection to the plant broker closed; reconnecting');
      this.connected = false;
    });
    client.on('error', (e) => {
      if (client !== this.client) return;
      const message = describeError(e);
      if (message !== this.lastError) this.log?.warn({ err: message }, 'plant broker connection error');
      this.lastError = message;
    });
    client.on('packetreceive', () => {
      if (client === this.client) this.lastActivityMs = Date.now();
    });
    try {
      // Builds the TLS context, synchronously (manualConnect): whatever it throws is retried too.
      client.connect();
    } catch (e) {
      client.end(true);
      this.retryConnect(e);
    }
  }

  /** Connecting failed before any connection existed: report it in the health, try again in `reconnectMs`. */
  private retryConnect(e: unknown): void {
    const message = `cannot connect to the plant broker: ${describeError(e)}`;
    if (message !== this.lastError) this.log?.error({ err: describeError(e) }, 'cannot connect to the plant broker; will retry');
    this.lastError = message;
    this.client = undefined;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connectClient(), this.config.reconnectMs);
  }

  // ---- one message -------------------------------------------------------------------------

  /** Handles one message: what became of it (all but `paused` may be acknowledged), or undefined once stopped. */
  private async onPublish(client: MqttClient, packet: IPublishPacket): Promise<MessageOutcome | undefined> {
    const ctx = this.ctx;
    if (!ctx || this.stopped || client !== this.client) return undefined;
    const topic = packet.topic;
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    let prepared: Prepared;
    try {
      prepared = await this.prepare(topic, payload, ctx);
    } catch (e) {
      if (!isUnusable(e)) throw e;
      return this.quarantineMessage(topic, payload, e.message);
    }
    const quarantined = prepared.quarantine === undefined ? undefined : await this.quarantineMessage(topic, payload, prepared.quarantine);
    if (prepared.drafts.length === 0 && prepared.state.length === 0) return { outcome: 'skipped', topic, reason: prepared.skipped ?? 'no event' };
    const outcome = ctx.commit(prepared.drafts, prepared.state);
    if (outcome.status === 'paused') {
      if (client === this.client && !this.stopped) {
        this.paused = { reason: outcome.reason };
        this.connected = false;
        this.log?.warn({ topic, reason: outcome.reason }, 'outbox paused; the message stays unacknowledged at the broker until the outbox resumes');
        this.client = undefined;
        client.end(true);
      }
      return { outcome: 'paused', topic, reason: outcome.reason };
    }
    if (prepared.aliases) this.aliases.set(prepared.aliases[0], prepared.aliases[1]);
    if (quarantined) return quarantined;
    return prepared.drafts.length === 0
      ? { outcome: 'skipped', topic, reason: prepared.skipped ?? 'no event' }
      : { outcome: 'committed', topic, appended: outcome.appended, duplicates: outcome.duplicates };
  }

  private async quarantineMessage(topic: string, payload: Buffer, reason: string): Promise<MessageOutcome> {
    const entry = await this.quarantine.add(topic, payload, reason);
    this.quarantined++;
    this.lastQuarantine = entry;
    this.log?.warn({ topic, reason, dir: this.quarantine.dir }, 'MQTT message quarantined: it does not become an event');
    return { outcome: 'quarantined', topic, reason };
  }

  private report(outcome: MessageOutcome): void {
    try {
      this.emit('message', outcome);
    } catch (e) {
      this.log?.error({ err: describeError(e) }, 'a message listener threw; ignored');
    }
  }

  /** The drafts (and state) one message yields; throws Unusable / MappingError / SparkplugDecodeError. */
  private async prepare(topic: string, payload: Buffer, ctx: SourceContext): Promise<Prepared> {
    let record: unknown;
    const state: StateWrite[] = [];
    let aliases: [string, AliasMap] | undefined;
    if (this.config.format === 'json') {
      let parsed: unknown;
      try {
        parsed = JSON.parse(payload.toString('utf8'));
      } catch (e) {
        throw new Unusable(`payload is not JSON: ${(e as Error).message}`);
      }
      record = { topic, levels: topic.split('/'), payload: parsed };
    } else {
      const t = parseSparkplugTopic(topic);
      if (!t) return { drafts: [], state: [], skipped: 'Sparkplug STATE message' };
      const key = nodeKey(t);
      if (!this.aliases.has(key)) this.aliases.set(key, ctx.loadState<AliasMap>(ALIAS_STATE_PREFIX + key));
      const decoded = decodeSparkplug(topic, t, payload, this.aliases.get(key));
      record = decoded.record;
      if (decoded.aliases) {
        aliases = [key, decoded.aliases];
        state.push({ key: ALIAS_STATE_PREFIX + key, value: decoded.aliases });
      }
    }
    try {
      return await this.mapRecord(record, state, aliases, ctx);
    } catch (e) {
      // A BIRTH that does not map still brings the node's aliases: keep them.
      if (state.length > 0 && isUnusable(e)) return { drafts: [], state, ...(aliases ? { aliases } : {}), quarantine: e.message };
      throw e;
    }
  }

  private async mapRecord(record: unknown, state: StateWrite[], aliases: [string, AliasMap] | undefined, ctx: SourceContext): Promise<Prepared> {
    if (this.when) {
      let pass: unknown;
      try {
        pass = await this.when.evaluate(record);
      } catch (e) {
        throw new Unusable(`when: expression failed: ${(e as Error).message}`);
      }
      if (pass !== true) return { drafts: [], state, ...(aliases ? { aliases } : {}), skipped: '`when` is not true' };
    }
    const draft = await this.mapping.toDraft(record, { plant: ctx.plant, sourceName: this.name });
    return { drafts: [draft], state, ...(aliases ? { aliases } : {}) };
  }
}

function isUnusable(e: unknown): e is Error {
  return e instanceof Unusable || e instanceof MappingError || e instanceof SparkplugDecodeError;
}
