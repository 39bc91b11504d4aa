import { z } from 'zod';

export const TlsClientConfig = z
  .object({
    caFile: z.string().optional().describe('PEM file of the CA(s) that signed the relay certificate, when it is not publicly trusted.'),
    certFile: z.string().optional().describe('Client certificate (PEM) for mutual TLS, if the relay requires it.'),
    keyFile: z.string().optional().describe('Private key (PEM) of the client certificate.'),
    rejectUnauthorized: z.boolean().default(true).describe('Verify the relay certificate. Only turn off on a test bench.'),
  })
  .strict()
  .describe('TLS settings for wss:// relays.');

export const WebSocketUplinkConfig = z
  .object({
    kind: z.literal('websocket').describe('Uplink transport.'),
    url: z
      .string()
      .regex(/^wss?:\/\/[^\s]+$/, 'must be a ws:// or wss:// URL')
      .describe('Relay ingress URL, e.g. wss://relay.example.com/v1/uplink. The agent only ever connects out.'),
    token: z.string().min(16).describe('This agent\'s token, issued by the relay operator (`plantlink relay add-agent`). Secret: never logged.'),
    tls: TlsClientConfig.optional(),
    maxInFlight: z.number().int().min(1).max(64).default(4).describe('Batches sent but not yet acknowledged.'),
    maxBatchEvents: z.number().int().min(1).max(10_000).default(500).describe('Events per batch frame (the relay may lower it).'),
    reconnect: z
      .object({
        initialDelayMs: z.number().int().min(10).default(500).describe('First reconnect delay.'),
        maxDelayMs: z.number().int().min(100).default(30_000).describe('Reconnect delay cap (jittered exponential backoff).'),
      })
      .strict()
      .default({ initialDelayMs: 500, maxDelayMs: 30_000 }),
    heartbeatMs: z.number().int().min(100).default(15_000).describe('Ping interval; a relay silent for two intervals is treated as gone.'),
    statusIntervalMs: z
      .number()
      .int()
      .min(100)
      .default(5000)
      .describe('How often the agent tells the relay its outbox backlog (pending events, oldest pending age), when the relay accepts it.'),
    connectTimeoutMs: z.number().int().min(100).default(10_000).describe('Handshake timeout.'),
    allowInsecure: z
      .boolean()
      .default(false)
      .describe('Allow ws:// (no TLS) to a host other than loopback. The token then crosses the network in clear text: test benches only.'),
  })
  .strict()
  .superRefine((config, ctx) => {
    const url = new URL(config.url);
    const loopback = url.hostname === 'localhost' || url.hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(url.hostname);
    if (url.protocol === 'ws:' && !loopback && !config.allowInsecure) {
      ctx.addIssue({ code: 'custom', path: ['url'], message: 'ws:// sends the agent token in clear text; use wss:// (or set allowInsecure: true on a test bench)' });
    }
  })
  .describe('Outbound WebSocket uplink to the relay.');
export type WebSocketUplinkConfig = z.infer<typeof WebSocketUplinkConfig>;
