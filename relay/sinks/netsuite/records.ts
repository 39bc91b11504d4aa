/**
 * Reading back and deleting what the NetSuite sink writes (RecordReader, for
 * reconciliation).
 *
 * - Read: one `GET /services/rest/record/v1/{type}/eid:{externalId}?fields=...` per ref
 *   (the record service has no batch read), listing every field the mappings write.
 *   200 is the record, 404 NONEXISTENT_ID none: an external id is unique per record
 *   type, so a ref has 0 or 1 records. At most `concurrency` requests are in flight,
 *   since the account's concurrency limit is shared with every other integration; the
 *   first failure stops further requests and is thrown.
 * - Select fields are written as `{ id }` and read back as `{ id, refName }`: compare
 *   their `id`. Datetimes come back with whole seconds.
 * - Delete: `DELETE /services/rest/record/v1/{type}/{internal id}` (204), one per id; a
 *   record already gone counts as deleted.
 */
import type { DeliveryItem, ExpectedRecords, FoundRecord, RecordReader, RecordRef } from '../sink.js';
import type { NetSuiteMapping } from './config.js';
import { expectedRecordsOf } from '../mapping.js';
import { planWrites } from './plan.js';
import type { NetSuiteRestClient } from './rest-client.js';

/** NetSuite's external id is a field of every record, named `externalId`. */
export const EXTERNAL_ID_FIELD = 'externalId';

export class NetSuiteRecords implements RecordReader {
  constructor(
    private readonly client: NetSuiteRestClient,
    private readonly mappings: readonly NetSuiteMapping[],
    private readonly concurrency: number,
  ) {}

  expectedRecords(item: DeliveryItem): ExpectedRecords {
    return expectedRecordsOf(item, this.mappings, planWrites(item, this.mappings), (write) => ({
      object: write.recordType,
      externalIdField: EXTERNAL_ID_FIELD,
      externalId: write.externalId,
      fields: structuredClone(write.body),
    }));
  }

  async readRecords(refs: readonly RecordRef[]): Promise<FoundRecord[][]> {
    const keys = [...new Set(refs.map((r) => `${r.object}\u0000${r.externalId}`))];
    const found = new Map<string, FoundRecord | undefined>();
    await this.pool(keys, async (key) => {
      const [object, externalId] = key.split('\u0000') as [string, string];
      found.set(key, await this.client.get(object, externalId, this.fieldsOf(object)));
    });
    return refs.map((r) => {
      const record = found.get(`${r.object}\u0000${r.externalId}`);
      return record ? [{ id: record.id, fields: structuredClone(record.fields) }] : [];
    });
  }

  async deleteRecords(object: string, ids: readonly string[]): Promise<void> {
    await this.pool([...new Set(ids)], (id) => this.client.delete(object, id));
  }

  /** Every field any mapping writes to this record type. */
  private fieldsOf(recordType: string): string[] {
    const fields = new Set<string>();
    for (const m of this.mappings) {
      if (m.recordType !== recordType) continue;
      for (const f of [...Object.keys(m.fields), ...Object.keys(m.selects)]) fields.add(f);
    }
    return [...fields];
  }

  /** Runs `work` for each key with at most `concurrency` at once; stops starting new ones after the first failure, which is thrown. */
  private async pool<T>(keys: readonly T[], work: (key: T) => Promise<void>): Promise<void> {
    let next = 0;
    let failure: { error: unknown } | undefined;
    const worker = async (): Promise<void> => {
      while (next < keys.length && !failure) {
        const key = keys[next++]!;
        try {
          await work(key);
        } catch (error) {
          failure ??= { error };
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, keys.length) }, worker));
    if (failure) throw failure.error;
  }
}
