/** Valid canonical events for the Salesforce sink tests. */
import type { CloudEventV1 } from '../../../../protocols/events/envelope.js';
import { sourceUri, subjectFor } from '../../../../protocols/events/envelope.js';
import { deriveEventId } from '../../../../protocols/events/event-id.js';
import { validateEvent } from '../../../../protocols/events/registry.js';
import { PRODUCTION_MILESTONE_V1, type MilestoneKind } from '../../../../protocols/events/production-milestone.v1.js';
import { SHIPMENT_V1 } from '../../../../protocols/events/shipment.v1.js';

const BASE_MS = Date.UTC(2024, 4, 1, 8, 0, 0);
let plantseq = 0;

function envelope(type: string, subject: string, key: string, what: string, occurredAtMs: number, data: unknown): CloudEventV1 {
  const seq = ++plantseq;
  const raw = {
    specversion: '1.0',
    id: deriveEventId({ plant: 'P1', source: 'line-opcua', key, what, occurredAtMs, discriminator: seq }),
    source: sourceUri('P1', 'line-opcua'),
    type,
    subject,
    time: new Date(occurredAtMs).toISOString(),
    plant: 'P1',
    plantseq: seq,
    correlationid: `corr-${seq}`,
    data,
  };
  const result = validateEvent(raw);
  if (!result.ok) throw new Error(`fixture is not a valid event: ${result.reason}`);
  return result.event;
}

/** A milestone of `workOrder`; `step` orders milestones in time (seconds after a fixed base). */
export function milestoneEvent(
  workOrder: string,
  milestone: MilestoneKind,
  step: number,
  extra: { salesOrder?: string; goodQuantity?: number } = {},
): CloudEventV1 {
  const occurredAtMs = BASE_MS + step * 1000;
  return envelope(PRODUCTION_MILESTONE_V1, subjectFor('work-order', workOrder), workOrder, milestone, occurredAtMs, {
    workOrder,
    salesOrder: extra.salesOrder ?? 'SO-100',
    product: 'PUMP-7',
    milestone,
    goodQuantity: { value: extra.goodQuantity ?? step * 10, unit: 'EA' },
    plannedQuantity: { value: 500, unit: 'EA' },
    equipment: 'line-1',
    occurredAt: new Date(occurredAtMs).toISOString(),
  });
}

export function shipmentEvent(shipment: string, status: 'packed' | 'shipped' | 'delivered' | 'exception', step: number): CloudEventV1 {
  const occurredAtMs = BASE_MS + step * 1000;
  return envelope(SHIPMENT_V1, subjectFor('shipment', shipment), shipment, status, occurredAtMs, {
    shipment,
    salesOrder: 'SO-100',
    status,
    carrier: 'DHL',
    trackingNumber: `TRK-${shipment}`,
    lines: [{ lineNumber: 1, product: 'PUMP-7', quantity: { value: 5, unit: 'EA' } }],
    occurredAt: new Date(occurredAtMs).toISOString(),
  });
}
