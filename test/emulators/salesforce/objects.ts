/**
 * The emulated org's schema (custom objects and their fields) and the checks an
 * upsert body goes through, in Salesforce's order: JSON deserialisation (unknown
 * field, wrong JSON type) stops at the first problem; then field-level checks
 * (restricted picklist, text length, required fields) report every failing field;
 * validation rules run last, on the merged record, only when everything else passed.
 */

export interface SObjectFieldSpec {
  type: 'string' | 'number' | 'datetime' | 'boolean';
  required?: boolean;
  /** Text length limit; Salesforce's default text field is 255. */
  maxLength?: number;
  /** Restricted picklist: any other value is rejected. */
  picklist?: string[];
  externalId?: boolean;
}

export type SObjectSpec = Record<string, SObjectFieldSpec>;

export interface SalesforceError {
  message: string;
  errorCode: string;
  fields?: string[];
}

export interface ValidationRule {
  field: string;
  /** Returns true when the value is acceptable. */
  test: (value: unknown, record: Record<string, unknown>) => boolean;
  message: string;
}

const MILESTONES = ['released', 'started', 'quantity-reported', 'completed', 'held', 'resumed'];
const SHIPMENT_STATUSES = ['packed', 'shipped', 'delivered', 'exception'];
const DEFAULT_TEXT_LENGTH = 255;

export const defaultObjects: Record<string, SObjectSpec> = {
  Production_Milestone__c: {
    Plantlink_Event_Id__c: { type: 'string', externalId: true, required: true, maxLength: 128 },
    Work_Order__c: { type: 'string', required: true, maxLength: 80 },
    Sales_Order__c: { type: 'string', maxLength: 128 },
    Milestone__c: { type: 'string', required: true, picklist: MILESTONES },
    Good_Quantity__c: { type: 'number' },
    Scrap_Quantity__c: { type: 'number' },
    Equipment__c: { type: 'string', maxLength: 128 },
    Occurred_At__c: { type: 'datetime', required: true },
    Plant__c: { type: 'string', maxLength: 64 },
  },
  Production_Order__c: {
    Work_Order_Number__c: { type: 'string', externalId: true, required: true, maxLength: 128 },
    Sales_Order__c: { type: 'string', maxLength: 128 },
    Status__c: { type: 'string', picklist: MILESTONES },
    Good_Quantity__c: { type: 'number' },
    Planned_Quantity__c: { type: 'number' },
    Last_Milestone_At__c: { type: 'datetime' },
    Plant__c: { type: 'string', maxLength: 64 },
    Product__c: { type: 'string', maxLength: 128 },
  },
  Shipment__c: {
    Shipment_Number__c: { type: 'string', externalId: true, required: true, maxLength: 128 },
    Sales_Order__c: { type: 'string', maxLength: 128 },
    Status__c: { type: 'string', picklist: SHIPMENT_STATUSES },
    Carrier__c: { type: 'string', maxLength: 128 },
    Tracking_Number__c: { type: 'string', maxLength: 128 },
    Status_At__c: { type: 'datetime' },
  },
};

export type BodyCheck =
  | { ok: true; fields: Record<string, unknown> }
  | { ok: false; status: number; errors: SalesforceError[] };

const fail = (status: number, ...errors: SalesforceError[]): BodyCheck => ({ ok: false, status, errors });

/** Jackson-style token name, as Salesforce's JSON_PARSER_ERROR messages show them. */
function jsonToken(value: unknown): string {
  if (typeof value === 'string') return 'VALUE_STRING';
  if (typeof value === 'number') return Number.isInteger(value) ? 'VALUE_NUMBER_INT' : 'VALUE_NUMBER_FLOAT';
  if (typeof value === 'boolean') return value ? 'VALUE_TRUE' : 'VALUE_FALSE';
  if (Array.isArray(value)) return 'START_ARRAY';
  return 'START_OBJECT';
}

const ISO_DATETIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?$/;

/** Salesforce returns datetimes as `2024-05-01T10:00:00.000+0000`; stored that way so equal instants compare equal. */
export function normalizeDatetime(value: string): string | undefined {
  if (!ISO_DATETIME.test(value)) return undefined;
  const ms = Date.parse(value.replace(/([+-]\d{2})(\d{2})$/, '$1:$2'));
  if (Number.isNaN(ms)) return undefined;
  return new Date(ms).toISOString().replace('Z', '+0000');
}

const sfTypeName: Record<SObjectFieldSpec['type'], string> = {
  string: 'string',
  number: 'double',
  datetime: 'datetime',
  boolean: 'boolean',
};

