/**
 * The emulated org's records, shared by both upsert endpoints (sObject Rows by External
 * ID, one record per request, and sObject Collections, up to 200 per request), so they
 * count and change records the same way.
 *
 * Invariants:
 * - An upsert is checked first (`prepare`, which writes nothing) and applied after
 *   (`apply`); a rejected upsert changes nothing.
 * - Per record, `writes` counts every applied upsert and `changes` those that changed a
 *   stored value (a create counts as both), so "redelivery changed nothing" is `changes`
 *   unchanged while `writes` grew.
 * - More than one record per external id exists only through `seedDuplicate`.
 * - A deleted record's id is remembered, so deleting it again answers ENTITY_IS_DELETED.
 * - `removeByExternalId` and `setFields` change records "behind the relay's back"
 *   (another user or integration): no validation, and `writes`/`changes` stay as they are.
 */
import { IdGenerator, keyPrefix } from './ids.js';
import { checkUpsertBody, sameFields, type SalesforceError, type SObjectSpec, type ValidationRule } from './objects.js';

export interface UpsertRecord {
  object: string;
  externalIdField: string;
  externalId: string;
  id: string;
  fields: Record<string, unknown>;
  createdAt: number;
  writes: number;
  changes: number;
}

export interface UpsertEvent {
  record: UpsertRecord;
  created: boolean;
  changed: boolean;
}

export interface WriteCounters {
  upserts: number;
  created: number;
  updated: number;
  unchanged: number;
}

/** A checked upsert, ready for `apply`, or why it is refused. */
export type PreparedUpsert =
  | { ok: true; object: string; externalIdField: string; externalId: string; fields: Record<string, unknown>; existing: UpsertRecord | undefined }
  | { ok: false; status: number; errors: SalesforceError[] };

export class RecordStore {
  readonly counters: WriteCounters = { upserts: 0, created: 0, updated: 0, unchanged: 0 };

  private readonly prefixes = new Map<string, string>();
  private readonly ids = new IdGenerator();
  /** object -> external id -> matching records. */
  private readonly byObject = new Map<string, Map<string, UpsertRecord[]>>();
  private readonly deletedIds = new Set<string>();

  constructor(private readonly objects: Record<string, SObjectSpec>) {
    Object.keys(objects).forEach((name, i) => this.prefixes.set(name, keyPrefix(i)));
  }

  /** The object's fields when `field` is one of its external id fields; else undefined (Salesforce: 404). */
  externalIdSpec(object: string, field: string): SObjectSpec | undefined {
    const spec = Object.hasOwn(this.objects, object) ? this.objects[object] : undefined;
    const fieldSpec = spec && Object.hasOwn(spec, field) ? spec[field] : undefined;
    return fieldSpec?.externalId ? spec : undefined;
  }

  matches(object: string, externalId: string): readonly UpsertRecord[] {
    return this.byObject.get(object)?.get(externalId) ?? [];
  }

  records(object: string): UpsertRecord[] {
    const byId = this.byObject.get(object);
    return byId ? [...byId.values()].flat().map(copyRecord) : [];
  }

  record(object: string, externalId: string): UpsertRecord | undefined {
    const found = this.matches(object, externalId)[0];
    return found && copyRecord(found);
  }

  /**
   * Checks an upsert of `body` into the record matching `externalId` (the caller has
   * already refused several matches). Writes nothing.
   */
  prepare(
    target: { object: string; spec: SObjectSpec; externalIdField: string; externalId: string },
    body: unknown,
    rules: readonly ValidationRule[],
  ): PreparedUpsert {
    const existing = this.matches(target.object, target.externalId)[0];
    const check = checkUpsertBody(target, body, existing?.fields, rules);
    if (!check.ok) return check;
    return { ok: true, object: target.object, externalIdField: target.externalIdField, externalId: target.externalId, fields: check.fields, existing };
  }

