/**
 * The emulated account's record types (custom records with typed fields and
 * select lists) and the checks an upsert body goes through.
 *
 * Check order (assumed, see README.md): unknown or read-only fields and wrong JSON
 * types are reported together, each with its `o:errorPath`; then required fields on
 * the merged record (`USER_ERROR`, "Please enter value(s) for: ..."); then the
 * account's validation rules (what a user event script or workflow would throw), also
 * `USER_ERROR`, only when everything else passed. A failed check writes nothing.
 */

export type FieldSpec =
  | { type: 'text'; required?: boolean; /** Free-form text holds up to 300 characters. */ maxLength?: number; label?: string }
  | { type: 'integer' | 'decimal'; required?: boolean; label?: string }
  | { type: 'datetime'; required?: boolean; label?: string }
  | { type: 'checkbox'; label?: string }
  | {
      type: 'select';
      required?: boolean;
      label?: string;
      /** Script id of the custom list, for messages. */
      list: string;
      /** Internal id of each list value -> its name (refName). */
      options: Readonly<Record<string, string>>;
    };

export interface RecordTypeSpec {
  /** Field id (`name`, `custrecord_...`) -> spec. `id` and `externalId` are implicit. */
  fields: Readonly<Record<string, FieldSpec>>;
}

export interface NetSuiteErrorDetail {
  detail: string;
  'o:errorCode': string;
  'o:errorPath'?: string;
  'o:urlPath'?: string;
  'o:errorHeader'?: string;
}

export interface ValidationRule {
  field: string;
  /** True when the value is acceptable; runs on the record as it would be after the write. */
  test: (value: unknown, record: Readonly<Record<string, unknown>>) => boolean;
  message: string;
}

/** Stored value of a select field: NetSuite answers `{ id, refName }`. */
export interface SelectValue {
  id: string;
  refName: string;
}

export const WORK_ORDER_STATUS_LIST = 'customlist_plk_wo_status';
export const SHIPMENT_STATUS_LIST = 'customlist_plk_sh_status';

const TEXT_MAX = 300;

/** plantlink's bundle: one custom record per work order and one per shipment, each with a status list. */
export const defaultRecordTypes: Record<string, RecordTypeSpec> = {
  customrecord_plantlink_workorder: {
    fields: {
      name: { type: 'text', required: true, label: 'Name' },
      isInactive: { type: 'checkbox', label: 'Inactive' },
      custrecord_plk_wo_sales_order: { type: 'text', label: 'Sales Order' },
      custrecord_plk_wo_status: {
        type: 'select',
        label: 'Status',
        list: WORK_ORDER_STATUS_LIST,
        options: { '1': 'Released', '2': 'Started', '3': 'Quantity Reported', '4': 'Completed', '5': 'Held', '6': 'Resumed' },
      },
      custrecord_plk_wo_good_qty: { type: 'decimal', label: 'Good Quantity' },
      custrecord_plk_wo_scrap_qty: { type: 'decimal', label: 'Scrap Quantity' },
      custrecord_plk_wo_planned_qty: { type: 'decimal', label: 'Planned Quantity' },
      custrecord_plk_wo_last_event_at: { type: 'datetime', label: 'Last Milestone At' },
      custrecord_plk_wo_product: { type: 'text', label: 'Product' },
      custrecord_plk_wo_equipment: { type: 'text', label: 'Equipment' },
      custrecord_plk_wo_plant: { type: 'text', label: 'Plant' },
    },
  },
  customrecord_plantlink_shipment: {
    fields: {
      name: { type: 'text', required: true, label: 'Name' },
      isInactive: { type: 'checkbox', label: 'Inactive' },
      custrecord_plk_sh_sales_order: { type: 'text', label: 'Sales Order' },
      custrecord_plk_sh_status: {
        type: 'select',
        label: 'Status',
        list: SHIPMENT_STATUS_LIST,
        options: { '1': 'Packed', '2': 'Shipped', '3': 'Delivered', '4': 'Exception' },
      },
      custrecord_plk_sh_carrier: { type: 'text', label: 'Carrier' },
      custrecord_plk_sh_tracking: { type: 'text', label: 'Tracking Number' },
      custrecord_plk_sh_status_at: { type: 'datetime', label: 'Status At' },
    },
  },
};

export type BodyCheck =
  | { ok: true; fields: Record<string, unknown> }
  | { ok: false; status: number; errors: NetSuiteErrorDetail[] };

const ISO_DATETIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/;

