/**
 * Configuration of the MQTT ingress: either the relay's embedded broker (listeners) or an
 * external broker the relay consumes from (several relays may share one). The batch and
 * frame limits are the relay's `ingress` limits, the same as over WebSocket.
 */
import { z } from 'zod';

const host = z.string().default('0.0.0.0').describe('Address to listen on.');
/** Listeners that may be plain (no TLS) stay on loopback unless told otherwise. */
const plainHost = z
  .string()
  .default('127.0.0.1')
  .describe('Address to listen on. Default loopback; without TLS another address needs allowInsecure: true (agent tokens would cross the network in clear text).');
const allowInsecure = z.boolean().default(false).describe('Allow listening without TLS on an address other than loopback. Agent tokens then cross the network in clear text: test benches only.');
/** A listen address or URL hostname on this machine only. */
const isLoopback = (h: string): boolean => h === 'localhost' || h === '::1' || h === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(h);
const certFile = z.string().describe('Server certificate chain (PEM).');
const keyFile = z.string().describe('Server private key (PEM).');

export const MqttListenersConfig = z
  .object({
    tcp: z
      .object({ host: plainHost, port: z.number().int().min(0).max(65535).default(1883).describe('Port (0 = any free port).'), allowInsecure })
      .strict()
      .optional()
      .describe('Plain MQTT over TCP. Agent tokens cross the network in clear text: loopback or test benches only.'),
    tls: z
      .object({
        host,
        port: z.number().int().min(0).max(65535).default(8883).describe('Port (0 = any free port).'),
        certFile,
        keyFile,
        caFile: z.string().optional().describe('CA (PEM) for client certificates; when set, agents must present one.'),
      })
      .strict()
      .optional()
      .describe('MQTT over TLS (mqtts://).'),
    ws: z
      .object({
        host: plainHost,
        port: z.number().int().min(0).max(65535).default(8083).describe('Port (0 = any free port).'),
        path: z.string().startsWith('/').default('/mqtt').describe('HTTP path of the WebSocket endpoint.'),
        tls: z.object({ certFile, keyFile }).strict().optional().describe('Serve wss:// instead of ws://.'),
        allowInsecure,
      })
      .strict()
      .optional()
      .describe('MQTT over WebSocket (ws:// or wss://), for plants whose firewall passes only web traffic.'),
  })
  .strict()
  .refine((l) => Boolean(l.tcp ?? l.tls ?? l.ws), 'configure at least one of tcp, tls, ws')
  .superRefine((l, ctx) => {
    for (const [name, plain] of [['tcp', l.tcp], ['ws', l.ws && !l.ws.tls ? l.ws : undefined]] as const) {
      if (plain && !isLoopback(plain.host) && !plain.allowInsecure) {
        ctx.addIssue({ code: 'custom', path: [name, 'host'], message: `a plain ${name} listener on ${plain.host} takes agent tokens in clear text; listen on loopback, use TLS, or set allowInsecure: true on a test bench` });
      }
    }
  })
  .describe('The embedded broker (aedes; MQTT 3.1.1 only) and where it listens. Agents authenticate with username = agent id, password = token.');
export type MqttListenersConfig = z.infer<typeof MqttListenersConfig>;

export const ExternalBrokerConfig = z
  .object({
    url: z
      .string()
      .regex(/^(mqtts?|wss?):\/\/[^\s]+$/, 'must be an mqtt://, mqtts://, ws:// or wss:// URL')
      .describe('Broker URL, e.g. mqtts://broker.example.com:8883. No credentials in it: they go in username and password.'),
    username: z.string().min(1).describe('This relay\'s MQTT username; give each replica its own (see protocols/uplink/MQTT.md).'),
    password: z.string().min(1).describe('This relay\'s MQTT password. Secret: never logged.'),
    caFile: z.string().optional().describe('PEM file of the CA(s) that signed the broker certificate, when it is not publicly trusted.'),
    sharedGroup: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/, 'letters, digits, _ and - only')
      .default('plantlink-relay')
      .describe('MQTT 5 shared-subscription group: relays in the same group split the agents\' batches between them.'),
    clientId: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/, 'letters, digits, _ and - only')
      .optional()
      .describe('MQTT client id; stable across restarts so the broker resumes this relay\'s session. Default: plantlink-relay-<hostname>. Must differ between replicas.'),
    sessionExpirySeconds: z
      .number()
      .int()
      .min(0)
      .default(0)
      .describe(
        'How long the broker keeps this relay\'s session (its share of the subscription, and batches queued for it) while it is disconnected. 0 (default): none, so batches go only to the replicas that are up; what a replica had received but not acknowledged is resent by the agents after their ack timeout.',
      ),
    keepaliveSeconds: z.number().int().min(1).max(65_535).default(30).describe('MQTT keep-alive.'),
    reconnectMs: z.number().int().min(10).default(1000).describe('Delay between reconnect attempts to the broker.'),
    allowInsecure: z
      .boolean()
      .default(false)
      .describe('Allow mqtt:// or ws:// (no TLS) to a host other than loopback. The relay\'s password and every batch then cross the network in clear text: test benches only.'),
  })
  .strict()
  .superRefine((c, ctx) => {
    const url = new URL(c.url);
    if ((url.protocol === 'mqtt:' || url.protocol === 'ws:') && !isLoopback(url.hostname) && !c.allowInsecure) {
      ctx.addIssue({ code: 'custom', path: ['url'], message: `${url.protocol}// sends the relay's password in clear text; use mqtts:// or wss:// (or set allowInsecure: true on a test bench)` });
    }
    if (url.username !== '' || url.password !== '') {
      ctx.addIssue({ code: 'custom', path: ['url'], message: 'must not carry credentials; put them in username and password (never logged)' });
    }
  })
  .describe('An existing MQTT 5 broker (e.g. Mosquitto) the relay consumes agents\' batches from, with a shared subscription. The broker authenticates agents and its ACL binds each to its topics; the relay still checks every batch against its agent registry.');
export type ExternalBrokerConfig = z.infer<typeof ExternalBrokerConfig>;

export const MqttIngressConfig = z
  .object({
    listeners: MqttListenersConfig.optional(),
    external: ExternalBrokerConfig.optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (Boolean(c.listeners) === Boolean(c.external)) {
      ctx.addIssue({ code: 'custom', path: [], message: 'set exactly one of `listeners` (the embedded broker) or `external` (an existing broker)' });
    }
  })
  .describe('MQTT ingress, beside the WebSocket one: agents with `uplink.kind: mqtt` publish their batches here.');
export type MqttIngressConfig = z.infer<typeof MqttIngressConfig>;
