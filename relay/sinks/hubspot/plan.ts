/**
 * Turns one delivery item into the upserts it needs, in mapping order.
 *
 * - Every mapping whose eventType matches applies, except `latest` mappings for a
 *   stale item (a newer event of the subject was already applied).
 * - An item no mapping matches is a config mismatch: rejected `no_mapping`, so it
 *   shows up in the dead letters instead of vanishing.
 * - A missing id or a non-scalar property value is `mapping_error`: the same event
 *   would fail the same way on every retry.
 * - Property values are sent as strings, the type HubSpot's API declares for them;
 *   HubSpot parses numbers, booleans and datetimes from their string form.
 */
import { PermanentError } from '../../../protocols/errors.js';
import { applyFieldMap, appliedMappings, resolvePath } from '../mapping.js';
import type { DeliveryItem } from '../sink.js';
import type { HubSpotMapping } from './config.js';

export interface UpsertWrite {
  objectType: string;
  idProperty: string;
  /** Value of idProperty that identifies the record. */
  id: string;
  properties: Record<string, string>;
}

export type WritePlan = { ok: true; writes: UpsertWrite[] } | { ok: false; error: PermanentError };

const mappingError = (message: string): WritePlan => ({ ok: false, error: new PermanentError(message, { code: 'mapping_error' }) });

function scalarText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : undefined;
  if (typeof value === 'boolean') return String(value);
  return undefined;
}

export function planWrites(item: DeliveryItem, mappings: readonly HubSpotMapping[]): WritePlan {
  const { event } = item;
  const matching = mappings.filter((m) => m.eventType === event.type);
  if (matching.length === 0) {
    return { ok: false, error: new PermanentError(`no HubSpot mapping for event type ${event.type}`, { code: 'no_mapping' }) };
  }
  const writes: UpsertWrite[] = [];
  for (const mapping of appliedMappings(item, matching)) {
    const target = `mapping ${event.type} -> ${mapping.objectType}`;
    const id = scalarText(resolvePath(event, mapping.idFrom)) ?? '';
    if (!id) return mappingError(`${target}: no ${mapping.idProperty} value at "${mapping.idFrom}"`);
    const properties: Record<string, string> = {};
    for (const [property, value] of Object.entries(applyFieldMap(event, mapping.properties))) {
      const text = scalarText(value);
      if (text === undefined) {
        const what = Array.isArray(value) ? 'an array' : typeof value === 'number' ? 'not a finite number' : 'an object';
        return mappingError(`${target}: property ${property} ("${mapping.properties[property]}") is ${what}; map a scalar inside it`);
      }
      properties[property] = text;
    }
    writes.push({ objectType: mapping.objectType, idProperty: mapping.idProperty, id, properties });
  }
  return { ok: true, writes };
}
