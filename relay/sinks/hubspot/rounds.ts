/**
 * Puts a batch's upserts into HubSpot calls.
 *
 * HubSpot refuses a batch call that names one record twice ("Duplicate IDs found in
 * batch input"), and two writes to one record in one call would have no defined
 * order anyway. So writes go out in rounds: a round holds at most one write per record
 * (objectType, idProperty, id), namely the earliest one still pending, and the next
 * round starts only after the previous one was answered. Writes to one record thus
 * land in batch order, which is subject order: items of a subject share their
 * latest-state records. A round is then cut into calls of at most `batchSize` inputs
 * per object type and id property.
 */
import type { UpsertWrite } from './plan.js';

export interface PendingWrite {
  /** Index of the delivery item in the batch. */
  item: number;
  /** Index of the write among the item's writes. */
  index: number;
  write: UpsertWrite;
}

export interface Call {
  objectType: string;
  inputs: PendingWrite[];
}

const recordKey = (w: UpsertWrite): string => `${w.objectType}\u0000${w.idProperty}\u0000${w.id}`;

/** The writes of the next round (earliest pending write per record) and those left for later rounds, both in batch order. */
export function nextRound(pending: readonly PendingWrite[]): { round: PendingWrite[]; later: PendingWrite[] } {
  const taken = new Set<string>();
  const round: PendingWrite[] = [];
  const later: PendingWrite[] = [];
  for (const p of pending) {
    const key = recordKey(p.write);
    if (taken.has(key)) {
      later.push(p);
    } else {
      taken.add(key);
      round.push(p);
    }
  }
  return { round, later };
}

/** Cuts a round into calls of at most `batchSize` inputs, one object type and id property per call, in order of first appearance. */
export function toCalls(round: readonly PendingWrite[], batchSize: number): Call[] {
  const groups = new Map<string, PendingWrite[]>();
  for (const p of round) {
    const key = `${p.write.objectType}\u0000${p.write.idProperty}`;
    const group = groups.get(key);
    if (group) group.push(p);
    else groups.set(key, [p]);
  }
  const calls: Call[] = [];
  for (const group of groups.values()) {
    for (let i = 0; i < group.length; i += batchSize) {
      calls.push({ objectType: group[0]!.write.objectType, inputs: group.slice(i, i + batchSize) });
    }
  }
  return calls;
}

/** Halves a call's inputs, to find which input HubSpot refused when its answer does not say. */
export function split(call: Call): [Call, Call] {
  const middle = Math.ceil(call.inputs.length / 2);
  return [
    { objectType: call.objectType, inputs: call.inputs.slice(0, middle) },
    { objectType: call.objectType, inputs: call.inputs.slice(middle) },
  ];
}
