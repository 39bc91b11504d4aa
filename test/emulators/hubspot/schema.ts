/**
 * The emulated portal's schema (objects and their properties) and the checks a batch
 * upsert input goes through, with HubSpot's error shapes (see README.md for what is
 * documented and what is assumed).
 *
 * - Every property value is stored as a string, as HubSpot returns them; numbers and
 *   datetimes are stored in one canonical form, so equal values written in different
 *   forms compare equal (and "redelivery changed nothing" holds).
 * - An empty string clears a property.
 * - Input checks report every failing property of an input (HubSpot's
 *   "Property values were not valid: [...]" lists them all); validation rules run last,
 *   on the merged record, only when the values themselves passed.
 */

export interface PropertySpec {
  type: 'string' | 'number' | 'datetime' | 'bool' | 'enumeration';
  /** Option values of an enumeration property; any other value is INVALID_OPTION. */
  options?: readonly string[];
  /** HubSpot's `hasUniqueValue`: no two records share a value; usable as `idProperty`. */
  hasUniqueValue?: boolean;
}

export interface ObjectSpec {
  /** `0-3` for deals, `2-<n>` for custom objects. */
  objectTypeId: string;
  /** Other names the object is addressed by in URLs (e.g. `deal`, `0-3`). */
  aliases?: readonly string[];
  properties: Readonly<Record<string, PropertySpec>>;
}

/** One property check result, as HubSpot lists them in "Property values were not valid: [...]". */
export interface ValidationResult {
  isValid: false;
  message: string;
  error: string;
  name: string;
}

export interface ValidationRule {
  property: string;
  /** Returns true when the value (undefined when unset) is acceptable; `record` is the merged record. */
  test: (value: string | undefined, record: Readonly<Record<string, string>>) => boolean;
  message: string;
}

const MILESTONES = ['released', 'started', 'quantity-reported', 'completed', 'held', 'resumed'];
const SHIPMENT_STATUSES = ['packed', 'shipped', 'delivered', 'exception'];

/**
 * plantlink's standard objects: one milestone record per event, the latest status per
 * work order, the latest status per shipment; and `deals` with a unique work order
 * property, for portals that keep production status on the deal.
 */
export const defaultObjects: Record<string, ObjectSpec> = {
  p_plantlink_milestones: {
    objectTypeId: '2-1001',
    properties: {
      plantlink_event_id: { type: 'string', hasUniqueValue: true },
      plantlink_work_order: { type: 'string' },
      plantlink_sales_order: { type: 'string' },
      plantlink_milestone: { type: 'enumeration', options: MILESTONES },
      plantlink_good_quantity: { type: 'number' },
      plantlink_scrap_quantity: { type: 'number' },
      plantlink_equipment: { type: 'string' },
      plantlink_occurred_at: { type: 'datetime' },
      plantlink_plant: { type: 'string' },
    },
  },
  p_plantlink_work_orders: {
    objectTypeId: '2-1002',
    properties: {
      plantlink_work_order: { type: 'string', hasUniqueValue: true },
      plantlink_sales_order: { type: 'string' },
      plantlink_status: { type: 'enumeration', options: MILESTONES },
      plantlink_good_quantity: { type: 'number' },
      plantlink_planned_quantity: { type: 'number' },
      plantlink_last_milestone_at: { type: 'datetime' },
      plantlink_plant: { type: 'string' },
      plantlink_product: { type: 'string' },
    },
  },
  p_plantlink_shipments: {
    objectTypeId: '2-1003',
    properties: {
      plantlink_shipment: { type: 'string', hasUniqueValue: true },
      plantlink_sales_order: { type: 'string' },
      plantlink_status: { type: 'enumeration', options: SHIPMENT_STATUSES },
      plantlink_carrier: { type: 'string' },
      plantlink_tracking_number: { type: 'string' },
      plantlink_status_at: { type: 'datetime' },
    },
  },
  deals: {
    objectTypeId: '0-3',
    aliases: ['deal'],
    properties: {
      dealname: { type: 'string' },
      amount: { type: 'number' },
      closedate: { type: 'datetime' },
      plantlink_work_order: { type: 'string', hasUniqueValue: true },
      plantlink_status: { type: 'enumeration', options: MILESTONES },
      plantlink_good_quantity: { type: 'number' },
      plantlink_last_milestone_at: { type: 'datetime' },
    },
  },
};

const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;
const ISO_DATETIME = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/;

/** Datetimes are accepted as ISO 8601 or epoch milliseconds and stored as `2024-05-01T08:00:00.000Z`. */
export function normalizeDatetime(raw: string): string | undefined {
  if (/^\d{1,15}$/.test(raw)) return new Date(Number(raw)).toISOString();
  if (!ISO_DATETIME.test(raw)) return undefined;
  const ms = Date.parse(raw.replace(/([+-]\d{2})(\d{2})$/, '$1:$2'));
  return Number.isNaN(ms) ? undefined : new Date(ms).toISOString();
}

