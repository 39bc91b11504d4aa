/** Where the relay keeps its state: the embedded SQLite file (default) or a shared PostgreSQL database. */
import { readFileSync } from 'node:fs';
import { z } from 'zod';

export const SqliteStoreConfig = z
  .object({ kind: z.literal('sqlite').describe('Embedded SQLite file `<relay.dataDir>/inbox.sqlite`: one relay, no other service to run.') })
  .strict();

export const PostgresStoreConfig = z
  .object({
    kind: z.literal('postgres').describe('A PostgreSQL database shared by every relay replica (tested with PostgreSQL 15).'),
    url: z.string().min(1).optional().describe('Connection URL, e.g. postgres://plantlink:${PGPASSWORD}@db:5432/plantlink. Give this or `urlFile`.'),
    urlFile: z.string().min(1).optional().describe('File holding the connection URL (e.g. a mounted secret). Give this or `url`.'),
    poolSize: z.number().int().min(2).max(100).default(10).describe('Connections per replica.'),
    leaseMs: z
      .number()
      .int()
      .min(1000)
      .default(60_000)
      .describe(
        'How long a replica\'s claim on deliveries lasts without renewal; its worker renews the claim every third of this while the sink works. Deliveries a dead replica held are redelivered by another this long after its last renewal. Keep it far above the clock skew between replicas and any stall of a replica (GC, frozen VM).',
      ),
  })
  .strict()
  .superRefine((c, ctx) => {
    if ((c.url === undefined) === (c.urlFile === undefined)) ctx.addIssue({ code: 'custom', path: ['url'], message: 'give exactly one of url and urlFile' });
  });

export const StoreConfig = z
  .discriminatedUnion('kind', [SqliteStoreConfig, PostgresStoreConfig])
  .describe('Where the relay keeps events, deliveries and dead letters: `sqlite` for one relay, `postgres` for replicas sharing the work.');
export type StoreConfig = z.infer<typeof StoreConfig>;
export type PostgresStoreConfig = z.infer<typeof PostgresStoreConfig>;

/** The connection URL, read from `urlFile` when given (trailing newline trimmed). */
export function postgresUrl(config: PostgresStoreConfig): string {
  return config.url ?? readFileSync(config.urlFile!, 'utf8').trim();
}
