/**
 * Reading back and archiving what the HubSpot sink writes (RecordReader, for
 * reconciliation).
 *
 * - Read: `POST /crm/v3/objects/{objectType}/batch/read` with `{ idProperty, inputs: [{ id }], properties }`,
 *   up to `batchSize` (at most 100) values per call, one call at a time like deliveries.
 *   `properties` lists every property the mappings write plus the id property, which
 *   maps each result back to its ref. Values not found come back in a 207's `errors`
 *   (category OBJECT_NOT_FOUND): 0 records for that ref. An id property has unique
 *   values, so a ref never has more than one record.
 * - Delete: `POST /crm/v3/objects/{objectType}/batch/archive` with `{ inputs: [{ id }] }`
 *   (HubSpot record ids), answered 204; archived records go to the recycling bin.
 * - Failures are classified as deliveries' are (classify.ts); any other per-input error
 *   of a read fails the read.
 */
import type { DeliveryItem, ExpectedRecords, FoundRecord, RecordReader, RecordRef } from '../sink.js';
import type { HubSpotBatchClient } from './batch-client.js';
import { classifyInputError, toError } from './classify.js';
import type { HubSpotMapping } from './config.js';
import { expectedRecordsOf } from '../mapping.js';
import { planWrites } from './plan.js';

export class HubSpotRecords implements RecordReader {
  constructor(
    private readonly client: HubSpotBatchClient,
    private readonly mappings: readonly HubSpotMapping[],
    private readonly batchSize: number,
  ) {}

  expectedRecords(item: DeliveryItem): ExpectedRecords {
    return expectedRecordsOf(item, this.mappings, planWrites(item, this.mappings), (write) => ({
      object: write.objectType,
      externalIdField: write.idProperty,
      externalId: write.id,
      fields: { ...write.properties },
    }));
  }

  async readRecords(refs: readonly RecordRef[]): Promise<FoundRecord[][]> {
    const found = new Map<string, FoundRecord>();
    const groups = new Map<string, RecordRef[]>();
    for (const ref of refs) {
      const key = `${ref.object}\u0000${ref.externalIdField}`;
      groups.set(key, [...(groups.get(key) ?? []), ref]);
    }
    for (const [key, group] of groups) {
      const { object, externalIdField } = group[0]!;
      const values = [...new Set(group.map((r) => r.externalId))];
      const properties = [...this.propertiesOf(object, externalIdField), externalIdField];
      for (let start = 0; start < values.length; start += this.batchSize) {
        const chunk = values.slice(start, start + this.batchSize);
        const what = `reading ${chunk.length} ${object} record${chunk.length === 1 ? '' : 's'} by ${externalIdField}`;
        const answer = await this.client.read(object, externalIdField, chunk, properties);
        if (!answer.ok) throw toError(what, answer.verdict);
        const failure = answer.errors.find((e) => e.category !== 'OBJECT_NOT_FOUND');
        if (failure) throw toError(what, classifyInputError(failure));
        for (const result of answer.results) {
          const value = result.properties[externalIdField];
          if (typeof value === 'string') found.set(`${key}\u0000${value}`, { id: result.id, fields: result.properties });
        }
      }
    }
    return refs.map((r) => {
      const record = found.get(`${r.object}\u0000${r.externalIdField}\u0000${r.externalId}`);
      return record ? [{ id: record.id, fields: { ...record.fields } }] : [];
    });
  }

  async deleteRecords(object: string, ids: readonly string[]): Promise<void> {
    const unique = [...new Set(ids)];
    for (let start = 0; start < unique.length; start += this.batchSize) {
      const chunk = unique.slice(start, start + this.batchSize);
      const verdict = await this.client.archive(object, chunk);
      if (verdict) throw toError(`archiving ${chunk.length} ${object} record${chunk.length === 1 ? '' : 's'}`, verdict);
    }
  }

  /** Every property any mapping writes to this object by this id property. */
  private propertiesOf(objectType: string, idProperty: string): string[] {
    const properties = new Set<string>();
    for (const m of this.mappings) if (m.objectType === objectType && m.idProperty === idProperty) for (const p of Object.keys(m.properties)) properties.add(p);
    properties.delete(idProperty);
    return [...properties];
  }
}