  /** Applies a prepared upsert: updates the matching record, or creates one. */
  apply(prepared: Extract<PreparedUpsert, { ok: true }>): UpsertEvent {
    this.counters.upserts++;
    const { existing } = prepared;
    if (existing) {
      const changed = !sameFields(existing.fields, prepared.fields);
      existing.fields = prepared.fields;
      existing.writes++;
      if (changed) {
        existing.changes++;
        this.counters.updated++;
      } else {
        this.counters.unchanged++;
      }
      return { record: copyRecord(existing), created: false, changed };
    }
    const record: UpsertRecord = {
      object: prepared.object,
      externalIdField: prepared.externalIdField,
      externalId: prepared.externalId,
      id: this.ids.next(this.prefixes.get(prepared.object)!),
      fields: prepared.fields,
      createdAt: Date.now(),
      writes: 1,
      changes: 1,
    };
    let byId = this.byObject.get(prepared.object);
    if (!byId) this.byObject.set(prepared.object, (byId = new Map()));
    byId.set(prepared.externalId, [record]);
    this.counters.created++;
    return { record: copyRecord(record), created: true, changed: true };
  }

  /** Adds a second record with an existing external id, as a non-unique external id field allows; returns it. */
  seedDuplicate(object: string, externalId: string): UpsertRecord {
    const matches = this.byObject.get(object)?.get(externalId);
    if (!matches?.[0]) throw new Error(`no ${object} record with external id ${externalId} to duplicate`);
    const duplicate = { ...copyRecord(matches[0]), id: this.ids.next(this.prefixes.get(object)!), createdAt: Date.now(), writes: 1, changes: 1 };
    matches.push(duplicate);
    return copyRecord(duplicate);
  }

  /** The object's schema, when the org has it. */
  spec(object: string): SObjectSpec | undefined {
    return Object.hasOwn(this.objects, object) ? this.objects[object] : undefined;
  }

  /** The live records of an object in creation order (not copies: callers only read). */
  scan(object: string): readonly UpsertRecord[] {
    const byId = this.byObject.get(object);
    return byId ? [...byId.values()].flat().sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1)) : [];
  }

  /** Every live record of every object. */
  scanAll(): readonly UpsertRecord[] {
    return [...this.byObject.keys()].flatMap((object) => this.scan(object));
  }

  wasDeleted(id: string): boolean {
    return this.deletedIds.has(id);
  }

  /** Deletes the record with this Salesforce id: 'deleted', 'already-deleted' or 'unknown'. */
  deleteById(id: string): 'deleted' | 'already-deleted' | 'unknown' {
    if (this.deletedIds.has(id)) return 'already-deleted';
    for (const byExternalId of this.byObject.values()) {
      for (const [externalId, list] of byExternalId) {
        const index = list.findIndex((r) => r.id === id);
        if (index < 0) continue;
        list.splice(index, 1);
        if (list.length === 0) byExternalId.delete(externalId);
        this.deletedIds.add(id);
        return 'deleted';
      }
    }
    return 'unknown';
  }

  /** Deletes every record with this external id (as a user deleting it in the UI); returns how many. */
  removeByExternalId(object: string, externalId: string): number {
    const matches = [...this.matches(object, externalId)];
    for (const record of matches) this.deleteById(record.id);
    return matches.length;
  }

  /** Overwrites fields of the first record with this external id (null clears one); false when there is none. */
  setFields(object: string, externalId: string, fields: Record<string, unknown>): boolean {
    const record = this.matches(object, externalId)[0];
    if (!record) return false;
    for (const [name, value] of Object.entries(fields)) {
      if (value === null) delete record.fields[name];
      else record.fields[name] = value;
    }
    return true;
  }
}

export function copyRecord(record: UpsertRecord): UpsertRecord {
  return { ...record, fields: { ...record.fields } };
}

export function recordUrl(version: string, record: UpsertRecord): string {
  return `/services/data/${version}/sobjects/${record.object}/${record.id}`;
}
