/**
 * The canonical envelope: CloudEvents 1.0, JSON format.
 *
 * Extension attributes (lower-case alphanumerics, as CloudEvents requires):
 * - `plant`: plant that produced the event; the relay checks it against the agent's credentials.
 * - `plantseq`: agent-monotonic sequence number, assigned when the event enters the outbox;
 *   never reused, also across restarts. Tells arrival order from the same agent.
 * - `correlationid`: follows the event through agent, relay and sinks, into logs.
 *
 * Dedupe is on (`source`, `id`) as CloudEvents prescribes; `id` is deterministic
 * (see event-id.ts) and `source` names the plant-side source, not the agent process,
 * so a reinstalled agent re-reading the same fact produces the same pair.
 */
import { z } from 'zod';

export const MAX_EVENT_BYTES = 64 * 1024;

const extensionName = /^[a-z0-9]{1,20}$/;

export const CloudEventV1 = z
  .object({
    specversion: z.literal('1.0'),
    id: z.string().min(1).max(128),
    source: z.string().min(1).max(512),
    type: z.string().min(1).max(256),
    subject: z.string().min(1).max(256),
    time: z.iso.datetime({ offset: true }),
    datacontenttype: z.literal('application/json').optional(),
    dataschema: z.string().max(512).optional(),
    plant: z.string().min(1).max(64),
    plantseq: z.number().int().positive(),
    correlationid: z.string().min(1).max(128),
    data: z.unknown(),
  })
  .catchall(z.unknown())
  .superRefine((event, ctx) => {
    for (const key of Object.keys(event)) {
      if (!extensionName.test(key)) {
        ctx.addIssue({ code: 'custom', path: [key], message: `attribute name "${key}" is not a CloudEvents name (a-z, 0-9, at most 20)` });
      }
    }
  });
export type CloudEventV1 = z.infer<typeof CloudEventV1>;

/** Source URI-reference for events read by an agent source. */
export function sourceUri(plant: string, sourceName: string): string {
  return `/plantlink/plants/${encodeURIComponent(plant)}/sources/${encodeURIComponent(sourceName)}`;
}

/** Subject: the business key events are ordered by (work order or shipment). */
export function subjectFor(kind: 'work-order' | 'shipment', key: string): string {
  return `${kind}/${key}`;
}
