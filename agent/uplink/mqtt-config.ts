/**
 * Configuration of the MQTT uplink. The agent's id is its MQTT username and client id, its
 * token the password; the topics are derived from the agent's id and plant (see
 * protocols/uplink/mqtt-topics.ts), so none of them is configured here.
 */
import { z } from 'zod';
import { TlsClientConfig } from './config.js';

const isLoopback = (hostname: string) => hostname === 'localhost' || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname);

export const MqttUplinkConfig = z
  .object({
    kind: z.literal('mqtt').describe('Uplink transport.'),
    url: z
      .string()
      .regex(/^(mqtts?|wss?):\/\/[^\s]+$/, 'must be an mqtt://, mqtts://, ws:// or wss:// URL')
      .describe(
        'Broker URL: the relay\'s embedded broker (e.g. mqtts://relay.example.com:8883, or wss://relay.example.com:8884/mqtt through a web proxy) or an external broker the relay also uses. The agent only ever connects out.',
      ),
    token: z.string().min(16).describe('This agent\'s token, issued by the relay operator (`plantlink relay add-agent`); sent as the MQTT password. Secret: never logged.'),
    protocolVersion: z
      .union([z.literal(4), z.literal(5)])
      .default(4)
      .describe('MQTT protocol: 4 = MQTT 3.1.1 (the only one the relay\'s embedded broker speaks), 5 = MQTT 5 (external brokers such as Mosquitto).'),
    tls: TlsClientConfig.optional().describe('TLS settings for mqtts:// and wss:// brokers (a custom CA, client certificates).'),
    maxInFlight: z.number().int().min(1).max(64).default(4).describe('Batches sent but not yet acknowledged by the relay (the relay may lower it).'),
    maxBatchEvents: z.number().int().min(1).max(10_000).default(500).describe('Events per batch message (the relay may lower it).'),
    ackTimeoutMs: z
      .number()
      .int()
      .min(100)
      .default(30_000)
      .describe(
        'How long a batch may wait for the relay\'s ack before the agent sends everything unacknowledged again (the broker took it, but the relay lost it or its ack). Doubles while nothing is acknowledged, up to 8 times this. The relay dedupes resends.',
      ),
    keepaliveSeconds: z.number().int().min(1).max(65_535).default(30).describe('MQTT keep-alive; a broker silent for 1.5 times this is treated as gone.'),
    sessionExpirySeconds: z
      .number()
      .int()
      .min(1)
      .default(86_400)
      .describe('MQTT 5 only: how long the broker keeps this agent\'s session (its acks subscription and queued acks) while it is disconnected.'),
    reconnect: z
      .object({
        initialDelayMs: z.number().int().min(10).default(500).describe('First reconnect delay.'),
        maxDelayMs: z.number().int().min(100).default(30_000).describe('Reconnect delay cap (jittered exponential backoff).'),
      })
      .strict()
      .default({ initialDelayMs: 500, maxDelayMs: 30_000 })
      .describe('Reconnecting to the broker after a lost or refused connection.'),
    statusIntervalMs: z
      .number()
      .int()
      .min(100)
      .default(5000)
      .describe('How often the agent tells the relay its outbox backlog (pending events, oldest pending age), when the relay accepts it.'),
    connectTimeoutMs: z.number().int().min(100).default(10_000).describe('Connect (CONNACK) timeout.'),
    allowInsecure: z
      .boolean()
      .default(false)
      .describe('Allow mqtt:// or ws:// (no TLS) to a host other than loopback. The token then crosses the network in clear text: test benches only.'),
  })
  .strict()
  .superRefine((config, ctx) => {
    const url = new URL(config.url);
    if ((url.protocol === 'mqtt:' || url.protocol === 'ws:') && !isLoopback(url.hostname) && !config.allowInsecure) {
      ctx.addIssue({ code: 'custom', path: ['url'], message: `${url.protocol}// sends the agent token in clear text; use mqtts:// or wss:// (or set allowInsecure: true on a test bench)` });
    }
    if (url.username !== '' || url.password !== '') {
      ctx.addIssue({ code: 'custom', path: ['url'], message: 'must not carry credentials: the agent id is the username and `token` the password' });
    }
  })
  .describe('Outbound MQTT uplink, through the relay\'s embedded broker or an external one (QoS 1, persistent session).');
export type MqttUplinkConfig = z.infer<typeof MqttUplinkConfig>;
