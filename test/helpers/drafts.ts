import type { EventDraft } from '../../agent/sources/source.js';
import { subjectFor } from '../../protocols/events/envelope.js';
import { PRODUCTION_MILESTONE_V1, type MilestoneKind } from '../../protocols/events/production-milestone.v1.js';

/** A valid production-milestone draft for work order `wo`. */
export function milestoneDraft(wo: string, milestone: MilestoneKind, occurredAtMs: number, good?: number, plant = 'plant-a'): EventDraft {
  return {
    type: PRODUCTION_MILESTONE_V1,
    subject: subjectFor('work-order', wo),
    fact: { plant, source: 'test', key: wo, what: milestone, occurredAtMs, ...(good === undefined ? {} : { discriminator: good }) },
    data: {
      workOrder: wo,
      salesOrder: `SO-${wo}`,
      milestone,
      equipment: 'L1',
      occurredAt: new Date(occurredAtMs).toISOString(),
      ...(good === undefined ? {} : { goodQuantity: { value: good, unit: 'EA' } }),
    },
  };
}
