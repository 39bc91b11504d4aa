/**
 * The Query resource (`GET /services/data/vXX.X/query?q=SOQL`) and Query More Results
 * (`GET /services/data/vXX.X/query/{queryLocator}`), over the SOQL subset in soql.ts.
 *
 * Documented: up to 2,000 records per answer; `{ totalSize, done, records }`, and while
 * records remain `done: false` with `nextRecordsUrl` (`/services/data/vXX.X/query/01g...-2000`),
 * requested without parameters until `done` is true. Each record carries
 * `attributes: { type, url }` and the selected fields; unset fields come back as null.
 * An unparsable query is 400 MALFORMED_QUERY.
 * Assumed (see README.md): unknown object -> 400 INVALID_TYPE, unknown field -> 400
 * INVALID_FIELD (as seen in practice); an unknown or used-up locator -> 400
 * INVALID_QUERY_LOCATOR; values compare exactly (no case folding); records in creation order.
 */
import { randomBytes } from 'node:crypto';
import type { SalesforceError } from './objects.js';
import { parseSoql } from './soql.js';
import { recordUrl, type RecordStore, type UpsertRecord } from './store.js';

export const DEFAULT_QUERY_PAGE_SIZE = 2000;

export type QueryAnswer = { ok: true; soql?: string; body: QueryPageBody } | { ok: false; status: number; errors: SalesforceError[] };

export interface QueryPageBody {
  totalSize: number;
  done: boolean;
  nextRecordsUrl?: string;
  records: Record<string, unknown>[];
}

interface Cursor {
  version: string;
  rows: Record<string, unknown>[];
  offset: number;
}

export class QueryEngine {
  private readonly cursors = new Map<string, Cursor>();

  constructor(
    private readonly store: RecordStore,
    private readonly pageSize: number,
  ) {}

  run(version: string, soql: string): QueryAnswer {
    const parsed = parseSoql(soql);
    if (!parsed.ok) return { ok: false, status: 400, errors: [{ message: `\n${soql.slice(0, 200)}\n^\nERROR at Row:1:Column:1\n${parsed.message}`, errorCode: 'MALFORMED_QUERY' }] };
    const { query } = parsed;
    const spec = this.store.spec(query.object);
    if (!spec) {
      return {
        ok: false,
        status: 400,
        errors: [
          {
            message: `\n${soql.slice(0, 200)}\n^\nERROR at Row:1:Column:1\nsObject type '${query.object}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.`,
            errorCode: 'INVALID_TYPE',
          },
        ],
      };
    }
    // Documented (SOAP API, "Queries and the Partner WSDL"): field names in a query are
    // case-insensitive, and the result names each field exactly as its describe does.
    const canonical = new Map([['id', 'Id'], ...Object.keys(spec).map((f): [string, string] => [f.toLowerCase(), f])]);
    const known = (field: string): boolean => canonical.has(field.toLowerCase());
    const unknown = [...query.fields, ...(query.where ? [query.where.field] : [])].find((f) => !known(f));
    if (unknown !== undefined) {
      return {
        ok: false,
        status: 400,
        errors: [
          {
            message: `\n${soql.slice(0, 200)}\n^\nERROR at Row:1:Column:1\nNo such column '${unknown}' on entity '${query.object}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.`,
            errorCode: 'INVALID_FIELD',
          },
        ],
      };
    }
    const name = (field: string): string => canonical.get(field.toLowerCase())!;
    const value = (record: UpsertRecord, field: string): unknown => (name(field) === 'Id' ? record.id : record.fields[name(field)]);
    const wanted = query.where ? new Set(query.where.values) : undefined;
    const rows = this.store
      .scan(query.object)
      .filter((record) => {
        if (!wanted || !query.where) return true;
        const v = value(record, query.where.field);
        return (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') && wanted.has(String(v));
      })
      .map((record) => {
        const row: Record<string, unknown> = { attributes: { type: query.object, url: recordUrl(version, record) } };
        for (const field of query.fields) row[name(field)] = value(record, field) ?? null;
        return row;
      });
    return { ok: true, body: this.page({ version, rows, offset: 0 }) };
  }

  /** Query More Results: the next page of an earlier query. */
  more(locator: string): QueryAnswer {
    const cursor = this.cursors.get(locator);
    if (!cursor) return { ok: false, status: 400, errors: [{ message: 'invalid query locator', errorCode: 'INVALID_QUERY_LOCATOR' }] };
    this.cursors.delete(locator);
    return { ok: true, body: this.page(cursor) };
  }

  private page(cursor: Cursor): QueryPageBody {
    const records = cursor.rows.slice(cursor.offset, cursor.offset + this.pageSize);
    const next = cursor.offset + records.length;
    if (next >= cursor.rows.length) return { totalSize: cursor.rows.length, done: true, records };
    const locator = `01g${randomBytes(8).toString('hex').toUpperCase().slice(0, 15)}-${next}`;
    this.cursors.set(locator, { ...cursor, offset: next });
    return { totalSize: cursor.rows.length, done: false, nextRecordsUrl: `/services/data/${cursor.version}/query/${locator}`, records };
  }
}
