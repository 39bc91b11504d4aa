/**
 * The agent's configuration: one zod schema that is the documentation, the validation and
 * the types. Unknown keys are errors (`.strict()`), so a typo never silently does nothing.
 */
import { z } from 'zod';
import { AgentMetricsConfig } from './metrics/config.js';
import { FileSourceConfig } from './sources/file/config.js';
import { MqttSourceConfig } from './sources/mqtt/config.js';
import { OpcUaSourceConfig } from './sources/opcua/config.js';
import { SoapSourceConfig } from './sources/soap/config.js';
import { WebSocketUplinkConfig } from './uplink/config.js';
import { MqttUplinkConfig } from './uplink/mqtt-config.js';
import { isTopicLevel } from '../protocols/uplink/mqtt-topics.js';

export const SourceConfig = z.discriminatedUnion('kind', [OpcUaSourceConfig, SoapSourceConfig, FileSourceConfig, MqttSourceConfig]).describe('A plant-side source.');
export type SourceConfig = z.infer<typeof SourceConfig>;

export const AgentConfig = z
  .object({
    agent: z
      .object({
        id: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/).describe('This agent\'s id, as registered at the relay.'),
        plant: z.string().min(1).max(64).describe('The plant this agent speaks for; must match its relay registration.'),
        dataDir: z.string().min(1).default('./data').describe('Folder for the outbox database and source state. Keep it across upgrades.'),
      })
      .strict(),
    outbox: z
      .object({
        maxBytes: z.number().int().min(1024).default(1024 * 1024 * 1024).describe('Pending event bytes before the on-full policy applies (default 1 GiB).'),
        maxEvents: z.number().int().min(1).default(5_000_000).describe('Pending events before the on-full policy applies.'),
        onFull: z
          .enum(['pause', 'drop_newest'])
          .default('pause')
          .describe('pause: sources stop taking data (OPC UA sources re-read current values on resume) and an alarm is logged; drop_newest: new events are dropped, counted and logged.'),
        ledgerRetentionDays: z
          .number()
          .int()
          .min(1)
          .max(3650)
          .default(35)
          .describe(
            'Days the outbox keeps its ledger (one small row per event committed or dropped, by event time) for reconciliation; kept after the relay acknowledged the events, and sent to relays that accept it.',
          ),
        ledgerMaxRows: z
          .number()
          .int()
          .min(10_000)
          .default(2_000_000)
          .describe(
            'Ledger rows the outbox keeps at most, besides the retention in days, so its disk use stays bounded; the oldest beyond it are pruned, and any of them not yet sent to the relay are never sent (a warning says how many).',
          ),
      })
      .strict()
      .default({ maxBytes: 1024 * 1024 * 1024, maxEvents: 5_000_000, onFull: 'pause', ledgerRetentionDays: 35, ledgerMaxRows: 2_000_000 }),
    uplink: z.discriminatedUnion('kind', [WebSocketUplinkConfig, MqttUplinkConfig]).describe('How events leave the plant.'),
    sources: z.array(SourceConfig).min(1).describe('Plant-side sources.'),
    metrics: AgentMetricsConfig.default({}),
    log: z
      .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info').describe('Log level.') })
      .strict()
      .default({ level: 'info' }),
  })
  .strict()
  .superRefine((config, ctx) => {
    const seen = new Set<string>();
    config.sources.forEach((s, i) => {
      if (seen.has(s.name)) ctx.addIssue({ code: 'custom', path: ['sources', i, 'name'], message: `duplicate source name "${s.name}"` });
      seen.add(s.name);
    });
    // Over MQTT the plant is a topic level (plantlink/v1/{plant}/{agentId}/events).
    if (config.uplink.kind === 'mqtt' && !isTopicLevel(config.agent.plant)) {
      ctx.addIssue({ code: 'custom', path: ['agent', 'plant'], message: 'must not contain "/", "+" or "#" with an MQTT uplink (it becomes a topic level)' });
    }
  });
export type AgentConfig = z.infer<typeof AgentConfig>;
