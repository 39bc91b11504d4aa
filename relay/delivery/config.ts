import { z } from 'zod';

export const DeliveryConfig = z
  .object({
    batchSize: z.number().int().min(1).max(1000).default(50).describe('Deliveries handed to a sink at once (at most one per subject).'),
    backoff: z
      .object({
        initialMs: z.number().int().min(1).default(1000).describe('First retry delay after a transient failure.'),
        maxMs: z.number().int().min(1).default(300_000).describe('Retry delay cap (exponential backoff with jitter).'),
      })
      .strict()
      .default({ initialMs: 1000, maxMs: 300_000 }),
    pollMs: z.number().int().min(10).default(1000).describe('Safety poll when nothing woke the worker.'),
  })
  .strict()
  .describe('How the relay hands stored events to sinks.');
export type DeliveryConfig = z.infer<typeof DeliveryConfig>;
