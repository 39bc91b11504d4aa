/**
 * Every event type the platform accepts, by its versioned CloudEvents `type`.
 * A type not listed here is rejected at the relay with reason `unknown_type`.
 */
import type { z } from 'zod';
import { CloudEventV1 } from './envelope.js';
import { PRODUCTION_MILESTONE_V1, ProductionMilestoneV1 } from './production-milestone.v1.js';
import { SHIPMENT_V1, ShipmentV1 } from './shipment.v1.js';

export const EVENT_TYPES: Readonly<Record<string, z.ZodType>> = {
  [PRODUCTION_MILESTONE_V1]: ProductionMilestoneV1,
  [SHIPMENT_V1]: ShipmentV1,
};

export type ValidationResult =
  | { ok: true; event: CloudEventV1 }
  | { ok: false; code: 'invalid_envelope' | 'unknown_type' | 'invalid_data'; reason: string };

function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`)
    .join('; ');
}

/** Validates only the data of an event of `type` (for producers that built the envelope themselves); never throws. */
export function validateData(type: string, data: unknown): { ok: true } | { ok: false; code: 'unknown_type' | 'invalid_data'; reason: string } {
  const schema = EVENT_TYPES[type];
  if (!schema) return { ok: false, code: 'unknown_type', reason: `unknown event type "${type}" (known: ${Object.keys(EVENT_TYPES).join(', ')})` };
  const data2 = schema.safeParse(data);
  return data2.success ? { ok: true } : { ok: false, code: 'invalid_data', reason: `data: ${describeIssues(data2.error)}` };
}

/** Validates envelope and data of one event; never throws. */
export function validateEvent(raw: unknown): ValidationResult {
  const envelope = CloudEventV1.safeParse(raw);
  if (!envelope.success) return { ok: false, code: 'invalid_envelope', reason: describeIssues(envelope.error) };
  const schema = EVENT_TYPES[envelope.data.type];
  if (!schema) {
    return { ok: false, code: 'unknown_type', reason: `unknown event type "${envelope.data.type}" (known: ${Object.keys(EVENT_TYPES).join(', ')})` };
  }
  const data = schema.safeParse(envelope.data.data);
  if (!data.success) return { ok: false, code: 'invalid_data', reason: `data: ${describeIssues(data.error)}` };
  return { ok: true, event: { ...envelope.data, data: data.data } };
}

export { CloudEventV1 };
export { PRODUCTION_MILESTONE_V1, ProductionMilestoneV1, SHIPMENT_V1, ShipmentV1 };