function deserializeError(spec: SObjectFieldSpec, value: unknown): SalesforceError {
  const shown = typeof value === 'object' ? '' : ` value ${String(value)}`;
  return {
    message: `Cannot deserialize instance of ${sfTypeName[spec.type]} from ${jsonToken(value)}${shown} or request may be missing a required field at [line:1, column:1]`,
    errorCode: 'JSON_PARSER_ERROR',
  };
}

/** Converts one JSON value to the stored value, or explains why it cannot be. */
function coerce(spec: SObjectFieldSpec, value: unknown): { value: unknown } | SalesforceError {
  if (value === null) return { value: null };
  switch (spec.type) {
    case 'string':
      return typeof value === 'string' ? { value } : deserializeError(spec, value);
    case 'number':
      return typeof value === 'number' && Number.isFinite(value) ? { value } : deserializeError(spec, value);
    case 'boolean':
      return typeof value === 'boolean' ? { value } : deserializeError(spec, value);
    case 'datetime': {
      const normalized = typeof value === 'string' ? normalizeDatetime(value) : undefined;
      return normalized === undefined ? deserializeError(spec, value) : { value: normalized };
    }
  }
}

export interface UpsertTarget {
  object: string;
  spec: SObjectSpec;
  externalIdField: string;
  externalId: string;
}

/**
 * Checks an upsert body against the object's fields and returns the record as it
 * would be after the write (existing values, overwritten by the body; null clears).
 */
export function checkUpsertBody(
  target: UpsertTarget,
  body: unknown,
  existing: Record<string, unknown> | undefined,
  rules: readonly ValidationRule[],
): BodyCheck {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return fail(400, {
      message: `Cannot deserialize instance of ${target.object} from ${jsonToken(body)} at [line:1, column:1]`,
      errorCode: 'JSON_PARSER_ERROR',
    });
  }
  const changes: Record<string, unknown> = {};
  for (const [name, raw] of Object.entries(body)) {
    if (name === 'attributes') continue;
    if (name === 'Id' || name === target.externalIdField) {
      // Documented: "Do not specify Id or an external ID field in the request body or an error is generated."
      return fail(400, {
        message: `${name} is not allowed in the request body of an upsert by ${target.externalIdField}; the URL identifies the record`,
        errorCode: 'INVALID_FIELD',
        fields: [name],
      });
    }
    const spec = Object.hasOwn(target.spec, name) ? target.spec[name] : undefined;
    if (!spec) {
      return fail(400, { message: `No such column '${name}' on sobject of type ${target.object}`, errorCode: 'INVALID_FIELD', fields: [] });
    }
    const coerced = coerce(spec, raw);
    if ('errorCode' in coerced) return fail(400, coerced);
    changes[name] = coerced.value;
  }

  const errors: SalesforceError[] = [];
  for (const [name, value] of Object.entries(changes)) {
    if (typeof value !== 'string') continue;
    const spec = target.spec[name]!;
    if (spec.picklist && !spec.picklist.includes(value)) {
      errors.push({ message: `bad value for restricted picklist field: ${value}`, errorCode: 'INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST', fields: [name] });
    } else if (spec.type === 'string' && value.length > (spec.maxLength ?? DEFAULT_TEXT_LENGTH)) {
      errors.push({
        message: `${name}: data value too large: ${value.slice(0, 40)}${value.length > 40 ? '...' : ''} (max length=${spec.maxLength ?? DEFAULT_TEXT_LENGTH})`,
        errorCode: 'STRING_TOO_LONG',
        fields: [name],
      });
    }
  }

  const merged: Record<string, unknown> = { ...existing, ...changes, [target.externalIdField]: target.externalId };
  for (const [name, value] of Object.entries(merged)) if (value === null) delete merged[name];
  const missing = Object.entries(target.spec)
    .filter(([name, spec]) => spec.required && merged[name] === undefined)
    .map(([name]) => name);
  if (missing.length > 0) {
    errors.push({ message: `Required fields are missing: [${missing.join(', ')}]`, errorCode: 'REQUIRED_FIELD_MISSING', fields: missing });
  }
  if (errors.length > 0) return fail(400, ...errors);

  for (const rule of rules) {
    if (!rule.test(merged[rule.field], merged)) {
      errors.push({ message: rule.message, errorCode: 'FIELD_CUSTOM_VALIDATION_EXCEPTION', fields: [rule.field] });
    }
  }
  return errors.length > 0 ? fail(400, ...errors) : { ok: true, fields: merged };
}

/** True when the two records hold the same values (field order ignored). */
export function sameFields(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
}