const invalid = (name: string, error: string, message: string): ValidationResult => ({ isValid: false, message, error, name });

/** Converts one JSON value to the stored string, or explains why it cannot be. */
function coerce(name: string, spec: PropertySpec, raw: unknown): { value: string } | ValidationResult {
  if (raw === null) return { value: '' };
  if (typeof raw !== 'string' && typeof raw !== 'number' && typeof raw !== 'boolean') {
    return invalid(name, 'INVALID_PROPERTY_VALUE', `${JSON.stringify(raw)} is not a valid value for a property`);
  }
  const text = String(raw);
  if (text === '') return { value: '' };
  switch (spec.type) {
    case 'string':
      return { value: text };
    case 'number':
      return NUMBER.test(text.trim()) ? { value: String(Number(text)) } : invalid(name, 'INVALID_DECIMAL', `${text} was not a valid number.`);
    case 'bool':
      return text === 'true' || text === 'false' ? { value: text } : invalid(name, 'INVALID_BOOLEAN', `${text} was not a valid boolean.`);
    case 'datetime': {
      const value = normalizeDatetime(text);
      // HubSpot's datetime validator speaks of epoch milliseconds ("long").
      return value === undefined ? invalid(name, 'INVALID_LONG', `${text} was not a valid long.`) : { value };
    }
    case 'enumeration':
      return spec.options?.includes(text)
        ? { value: text }
        : invalid(name, 'INVALID_OPTION', `${text} was not one of the allowed options: [${(spec.options ?? []).join(', ')}]`);
  }
}

export type InputCheck = { ok: true; changes: Record<string, string> } | { ok: false; results: ValidationResult[] };

export interface InputTarget {
  spec: ObjectSpec;
  idProperty: string;
  id: string;
  /** The record's current properties, when it exists. */
  existing: Readonly<Record<string, string>> | undefined;
  /** Finds the record holding a unique property's value, if any: its id property value, to tell "this record" from another. */
  holderOf: (property: string, value: string) => string | undefined;
  rules: readonly ValidationRule[];
}

/** Checks one input's `properties` and returns the changes to apply (the id property included). */
export function checkInput(target: InputTarget, properties: Record<string, unknown>): InputCheck {
  const results: ValidationResult[] = [];
  const changes: Record<string, string> = {};
  for (const [name, raw] of Object.entries(properties)) {
    const spec = Object.hasOwn(target.spec.properties, name) ? target.spec.properties[name] : undefined;
    if (!spec) {
      results.push(invalid(name, 'PROPERTY_DOESNT_EXIST', `Property "${name}" does not exist`));
      continue;
    }
    const coerced = coerce(name, spec, raw);
    if ('error' in coerced) {
      results.push(coerced);
      continue;
    }
    if (name === target.idProperty && coerced.value !== target.id) {
      results.push(invalid(name, 'INVALID_PROPERTY_VALUE', `${name} is the idProperty of this upsert; its value must be the input's id ${target.id}`));
      continue;
    }
    changes[name] = coerced.value;
  }
  changes[target.idProperty] = target.id;

  for (const [name, value] of Object.entries(changes)) {
    if (name === target.idProperty || value === '' || !target.spec.properties[name]?.hasUniqueValue) continue;
    const holder = target.holderOf(name, value);
    if (holder !== undefined && holder !== target.id) {
      results.push(invalid(name, 'DUPLICATE_UNIQUE_VALUE', `${value} is already the ${name} of another record; ${name} has unique values`));
    }
  }
  if (results.length > 0) return { ok: false, results };

  const merged = mergeProperties(target.existing ?? {}, changes);
  for (const rule of target.rules) {
    if (!rule.test(merged[rule.property], merged)) results.push(invalid(rule.property, 'VALIDATION_RULE_FAILED', rule.message));
  }
  return results.length > 0 ? { ok: false, results } : { ok: true, changes };
}

/** The record after an upsert: existing values, overwritten by the changes; an empty string clears. */
export function mergeProperties(existing: Readonly<Record<string, string>>, changes: Readonly<Record<string, string>>): Record<string, string> {
  const merged: Record<string, string> = { ...existing, ...changes };
  for (const [name, value] of Object.entries(merged)) if (value === '') delete merged[name];
  return merged;
}

/** True when the two records hold the same values (order ignored). */
export function sameProperties(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
}

/** HubSpot's wording for a failed input: the validation results, JSON-encoded inside the message. */
export function validationMessage(results: readonly ValidationResult[]): string {
  return `Property values were not valid: ${JSON.stringify(results)}`;
}

/** The `errors[]` details HubSpot adds to a validation error. */
export function validationDetails(results: readonly ValidationResult[]): { message: string; code: string; context: { propertyName: string[] } }[] {
  return results.map((r) => ({ message: r.message, code: r.error, context: { propertyName: [r.name] } }));
}
