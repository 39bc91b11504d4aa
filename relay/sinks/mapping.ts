/**
 * Field maps shared by sinks: `{ TargetField: 'dotted.path.into.the.event' }`.
 *
 * A path starts at a CloudEvents attribute (`id`, `time`, `subject`, `plant`,
 * `data`, any extension) and walks object keys or array indexes:
 * `data.goodQuantity.value`, `data.lines.0.product`. Paths are checked when the
 * config loads, so a typo fails at start, not per event. A path that is missing
 * in an event, or holds null, yields no value and the target field is left out of
 * the write (so an optional attribute never blanks a CRM field).
 *
 * Only own properties are walked: a path can never reach `__proto__` or inherited
 * members. A richer mapping language (constants, formats, lookups) comes later.
 */
import { z } from 'zod';
import type { CloudEventV1 } from '../../protocols/events/envelope.js';

const PATH = /^[a-z0-9]{1,20}(\.(?:[A-Za-z_$][A-Za-z0-9_$-]*|\d+))*$/;

export const FieldPath = z
  .string()
  .max(256)
  .regex(PATH, {
    message:
      'must be a dotted path into the event starting at a CloudEvents attribute, e.g. "id", "time", "data.workOrder" or "data.goodQuantity.value"',
  })
  .describe('Dotted path into the CloudEvent, e.g. "id", "subject", "data.workOrder", "data.goodQuantity.value".');
export type FieldPath = z.infer<typeof FieldPath>;

export const FieldMap = z
  .record(z.string().min(1).max(128), FieldPath)
  .describe('Target field name -> path into the event. A path missing in an event leaves the field out.');
export type FieldMap = z.infer<typeof FieldMap>;

/** The value at `path`, or undefined when any step is missing or null. */
export function resolvePath(event: CloudEventV1, path: string): unknown {
  let current: unknown = event;
  for (const step of path.split('.')) {
    if (typeof current !== 'object' || current === null || !Object.hasOwn(current, step)) return undefined;
    current = (current as Record<string, unknown>)[step];
  }
  return current === null ? undefined : current;
}

/** Applies a field map; fields whose path resolves to nothing are omitted. */
export function applyFieldMap(event: CloudEventV1, fieldMap: Readonly<Record<string, string>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [target, path] of Object.entries(fieldMap)) {
    const value = resolvePath(event, path);
    if (value !== undefined) out[target] = value;
  }
  return out;
}
