/**
 * Packs the record writes of a batch into sObject Collections upsert calls, run in
 * rounds: every call of a round may run at once; round n+1 starts when round n is done.
 *
 * Invariants:
 * - A call carries records of one (object, externalIdField), at most `maxRecordsPerCall`
 *   of them, and never one external id twice: Salesforce fails every record that shares
 *   an external id within one request ("Duplicate external id specified").
 * - A record goes in a later round than every earlier record (batch order) with the same
 *   object, field and external id, so repeated writes of a record land in batch order.
 * - An item's writes go in successive rounds, in mapping order, so a call that fails
 *   transiently (which halts the batch) leaves none of the item's later writes done,
 *   as when records were written one by one.
 * - Every record of an item goes in a later round than every record of the earlier
 *   items with the same subject, so a subject's items are applied one after another.
 * - Within a call, records follow batch order.
 * The inbox hands a sink one item per subject at a time, so a batch usually takes as
 * many rounds as an item has writes, each `ceil(records / maxRecordsPerCall)` calls per
 * (object, field): 450 milestone events make 3 Production_Milestone__c calls, then 3
 * Production_Order__c calls.
 */
import type { RecordWrite } from './plan.js';

export interface CallRecord {
  /** Index of the item in the batch. */
  item: number;
  /** Index of the write among the item's writes (mapping order). */
  write: number;
  externalId: string;
  body: Record<string, unknown>;
}

export interface CollectionCall {
  object: string;
  externalIdField: string;
  records: CallRecord[];
}

export interface PlannedItem {
  subject: string;
  /** undefined for an item with nothing to write (rejected before any call). */
  writes: readonly RecordWrite[] | undefined;
}

// External id matching is case-insensitive for text external id fields unless the field is
// "unique, case sensitive"; treating case variants as one id costs at most an extra call.
const recordKey = (w: RecordWrite): string => `${w.object}\u0000${w.externalIdField}\u0000${w.externalId.toLowerCase()}`;

/** Rounds of calls for `items`; items without writes take no part. */
export function planCalls(items: readonly PlannedItem[], maxRecordsPerCall: number): CollectionCall[][] {
  /** round -> "object field" -> records of that round and group, in batch order. */
  const groupsByRound: Map<string, CallRecord[]>[] = [];
  const groupNames = new Map<string, { object: string; externalIdField: string }>();
  const nextRoundOfSubject = new Map<string, number>();
  const nextRoundOfKey = new Map<string, number>();

  items.forEach((item, index) => {
    if (!item.writes || item.writes.length === 0) return;
    let earliest = nextRoundOfSubject.get(item.subject) ?? 0;
    item.writes.forEach((w, write) => {
      const key = recordKey(w);
      const round = Math.max(earliest, nextRoundOfKey.get(key) ?? 0);
      nextRoundOfKey.set(key, round + 1);
      earliest = round + 1;
      const group = `${w.object}\u0000${w.externalIdField}`;
      groupNames.set(group, { object: w.object, externalIdField: w.externalIdField });
      const groups = (groupsByRound[round] ??= new Map());
      let records = groups.get(group);
      if (!records) groups.set(group, (records = []));
      records.push({ item: index, write, externalId: w.externalId, body: w.body });
    });
    nextRoundOfSubject.set(item.subject, earliest);
  });

  // A record's round is at most one past the highest so far, so rounds have no gaps.
  return groupsByRound.map((groups) =>
    [...groups.entries()].flatMap(([group, records]) => {
      const names = groupNames.get(group)!;
      const calls: CollectionCall[] = [];
      for (let i = 0; i < records.length; i += maxRecordsPerCall) calls.push({ ...names, records: records.slice(i, i + maxRecordsPerCall) });
      return calls;
    }),
  );
}