/** REST returns datetimes in UTC, ISO 8601, whole seconds (`2017-07-21T17:32:28Z`); stored that way. */
export function normalizeDatetime(value: string): string | undefined {
  if (!ISO_DATETIME.test(value)) return undefined;
  const ms = Date.parse(value.replace(/([+-]\d{2})(\d{2})$/, '$1:$2'));
  if (Number.isNaN(ms)) return undefined;
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

const invalidValue = (field: string): NetSuiteErrorDetail => ({
  detail: `Invalid value for the resource or sub-resource field '${field}'. Provide a valid value.`,
  'o:errorCode': 'INVALID_CONTENT',
  'o:errorPath': field,
});

/** Converts one JSON value to the stored value, or explains why it cannot be. */
function coerce(field: string, spec: FieldSpec, value: unknown): { value: unknown } | NetSuiteErrorDetail {
  if (value === null) return { value: null };
  switch (spec.type) {
    case 'text': {
      if (typeof value !== 'string') return invalidValue(field);
      const max = spec.maxLength ?? TEXT_MAX;
      if (value.length > max) {
        return {
          detail: `Error while accessing resource: The field ${field} contained more than the maximum number ( ${max} ) of characters allowed.`,
          'o:errorCode': 'INVALID_CONTENT',
          'o:errorPath': field,
        };
      }
      return { value };
    }
    case 'integer':
      return typeof value === 'number' && Number.isSafeInteger(value) ? { value } : invalidValue(field);
    case 'decimal':
      return typeof value === 'number' && Number.isFinite(value) ? { value } : invalidValue(field);
    case 'checkbox':
      return typeof value === 'boolean' ? { value } : invalidValue(field);
    case 'datetime': {
      const normalized = typeof value === 'string' ? normalizeDatetime(value) : undefined;
      return normalized === undefined ? invalidValue(field) : { value: normalized };
    }
    case 'select': {
      // Documented request shape for a reference: `{ "id": "1" }` (number or string).
      const raw = typeof value === 'object' && !Array.isArray(value) ? (value as { id?: unknown }).id : undefined;
      const id = typeof raw === 'number' || typeof raw === 'string' ? String(raw) : undefined;
      if (id === undefined) return invalidValue(field);
      const refName = Object.hasOwn(spec.options, id) ? spec.options[id] : undefined;
      if (refName === undefined) {
        // Documented wording and code for an invalid reference in a request body.
        return {
          detail: `Error while accessing resource: You have entered an Invalid Field Value ${id} for the following field: ${field}`,
          'o:errorCode': 'INVALID_CONTENT',
          'o:errorPath': field,
        };
      }
      return { value: { id, refName } satisfies SelectValue };
    }
  }
}

export interface UpsertTarget {
  recordType: string;
  spec: RecordTypeSpec;
  externalId: string;
  /** `X-NetSuite-PropertyNameValidation`: unknown fields are an error unless Warning or Ignore. */
  unknownFields: 'error' | 'ignore';
}

/**
 * Checks an upsert body against the record type and returns the record as it would
 * be after the write: existing values overwritten by the body, null clears a field.
 */
export function checkUpsertBody(
  target: UpsertTarget,
  body: unknown,
  existing: Readonly<Record<string, unknown>> | undefined,
  rules: readonly ValidationRule[],
): BodyCheck {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return { ok: false, status: 400, errors: [{ detail: 'The request body must be a JSON object.', 'o:errorCode': 'INVALID_CONTENT' }] };
  }
  const changes: Record<string, unknown> = {};
  const errors: NetSuiteErrorDetail[] = [];
  for (const [name, raw] of Object.entries(body)) {
    if (name === 'id' || name === 'links' || name === 'externalId') {
      errors.push({
        detail: `Error while accessing resource: The field ${name} is set by the request URL and cannot be set in the body of an upsert.`,
        'o:errorCode': 'INVALID_CONTENT',
        'o:errorPath': name,
      });
      continue;
    }
    const spec = Object.hasOwn(target.spec.fields, name) ? target.spec.fields[name] : undefined;
    if (!spec) {
      if (target.unknownFields === 'error') {
        errors.push({
          detail: `Invalid field name '${name}' for record type ${target.recordType}. Provide a valid field name.`,
          'o:errorCode': 'INVALID_CONTENT',
          'o:errorPath': name,
        });
      }
      continue;
    }
    const coerced = coerce(name, spec, raw);
    if ('o:errorCode' in coerced) errors.push(coerced);
    else changes[name] = coerced.value;
  }
  if (errors.length > 0) return { ok: false, status: 400, errors };

  const merged: Record<string, unknown> = { ...existing, ...changes };
  for (const [name, value] of Object.entries(merged)) if (value === null) delete merged[name];
  const missing = Object.entries(target.spec.fields)
    .filter(([name, spec]) => 'required' in spec && spec.required === true && merged[name] === undefined)
    .map(([name, spec]) => spec.label ?? name);
  if (missing.length > 0) {
    return { ok: false, status: 400, errors: [{ detail: `Error while accessing a resource. Please enter value(s) for: ${missing.join(', ')}`, 'o:errorCode': 'USER_ERROR' }] };
  }
  for (const rule of rules) {
    if (!rule.test(merged[rule.field], merged)) {
      errors.push({ detail: `Error while accessing a resource. ${rule.message}`, 'o:errorCode': 'USER_ERROR', 'o:errorPath': rule.field });
    }
  }
  return errors.length > 0 ? { ok: false, status: 400, errors } : { ok: true, fields: merged };
}

/** True when the two records hold the same values (field order ignored; select values by id). */
export function sameFields(a: Readonly<Record<string, unknown>>, b: Readonly<Record<string, unknown>>): boolean {
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((k) => Object.hasOwn(b, k) && sameValue(a[k], b[k]));
}

function sameValue(x: unknown, y: unknown): boolean {
  if (typeof x === 'object' && x !== null && typeof y === 'object' && y !== null) {
    return (x as SelectValue).id === (y as SelectValue).id;
  }
  return x === y;
}
