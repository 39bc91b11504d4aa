/**
 * Reading back and deleting what the Salesforce sink writes (RecordReader, for
 * reconciliation).
 *
 * - Read: SOQL through the Query resource,
 *   `GET /services/data/vXX.X/query?q=SELECT Id, <ext field>, <mapped fields> FROM <Object> WHERE <ext field> IN ('a','b')`,
 *   following `nextRecordsUrl` until `done` (Salesforce returns at most 2,000 records per
 *   page). Values are quoted with SOQL's escapes (`\'` and `\\`). The IN list is split so
 *   every request URL stays under MAX_QUERY_URL_CHARS: Salesforce allows 16,384 bytes
 *   for URI and headers together, and the bearer token travels in a header.
 * - A non-unique external id field may hold several records with one value: they all
 *   come back, grouped under their ref. Records are matched to refs by exact value.
 * - Delete: sObject Collections, `DELETE /services/data/vXX.X/composite/sobjects?ids=...&allOrNone=false`,
 *   up to 200 ids per call, one DeleteResult per id. A record already deleted
 *   (ENTITY_IS_DELETED) counts as done; any other per-record failure is thrown after
 *   every call was made.
 */
import { PermanentError, TransientError } from '../../../protocols/errors.js';
import type { DeliveryItem, ExpectedRecords, FoundRecord, RecordReader, RecordRef } from '../sink.js';
import { classifyApiResponse, classifyRecordErrors, parseRecordErrors } from './classify.js';
import type { SalesforceMapping } from './config.js';
import { expectedRecordsOf } from '../mapping.js';
import { planWrites } from './plan.js';
import { MAX_RECORDS_PER_CALL, type SalesforceRestClient } from './rest-client.js';

/** Budget for path + query string of one query request; well under the 16,384-byte URI + headers limit. */
export const MAX_QUERY_URL_CHARS = 8_000;
/** The path a query URL starts with, counted against the budget: `/services/data/vXX.X/query?q=`. */
const QUERY_PATH_CHARS = '/services/data/v000.0/query?q='.length;

/**
 * `encodeURIComponent` that also escapes `!'()*`: fetch percent-encodes `'` in a query
 * string itself, so this is the length that actually travels, and what `query` sends.
 */
export function encodeQueryValue(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** A SOQL string literal: `'` and `\` escaped with a backslash (SOQL "Quoted String Escape Sequences"). */
export function soqlLiteral(value: string): string {
  return `'${value.replace(/[\\']/g, (c) => `\\${c}`)}'`;
}

/**
 * SOQL queries selecting `fields` of every record of `object` whose `externalIdField`
 * is one of `values`, as few as fit: each one's URL-encoded text stays within
 * `maxUrlChars` minus the query path. Throws RangeError when one value alone cannot fit.
 */
export function buildQueries(object: string, externalIdField: string, fields: readonly string[], values: readonly string[], maxUrlChars = MAX_QUERY_URL_CHARS): string[] {
  const select = ['Id', externalIdField, ...fields.filter((f) => f !== 'Id' && f !== externalIdField)];
  const head = `SELECT ${select.join(', ')} FROM ${object} WHERE ${externalIdField} IN (`;
  const budget = maxUrlChars - QUERY_PATH_CHARS;
  const encoded = (text: string): number => encodeQueryValue(text).length;
  const queries: string[] = [];
  let current: string[] = [];
  let size = encoded(head) + encoded(')');
  for (const value of values) {
    const literal = soqlLiteral(value);
    const cost = encoded(literal) + (current.length > 0 ? encoded(',') : 0);
    if (current.length > 0 && size + cost > budget) {
      queries.push(`${head}${current.join(',')})`);
      current = [];
      size = encoded(head) + encoded(')');
    }
    const first = encoded(literal);
    if (current.length === 0 && size + first > budget) throw new RangeError(`external id ${value.slice(0, 40)}... is too long for a query URL`);
    size += current.length > 0 ? cost : first;
    current.push(literal);
  }
  if (current.length > 0) queries.push(`${head}${current.join(',')})`);
  return queries;
}

const NEXT_RECORDS_URL = /^\/services\/data\/v\d+\.\d+\/query\/[A-Za-z0-9_-]+$/;

export class SalesforceRecords implements RecordReader {
  constructor(
    private readonly client: SalesforceRestClient,
    private readonly mappings: readonly SalesforceMapping[],
  ) {}

  expectedRecords(item: DeliveryItem): ExpectedRecords {
    return expectedRecordsOf(item, this.mappings, planWrites(item, this.mappings), (write) => ({
      object: write.object,
      externalIdField: write.externalIdField,
      externalId: write.externalId,
      fields: { ...write.body },
    }));
  }

