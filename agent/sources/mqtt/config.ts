/**
 * Configuration of the plant-floor MQTT source: the one source of truth for its options.
 * Types come from the schema; defaults live here and nowhere else.
 */
import { z } from 'zod';
import { Expression, RecordMapping } from '../../mapping/record-mapping.js';

/** An MQTT topic filter: `+` and `#` only as whole levels, `#` only last. */
export function topicFilterError(filter: string): string | undefined {
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]!;
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) return '`#` must be a whole level and the last one';
    if (level.includes('+') && level !== '+') return '`+` must be a whole level';
  }
  return undefined;
}

const TopicFilter = z
  .string()
  .min(1)
  .max(1024)
  .superRefine((filter, ctx) => {
    const error = topicFilterError(filter);
    if (error) ctx.addIssue({ code: 'custom', message: error });
  })
  .describe('An MQTT topic filter, e.g. `plant/line1/+/workorder` or `spBv1.0/Plant1/#`.');

export const MqttSourceTlsConfig = z
  .object({
    caFile: z.string().min(1).optional().describe('PEM file of the CA that issued the broker\'s certificate (mqtts://), for a plant broker with a private CA.'),
    rejectUnauthorized: z.boolean().default(true).describe('Verify the broker certificate. Turn off only to diagnose; the source logs a warning while it is off.'),
  })
  .strict();

export const MqttSourceConfig = z
  .object({
    kind: z.literal('mqtt').describe('Source kind.'),
    name: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'letters, digits, ".", "_" and "-", at most 64')
      .describe('Source name; goes into the event source and into every event id, so never rename a source in use.'),
    url: z
      .string()
      .regex(/^mqtts?:\/\/[^/\s]+\/?$/, 'mqtt://host[:port] or mqtts://host[:port]')
      .describe('The plant broker, `mqtt://host:1883` or `mqtts://host:8883`.'),
    clientId: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits, ".", "_" and "-", at most 64')
      .describe('MQTT client id. The broker keeps the persistent session (subscriptions and the messages queued while the agent is down) under it: keep it stable, and unique on the broker.'),
    protocolVersion: z.union([z.literal(4), z.literal(5)]).default(4).describe('MQTT 3.1.1 (4) or MQTT 5 (5).'),
    username: z.string().min(1).max(256).optional().describe('User name, if the broker asks for one.'),
    password: z.string().min(1).max(1024).optional().describe('Password. Secret: never logged. Use `${ENV_VAR}` to keep it out of the file.'),
    tls: MqttSourceTlsConfig.optional().describe('TLS trust settings for mqtts://.'),
    topics: z.array(TopicFilter).min(1).max(100).describe('Topic filters to subscribe to, all at QoS 1.'),
    format: z
      .enum(['json', 'sparkplug'])
      .default('json')
      .describe(
        '`json`: the payload is JSON; the mapping sees `{ topic, levels, payload }`. `sparkplug`: Sparkplug B (spBv1.0) protobuf; the mapping sees `{ topic, group, node, device, messageType, seq, timestamp, metrics, historical }` with metric names resolved from the BIRTH aliases.',
      ),
    when: Expression.optional().describe('A JSONata expression over the record: the message becomes an event only when it is `true` (e.g. `messageType = "NDATA" and $exists(metrics.WorkOrder)`). Omit to map every message.'),
    keepaliveSeconds: z.number().int().min(5).max(3600).default(30).describe('MQTT keep-alive.'),
    reconnectMs: z.number().int().min(100).max(300_000).default(5000).describe('Delay before reconnecting after the connection drops.'),
    sessionExpirySeconds: z
      .number()
      .int()
      .min(60)
      .max(4_294_967_295)
      .default(604_800)
      .describe('MQTT 5 only: how long the broker keeps the session (and queues messages) while the agent is away (default 7 days). MQTT 3.1.1 brokers keep it by their own setting.'),
    quarantineDir: z
      .string()
      .min(1)
      .optional()
      .describe('Where messages that cannot be decoded or mapped are written (JSON Lines). Default: `<agent.dataDir>/quarantine/<name>`.'),
    map: RecordMapping.describe('How a record (one message) becomes a canonical event.'),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.format === 'sparkplug') {
      c.topics.forEach((t, i) => {
        if (!t.startsWith('spBv1.0/')) ctx.addIssue({ code: 'custom', path: ['topics', i], message: 'with format sparkplug, topics must be in the `spBv1.0/` namespace' });
      });
    }
    if ((c.username === undefined) !== (c.password === undefined)) {
      ctx.addIssue({ code: 'custom', path: [c.username === undefined ? 'username' : 'password'], message: 'username and password go together' });
    }
    if (c.tls && !c.url.startsWith('mqtts://')) ctx.addIssue({ code: 'custom', path: ['tls'], message: 'tls needs an mqtts:// url' });
  });

export type MqttSourceConfig = z.infer<typeof MqttSourceConfig>;
export type MqttSourceConfigInput = z.input<typeof MqttSourceConfig>;
