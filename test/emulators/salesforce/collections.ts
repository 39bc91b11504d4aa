/**
 * sObject Collections upsert (REST API 46.0+):
 * `PATCH /services/data/vXX.X/composite/sobjects/{Object}/{ExternalIdField}` with
 * `{ allOrNone?, records: [{ attributes: { type }, <ExternalIdField>: value, ...fields }] }`.
 *
 * Documented: up to 200 records, all of the URL's type, each with an `attributes.type`;
 * processed in request order and answered with one UpsertResult per record, in the same
 * order: `{ id, success, errors: [{ statusCode, message, fields }], created }`. A malformed
 * request is 400; a well-formed one is 200 whatever the records' fate. `allOrNone`
 * (default false) rolls everything back when any record fails.
 * From public reports, not the reference page: more than 200 records is refused whole
 * with `EXCEEDED_ID_LIMIT`; the same external id twice in one request fails every
 * record carrying it with `DUPLICATE_VALUE` "Duplicate external id specified: V"; an
 * external id matching several stored records fails that record with
 * `DUPLICATE_EXTERNAL_ID`. See README.md for the assumed parts.
 *
 * Records of one request have distinct external ids once duplicates are refused, so
 * checking them all before applying any gives the same answers as one after another.
 */
import type { SalesforceError, SObjectSpec, ValidationRule } from './objects.js';
import type { PreparedUpsert, RecordStore, UpsertEvent } from './store.js';

export const MAX_COLLECTION_RECORDS = 200;

export interface RecordError {
  statusCode: string;
  message: string;
  fields: string[];
}

/** One element of the answer: `id` and `created` only for a record that was written. */
export interface UpsertResult {
  id?: string;
  success: boolean;
  errors: RecordError[];
  created?: boolean;
}

export type CollectionAnswer =
  /** Refused whole (malformed or over the limit); nothing written. */
  | { ok: false; status: number; errors: SalesforceError[] }
  /** Well formed: 200 with one result per record; `events` for the records written. */
  | { ok: true; externalIds: string[]; allOrNone: boolean; results: UpsertResult[]; events: UpsertEvent[] };

const ROLLED_BACK: RecordError = {
  statusCode: 'ALL_OR_NONE_OPERATION_ROLLED_BACK',
  message: 'Record rolled back because not all records were valid and the request was using AllOrNone header',
  fields: [],
};

const refuse = (status: number, message: string, errorCode: string): CollectionAnswer => ({ ok: false, status, errors: [{ message, errorCode }] });

export function collectionUpsert(
  store: RecordStore,
  target: { object: string; externalIdField: string; spec: SObjectSpec },
  body: unknown,
  rules: readonly ValidationRule[],
  /** An injected failure for this record (emulator fault), checked before the record's body. */
  recordFault: (externalId: string) => RecordError | undefined = () => undefined,
): CollectionAnswer {
  const { object, externalIdField: field } = target;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return refuse(400, 'Cannot deserialize the request body: expected an object with a records array at [line:1, column:1]', 'JSON_PARSER_ERROR');
  }
  const { records, allOrNone = false } = body as { records?: unknown; allOrNone?: unknown };
  if (!Array.isArray(records)) return refuse(400, 'records: required, must be an array of sObjects', 'JSON_PARSER_ERROR');
  if (typeof allOrNone !== 'boolean') return refuse(400, `Cannot deserialize instance of boolean from ${JSON.stringify(allOrNone)} (allOrNone) at [line:1, column:1]`, 'JSON_PARSER_ERROR');
  if (records.length > MAX_COLLECTION_RECORDS) {
    return refuse(400, `record limit reached. cannot submit more than ${MAX_COLLECTION_RECORDS} records into this call`, 'EXCEEDED_ID_LIMIT');
  }
  for (const [i, record] of records.entries()) {
    const type = typeof record === 'object' && record !== null && !Array.isArray(record) ? (record as { attributes?: { type?: unknown } }).attributes?.type : undefined;
    if (typeof type !== 'string') return refuse(400, `records[${i}]: Must send a concrete entity type in attributes.type`, 'INVALID_TYPE');
    if (type !== object) return refuse(400, `records[${i}]: type ${type} in a request for ${object}; the list can contain objects only of the type in the URI`, 'INVALID_TYPE');
  }

  const externalIds = (records as Record<string, unknown>[]).map((record) => externalIdOf(record[field]));
  const seen = new Map<string, number>();
  for (const id of externalIds) if (id !== undefined) seen.set(id, (seen.get(id) ?? 0) + 1);

  const prepared: (PreparedUpsert | { ok: false; errors: RecordError[] })[] = (records as Record<string, unknown>[]).map((record, i) => {
    const externalId = externalIds[i];
    if (externalId === undefined) return recordFailure({ statusCode: 'MISSING_ARGUMENT', message: `${field} not specified`, fields: [field] });
    if (seen.get(externalId)! > 1) return recordFailure({ statusCode: 'DUPLICATE_VALUE', message: `Duplicate external id specified: ${externalId}`, fields: [field] });
    const matches = store.matches(object, externalId);
    if (matches.length > 1) {
      return recordFailure({ statusCode: 'DUPLICATE_EXTERNAL_ID', message: `more than one record found for external id field: [${matches.map((r) => r.id).join(', ')}]`, fields: [field] });
    }
    const fault = recordFault(externalId);
    if (fault) return recordFailure(fault);
    const { [field]: _externalId, ...fields } = record;
    return store.prepare({ object, spec: target.spec, externalIdField: field, externalId }, fields, rules);
  });

  const anyFailed = prepared.some((p) => !p.ok);
  const events: UpsertEvent[] = [];
  const results = prepared.map((p): UpsertResult => {
    if (!p.ok) return { success: false, errors: 'status' in p ? p.errors.map(toRecordError) : p.errors };
    if (allOrNone && anyFailed) return { success: false, errors: [ROLLED_BACK] };
    const event = store.apply(p);
    events.push(event);
    return { id: event.record.id, success: true, errors: [], created: event.created };
  });
  return { ok: true, externalIds: externalIds.map((id) => id ?? ''), allOrNone, results, events };
}

function externalIdOf(value: unknown): string | undefined {
  if (typeof value === 'string' && value !== '') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return undefined;
}

const recordFailure = (error: RecordError): { ok: false; errors: RecordError[] } => ({ ok: false, errors: [error] });

/** Per-record errors say `statusCode` where whole-request error bodies say `errorCode`. */
const toRecordError = (e: SalesforceError): RecordError => ({ statusCode: e.errorCode, message: e.message, fields: e.fields ?? [] });
