import { z } from 'zod';

export const RelayMetricsConfig = z
  .object({
    requireToken: z
      .boolean()
      .optional()
      .describe(
        'Require a bearer token from api.tokens (viewer or operator) for GET /metrics. Unset: required unless relay.listen.host is a loopback address, because the relay port usually faces the internet (agents connect to it) and the figures name plants, sinks and volumes. /healthz and /readyz never need one.',
      ),
  })
  .strict()
  .describe('Prometheus metrics at GET /metrics on the relay port (see relay/metrics/README.md).');
export type RelayMetricsConfig = z.infer<typeof RelayMetricsConfig>;

/** Whether /metrics needs a token, given the config and the address the relay listens on. */
export function metricsNeedToken(config: RelayMetricsConfig, listenHost: string): boolean {
  if (config.requireToken !== undefined) return config.requireToken;
  return !(listenHost === 'localhost' || listenHost === '::1' || /^127\.\d+\.\d+\.\d+$/.test(listenHost));
}
