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
 * A value may also be a template of paths in braces, giving text: `{plant}:{data.workOrder}`
 * builds a plant-qualified external id, so two plants' WO-1 are two CRM records. A template
 * yields nothing when any of its paths does (or holds an object): never a half-built id.
 *
 * Only own properties are walked: a path can never reach `__proto__` or inherited
 * members. A richer mapping language (formats, lookups) comes later.
 */
import { z } from 'zod';
import type { CloudEventV1 } from '../../protocols/events/envelope.js';
import type { PermanentError } from '../../protocols/errors.js';
import type { DeliveryItem, ExpectedRecord, ExpectedRecords } from './sink.js';

const PATH_SOURCE = '[a-z0-9]{1,20}(?:\\.(?:[A-Za-z_$][A-Za-z0-9_$-]*|\\d+))*';
const PATH = new RegExp(`^${PATH_SOURCE}$`);
const TEMPLATE = new RegExp(`^(?:[^{}]*\\{${PATH_SOURCE}\\})+[^{}]*$`);
const PLACEHOLDER = /\{([^{}]+)\}/g;

export const FieldPath = z
  .string()
  .max(256)
  .refine((v) => PATH.test(v) || TEMPLATE.test(v), {
    message:
      'must be a dotted path into the event starting at a CloudEvents attribute, e.g. "id", "time", "data.workOrder" or "data.goodQuantity.value", or a template of such paths in braces, e.g. "{plant}:{data.workOrder}"',
  })
  .describe('Dotted path into the CloudEvent, e.g. "id", "subject", "data.workOrder", "data.goodQuantity.value"; or a template of paths in braces giving text, e.g. "{plant}:{data.workOrder}".');
export type FieldPath = z.infer<typeof FieldPath>;

export const FieldMap = z
  .record(z.string().min(1).max(128), FieldPath)
  .describe('Target field name -> path into the event. A path missing in an event leaves the field out.');
export type FieldMap = z.infer<typeof FieldMap>;

/** The value at `path` (or the text of a template), or undefined when any step is missing or null. */
export function resolvePath(event: CloudEventV1, path: string): unknown {
  if (path.includes('{')) return fillTemplate(event, path);
  return walk(event, path);
}

function fillTemplate(event: CloudEventV1, template: string): string | undefined {
  let missing = false;
  const text = template.replace(PLACEHOLDER, (_, p: string) => {
    const v = walk(event, p);
    if (typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v)) || typeof v === 'boolean') return String(v);
    missing = true;
    return '';
  });
  return missing ? undefined : text;
}

function walk(event: CloudEventV1, path: string): unknown {
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

/**
 * The mappings that write for `item`, in config order: those of its event type, less the
 * `latest` ones when the item is stale (a newer event of its subject was already applied).
 * Each sink's plan makes one write per mapping returned, in this order.
 */
export function appliedMappings<M extends { eventType: string; apply: 'every' | 'latest' }>(item: DeliveryItem, mappings: readonly M[]): M[] {
  return mappings.filter((m) => m.eventType === item.event.type && !(m.apply === 'latest' && item.stale));
}

/**
 * The records a sink's plan of writes for `item` leaves in its target, for reconciliation.
 * A plan makes one write per applied mapping, in order, so each write takes its mapping's
 * `apply`; `record` says which target record a write is and what it sets.
 */
export function expectedRecordsOf<M extends { eventType: string; apply: 'every' | 'latest' }, W>(
  item: DeliveryItem,
  mappings: readonly M[],
  plan: { ok: true; writes: W[] } | { ok: false; error: PermanentError },
  record: (write: W) => Omit<ExpectedRecord, 'apply'>,
): ExpectedRecords {
  if (!plan.ok) return plan;
  const applied = appliedMappings(item, mappings);
  return { ok: true, records: plan.writes.map((write, i) => ({ ...record(write), apply: applied[i]?.apply === 'latest' ? 'latest' : 'event' })) };
}
