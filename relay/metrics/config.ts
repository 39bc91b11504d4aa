import { z } from 'zod';

export const RelayMetricsConfig = z
  .object({
    requireToken: z
      .boolean()
      .optional()
      .describe(
        'Require a bearer token from api.tokens (viewer or operator) for GET /metrics. Unset: required whenever api.tokens is not empty, and otherwise unless relay.listen.host is a loopback address (open only with no API tokens on loopback), because the relay port usually faces the internet (agents connect to it) and the figures name plants, sinks and volumes. /healthz and /readyz never need one.',
      ),
  })
  .strict()
  .describe('Prometheus metrics at GET /metrics on the relay port (see relay/metrics/README.md).');
export type RelayMetricsConfig = z.infer<typeof RelayMetricsConfig>;

/**
 * Whether /metrics needs a token: as configured, else whenever there are API tokens to give
 * one (loopback is no boundary when a proxy or tunnel forwards to it), else off loopback.
 */
export function metricsNeedToken(config: RelayMetricsConfig, listenHost: string, apiTokens: number): boolean {
  if (config.requireToken !== undefined) return config.requireToken;
  if (apiTokens > 0) return true;
  return !(listenHost === 'localhost' || listenHost === '::1' || /^127\.\d+\.\d+\.\d+$/.test(listenHost));
}
