/**
 * Turns one delivery item into the record upserts it needs, in mapping order
 * (`calls.ts` then packs the records of a batch into sObject Collections calls).
 *
 * - Every mapping whose eventType matches applies, except `latest` mappings for a
 *   stale item (a newer event of the subject was already applied).
 * - An item no mapping matches is a config mismatch: rejected `no_mapping`, so it
 *   shows up in the dead letters instead of vanishing.
 * - A missing external id or a non-scalar field value is `mapping_error`: the same
 *   event would fail the same way on every retry.
 */
import { PermanentError } from '../../../protocols/errors.js';
import { applyFieldMap, appliedMappings, resolvePath } from '../mapping.js';
import type { DeliveryItem } from '../sink.js';
import type { SalesforceMapping } from './config.js';

/** One record to upsert: `body` holds the mapped fields, never the external id field itself. */
export interface RecordWrite {
  object: string;
  externalIdField: string;
  externalId: string;
  body: Record<string, unknown>;
}

export type WritePlan = { ok: true; writes: RecordWrite[] } | { ok: false; error: PermanentError };

const mappingError = (message: string): WritePlan => ({ ok: false, error: new PermanentError(message, { code: 'mapping_error' }) });

export function planWrites(item: DeliveryItem, mappings: readonly SalesforceMapping[]): WritePlan {
  const { event } = item;
  const matching = mappings.filter((m) => m.eventType === event.type);
  if (matching.length === 0) {
    return { ok: false, error: new PermanentError(`no Salesforce mapping for event type ${event.type}`, { code: 'no_mapping' }) };
  }
  const writes: RecordWrite[] = [];
  for (const mapping of appliedMappings(item, matching)) {
    const target = `mapping ${event.type} -> ${mapping.object}`;
    const rawId = resolvePath(event, mapping.externalId);
    const externalId = typeof rawId === 'string' || (typeof rawId === 'number' && Number.isFinite(rawId)) ? String(rawId) : '';
    if (!externalId) return mappingError(`${target}: no external id at "${mapping.externalId}"`);
    const body = applyFieldMap(event, mapping.fields);
    for (const [field, value] of Object.entries(body)) {
      if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
        return mappingError(`${target}: field ${field} ("${mapping.fields[field]}") is ${Array.isArray(value) ? 'an array' : 'an object'}; map a scalar inside it`);
      }
    }
    writes.push({ object: mapping.object, externalIdField: mapping.externalIdField, externalId, body });
  }
  return { ok: true, writes };
}