  async readRecords(refs: readonly RecordRef[]): Promise<FoundRecord[][]> {
    const found = new Map<string, FoundRecord[]>();
    for (const [key, group] of groupRefs(refs)) {
      const values = [...new Set(group.map((r) => r.externalId))];
      const fields = this.fieldsOf(group[0]!.object, group[0]!.externalIdField);
      // Field names are case-insensitive in Salesforce, and a query answers with each field's own
      // API name: take the answer's fields back under the names the mappings use.
      const configured = new Map([group[0]!.externalIdField, ...fields].map((f) => [f.toLowerCase(), f]));
      for (const soql of buildQueries(group[0]!.object, group[0]!.externalIdField, fields, values)) {
        for (const answered of await this.query(soql, group[0]!.object)) {
          const record = { id: answered.id, fields: Object.fromEntries(Object.entries(answered.fields).map(([k, v]) => [configured.get(k.toLowerCase()) ?? k, v])) };
          // External id values are compared exactly: a case-sensitive unique field may hold WO-1 and wo-1 as two records.
          const value = record.fields[group[0]!.externalIdField];
          if (typeof value !== 'string' && typeof value !== 'number') continue;
          const refKey = `${key}\u0000${String(value)}`;
          const list = found.get(refKey) ?? [];
          list.push(record);
          found.set(refKey, list);
        }
      }
    }
    return refs.map((r) => (found.get(`${groupKey(r)}\u0000${r.externalId}`) ?? []).map((f) => ({ id: f.id, fields: { ...f.fields } })));
  }

  async deleteRecords(object: string, ids: readonly string[]): Promise<void> {
    const unique = [...new Set(ids)];
    let firstFailure: TransientError | PermanentError | undefined;
    let failures = 0;
    for (let start = 0; start < unique.length; start += MAX_RECORDS_PER_CALL) {
      const chunk = unique.slice(start, start + MAX_RECORDS_PER_CALL);
      const what = `deleting ${chunk.length} ${object} record${chunk.length === 1 ? '' : 's'}`;
      const answer = await this.client.call('DELETE', `composite/sobjects?ids=${chunk.map(encodeURIComponent).join(',')}&allOrNone=false`, what);
      if (answer.status !== 200) throw classifyApiResponse(what, answer.status, answer.headers, answer.text);
      const results = parseJsonArray(answer.text);
      if (!results || results.length !== chunk.length) throw new TransientError(`${what}: HTTP 200 without one result per id`);
      results.forEach((raw, i) => {
        const result = (typeof raw === 'object' && raw !== null ? raw : {}) as { success?: unknown; errors?: unknown };
        if (result.success === true) return;
        const errors = parseRecordErrors(result.errors);
        if (errors.length > 0 && errors.every((e) => e.errorCode === 'ENTITY_IS_DELETED')) return; // already gone: the goal is met
        failures++;
        firstFailure ??= classifyRecordErrors(`deleting ${object}/${chunk[i]!}`, errors);
      });
    }
    if (firstFailure) {
      const more = failures > 1 ? ` (and ${failures - 1} more failed)` : '';
      if (firstFailure instanceof PermanentError) throw new PermanentError(`${firstFailure.message}${more}`, { code: firstFailure.code, cause: firstFailure });
      throw new TransientError(`${firstFailure.message}${more}`, { cause: firstFailure });
    }
  }

  /** Every field any mapping writes to this object by this external id field. */
  private fieldsOf(object: string, externalIdField: string): string[] {
    const fields = new Set<string>();
    for (const m of this.mappings) if (m.object === object && m.externalIdField === externalIdField) for (const f of Object.keys(m.fields)) fields.add(f);
    return [...fields];
  }

  /** Runs one SOQL query and follows `nextRecordsUrl` until `done`. */
  private async query(soql: string, object: string): Promise<FoundRecord[]> {
    const what = `querying ${object}`;
    const records: FoundRecord[] = [];
    let path = `query?q=${encodeQueryValue(soql)}`;
    for (;;) {
      const answer = await this.client.call('GET', path, what);
      if (answer.status !== 200) throw classifyApiResponse(what, answer.status, answer.headers, answer.text);
      const page = parseQueryPage(answer.text);
      if (!page) throw new TransientError(`${what}: HTTP 200 without a query result`);
      for (const raw of page.records) {
        const { attributes: _attributes, Id, ...fields } = raw;
        if (typeof Id === 'string') records.push({ id: Id, fields });
      }
      if (page.done) return records;
      if (typeof page.nextRecordsUrl !== 'string' || !NEXT_RECORDS_URL.test(page.nextRecordsUrl)) {
        throw new TransientError(`${what}: Salesforce said more records follow but gave no usable nextRecordsUrl`);
      }
      path = page.nextRecordsUrl;
    }
  }
}

const groupKey = (r: RecordRef): string => `${r.object}\u0000${r.externalIdField}`;

function groupRefs(refs: readonly RecordRef[]): Map<string, RecordRef[]> {
  const groups = new Map<string, RecordRef[]>();
  for (const ref of refs) {
    const list = groups.get(groupKey(ref)) ?? [];
    list.push(ref);
    groups.set(groupKey(ref), list);
  }
  return groups;
}

function parseJsonArray(text: string): unknown[] | undefined {
  try {
    const body = JSON.parse(text) as unknown;
    return Array.isArray(body) ? body : undefined;
  } catch {
    return undefined;
  }
}

interface QueryPage {
  done: boolean;
  nextRecordsUrl?: unknown;
  records: Record<string, unknown>[];
}

function parseQueryPage(text: string): QueryPage | undefined {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof body !== 'object' || body === null) return undefined;
  const { done, nextRecordsUrl, records } = body as Record<string, unknown>;
  if (typeof done !== 'boolean' || !Array.isArray(records)) return undefined;
  return { done, nextRecordsUrl, records: records.filter((r): r is Record<string, unknown> => typeof r === 'object' && r !== null && !Array.isArray(r)) };
}
