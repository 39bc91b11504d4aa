/**
 * Turns one delivery item into the upserts it needs, in mapping order.
 *
 * - Every mapping whose eventType matches applies, except `latest` mappings for a
 *   stale item (a newer event of the subject was already applied).
 * - An item no mapping matches is a config mismatch: rejected `no_mapping`, so it
 *   shows up in the dead letters instead of vanishing.
 * - A missing external id, a non-scalar field value or an event value a select field
 *   has no list value for is `mapping_error`: the same event would fail the same way
 *   on every retry.
 * - Select fields are sent as `{ "id": "<internal id>" }`, NetSuite's reference shape.
 */
import { PermanentError } from '../../../protocols/errors.js';
import { applyFieldMap, appliedMappings, resolvePath } from '../mapping.js';
import type { DeliveryItem } from '../sink.js';
import type { NetSuiteMapping } from './config.js';
import type { UpsertRequest } from './rest-client.js';

export type WritePlan = { ok: true; writes: UpsertRequest[] } | { ok: false; error: PermanentError };

const mappingError = (message: string): WritePlan => ({ ok: false, error: new PermanentError(message, { code: 'mapping_error' }) });

const scalarText = (value: unknown): string | undefined =>
  typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value)) ? String(value) : undefined;

export function planWrites(item: DeliveryItem, mappings: readonly NetSuiteMapping[]): WritePlan {
  const { event } = item;
  const matching = mappings.filter((m) => m.eventType === event.type);
  if (matching.length === 0) {
    return { ok: false, error: new PermanentError(`no NetSuite mapping for event type ${event.type}`, { code: 'no_mapping' }) };
  }
  const writes: UpsertRequest[] = [];
  for (const mapping of appliedMappings(item, matching)) {
    const target = `mapping ${event.type} -> ${mapping.recordType}`;
    const externalId = scalarText(resolvePath(event, mapping.externalIdFrom)) ?? '';
    if (!externalId) return mappingError(`${target}: no external id at "${mapping.externalIdFrom}"`);
    const body = applyFieldMap(event, mapping.fields);
    for (const [field, value] of Object.entries(body)) {
      if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
        return mappingError(`${target}: field ${field} ("${mapping.fields[field]}") is ${Array.isArray(value) ? 'an array' : 'an object'}; map a scalar inside it`);
      }
    }
    for (const [field, select] of Object.entries(mapping.selects)) {
      const raw = resolvePath(event, select.from);
      if (raw === undefined) continue; // missing in the event: leave the field untouched
      const value = scalarText(raw) ?? (typeof raw === 'boolean' ? String(raw) : undefined);
      const id = value !== undefined && Object.hasOwn(select.values, value) ? select.values[value] : undefined;
      if (id === undefined) {
        return mappingError(`${target}: select field ${field} has no list value for ${JSON.stringify(raw)} (from "${select.from}"); add it to selects.${field}.values`);
      }
      body[field] = { id };
    }
    writes.push({ recordType: mapping.recordType, externalId, body });
  }
  return { ok: true, writes };
}
