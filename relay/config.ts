/**
 * The relay's configuration: one zod schema that is the documentation, the validation and
 * the types. Unknown keys are errors (`.strict()`).
 */
import { z } from 'zod';
import { MAX_EVENT_BYTES } from '../protocols/events/envelope.js';
import { DEFAULT_MAX_BATCH_EVENTS, DEFAULT_MAX_FRAME_BYTES } from '../protocols/uplink/frames.js';
import { ApiConfig } from './api/operator-api.js';
import { CONSOLE_DEFAULTS, ConsoleConfig } from './console/config.js';
import { DeliveryConfig } from './delivery/config.js';
import { RelayMetricsConfig } from './metrics/config.js';
import { AgentCredential } from './ingress/agent-auth.js';
import { MqttIngressConfig } from './ingress/mqtt/config.js';
import { isTopicLevel } from '../protocols/uplink/mqtt-topics.js';
import { resolveLanes } from './router/lanes.js';
import { RouteConfig } from './router/router.js';
import { StoreConfig } from './store/config.js';
import { HubSpotSinkConfig } from './sinks/hubspot/config.js';
import { NetSuiteSinkConfig } from './sinks/netsuite/config.js';
import { SalesforceSinkConfig } from './sinks/salesforce/config.js';
import { WebhookSinkConfig } from './sinks/webhook/config.js';

export const SinkConfig = z.discriminatedUnion('kind', [SalesforceSinkConfig, HubSpotSinkConfig, NetSuiteSinkConfig, WebhookSinkConfig]).describe('A target system.');
export type SinkConfig = z.infer<typeof SinkConfig>;

export const RelayConfig = z
  .object({
    relay: z
      .object({
        dataDir: z.string().min(1).default('./data').describe('Folder for the inbox database (the `sqlite` store).'),
        store: StoreConfig.default({ kind: 'sqlite' }),
        retentionHours: z
          .number()
          .min(1)
          .default(168)
          .describe(
            'How long delivered events are kept, which is also the dedupe window: an agent resending an event after this gets it delivered again (harmless: sinks upsert). Dead letters and pending deliveries are kept until handled. A work order\'s applied version (which keeps an older event from overwriting a newer one) is forgotten with its events: once no delivery of it was recorded for this long and nothing of it is pending or dead.',
          ),
        listen: z
          .object({
            host: z.string().default('0.0.0.0').describe('Address to listen on.'),
            port: z.number().int().min(0).max(65535).default(8443).describe('Port for agents and the HTTP API (0 = any free port).'),
            tls: z
              .object({
                certFile: z.string().describe('Server certificate chain (PEM).'),
                keyFile: z.string().describe('Server private key (PEM).'),
                caFile: z.string().optional().describe('CA (PEM) for client certificates; when set, agents must present one.'),
              })
              .strict()
              .optional()
              .describe('Serve wss:// and https://. Strongly recommended outside a test bench.'),
          })
          .strict()
          .default({ host: '0.0.0.0', port: 8443 }),
      })
      .strict(),
    ingress: z
      .object({
        path: z.string().startsWith('/').default('/v1/uplink').describe('WebSocket path agents connect to.'),
        maxFrameBytes: z.number().int().min(2 * MAX_EVENT_BYTES).max(64 * 1024 * 1024).default(DEFAULT_MAX_FRAME_BYTES).describe('Largest frame accepted; bigger frames close the connection (1009).'),
        maxBatchEvents: z.number().int().min(1).max(10_000).default(DEFAULT_MAX_BATCH_EVENTS).describe('Most events per batch frame.'),
        maxInFlight: z.number().int().min(1).max(64).default(8).describe('Unacknowledged batches an agent may have in flight.'),
        heartbeatMs: z.number().int().min(100).default(15_000).describe('Ping interval; an agent that misses a pong is disconnected.'),
      })
      .strict()
      .default({ path: '/v1/uplink', maxFrameBytes: DEFAULT_MAX_FRAME_BYTES, maxBatchEvents: DEFAULT_MAX_BATCH_EVENTS, maxInFlight: 8, heartbeatMs: 15_000 }),
    mqtt: MqttIngressConfig.optional(),
    agents: z.array(AgentCredential).describe('Agents allowed to connect, each bound to one plant.'),
    sinks: z.array(SinkConfig).min(1).describe('Target systems.'),
    routes: z.array(RouteConfig).min(1).describe('Which events go to which sinks.'),
    api: ApiConfig.default({ tokens: [] }),
    console: ConsoleConfig.default(CONSOLE_DEFAULTS),
    delivery: DeliveryConfig.default({ batchSize: 50, backoff: { initialMs: 1000, maxMs: 300_000 }, pollMs: 1000 }),
    metrics: RelayMetricsConfig.default({}),
    log: z
      .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info').describe('Log level.') })
      .strict()
      .default({ level: 'info' }),
  })
  .strict()
  .superRefine((config, ctx) => {
    const sinkNames = new Set<string>();
    config.sinks.forEach((s, i) => {
      if (sinkNames.has(s.name)) ctx.addIssue({ code: 'custom', path: ['sinks', i, 'name'], message: `duplicate sink name "${s.name}"` });
      if (s.name.includes(':')) ctx.addIssue({ code: 'custom', path: ['sinks', i, 'name'], message: '":" is reserved for route lanes (<sink>:<route>)' });
      sinkNames.add(s.name);
    });
    // Route targets name existing sinks; a target's own mappings fit its sink's kind.
    for (const issue of resolveLanes(config.sinks, config.routes, SinkConfig).issues) ctx.addIssue({ code: 'custom', ...issue });
    const agentIds = new Set<string>();
    config.agents.forEach((a, i) => {
      if (agentIds.has(a.id)) ctx.addIssue({ code: 'custom', path: ['agents', i, 'id'], message: `duplicate agent id "${a.id}"` });
      // Over MQTT the plant is a topic level (plantlink/v1/{plant}/{agentId}/events).
      if (config.mqtt && !isTopicLevel(a.plant)) ctx.addIssue({ code: 'custom', path: ['agents', i, 'plant'], message: 'must not contain "/", "+" or "#" when `mqtt` is configured (it becomes a topic level)' });
      agentIds.add(a.id);
    });
  });
export type RelayConfig = z.infer<typeof RelayConfig>;
