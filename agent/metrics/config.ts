import { z } from 'zod';

export const AgentMetricsConfig = z
  .object({
    listen: z
      .object({
        host: z.string().default('127.0.0.1').describe('Address to listen on. Keep loopback unless the scraper runs on another machine: the listener has no authentication.'),
        port: z.number().int().min(0).max(65535).describe('Port (0 = any free port), e.g. 9464.'),
      })
      .strict()
      .optional()
      .describe('Serve Prometheus /metrics, /healthz and /readyz over HTTP here. Unset (the default): no listener.'),
  })
  .strict()
  .describe('The agent\'s own metrics listener (see agent/metrics/README.md).');
export type AgentMetricsConfig = z.infer<typeof AgentMetricsConfig>;
