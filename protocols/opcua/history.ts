/**
 * Replays what a subscription cannot see: OPC UA Historical Access (Part 11) raw reads of
 * each item's history since the last source timestamp the caller committed. A value that
 * is changed and overwritten while no session exists (agent restart, server restart) is
 * in the server's history but never in a subscription's initial value.
 *
 * Invariants:
 * - Only values whose source timestamp, in whole ms, is strictly after `since.get(item)`.
 *   OPC UA stamps in 100 ns; the caller commits ms. A value inside the committed millisecond
 *   counts as committed, so we ask from `since + 1 ms` and filter again on our side (a
 *   server may be loose about its bounds).
 * - Per item oldest first; merged across items by source timestamp, ties in input order.
 * - One HistoryRead carries one ReadRawModifiedDetails (one startTime) for all its nodes,
 *   so items that share a `since` share a request (up to `nodesPerRequest` nodes); items
 *   with different ones cannot. Reading everything from the oldest `since` instead would
 *   re-read, and throw away, the whole history of busy items each time a rarely changing
 *   item is far behind.
 * - Every continuation point the server hands us is followed to its end or released
 *   (HistoryRead with releaseContinuationPoints), also when we fail half-way: servers keep
 *   only a few per session.
 * - A node without history is reported in `unsupported`, never thrown: the caller goes on
 *   with the subscription alone for it. Any other bad status throws (TransientError): we
 *   cannot tell whether history was lost, so the caller must not commit past it.
 * - At most `maxValuesPerItem` values per item per call. An item that has more is listed in
 *   `truncated`, and then every item's changes stop at one common horizon (just before the
 *   truncated item's last millisecond), so the result is a gap-free prefix in time: commit
 *   it and call again.
 */
import {
  HistoryData,
  HistoryReadRequest,
  ReadRawModifiedDetails,
  resolveNodeId,
  StatusCodes,
  TimestampsToReturn,
  type ClientSession,
  type DataValue,
  type HistoryReadResult,
  type NodeId,
} from 'node-opcua';
import { describeError, PermanentError, TransientError } from '../errors.js';
import { toChange, type Change } from './changes.js';

export interface HistoryItem {
  item: string;
  nodeId: NodeId | string;
}

export interface ReadHistoryOptions {
  /** End of the range (inclusive). Default: now, taken once per call. */
  until?: Date;
  /** Values read per item per call at most; more and the item is `truncated`. Default 10,000. */
  maxValuesPerItem?: number;
  /** numValuesPerNode per HistoryRead: values per item per response before a continuation point. Default 1,000. */
  chunkSize?: number;
  /** Nodes per HistoryRead request. Default 100. */
  nodesPerRequest?: number;
}

export interface HistorySince {
  /** Merged, sorted by source timestamp (ties: input item order), each item oldest first. */
  changes: Change[];
  /** Items whose node keeps no readable history (BadHistoryOperationUnsupported, BadNotReadable, BadUserAccessDenied). */
  unsupported: string[];
  /** Items that had more than `maxValuesPerItem` values; `changes` stop at a common horizon, call again after committing. */
  truncated: string[];
}

/** Statuses meaning "this node has no history for you": a fact about the node, not a failure. */
const UNSUPPORTED = new Set<number>([
  StatusCodes.BadHistoryOperationUnsupported.value,
  StatusCodes.BadNotReadable.value,
  StatusCodes.BadUserAccessDenied.value,
]);
/** The spec lets a slow server answer with no values and a continuation point; not forever. */
const MAX_EMPTY_ROUNDS = 50;

interface Read {
  item: string;
  order: number;
  nodeId: NodeId;
  sinceMs: number;
  values: DataValue[];
  continuationPoint: Buffer | undefined;
  started: boolean;
  emptyRounds: number;
  unsupported: boolean;
  truncated: boolean;
}

export async function readHistorySince(
  session: ClientSession,
  items: HistoryItem[],
  since: ReadonlyMap<string, number>,
  options: ReadHistoryOptions = {},
): Promise<HistorySince> {
  const untilMs = (options.until ?? new Date()).getTime();
  const maxValuesPerItem = options.maxValuesPerItem ?? 10_000;
  const chunkSize = options.chunkSize ?? 1000;
  const nodesPerRequest = options.nodesPerRequest ?? 100;
  if (maxValuesPerItem < 1 || chunkSize < 1 || nodesPerRequest < 1) {
    throw new PermanentError('reading history: maxValuesPerItem, chunkSize and nodesPerRequest must be >= 1');
  }

  const reads: Read[] = [];
  items.forEach(({ item, nodeId }, order) => {
    const sinceMs = since.get(item);
    // Nothing committed yet: no point to replay from. An empty range: nothing to read (and
    // startTime > endTime would make a server answer newest first).
    if (sinceMs === undefined || sinceMs + 1 > untilMs) return;
    let resolved: NodeId;
    try {
      resolved = resolveNodeId(nodeId);
    } catch (e) {
      throw new PermanentError(`reading history of ${item}: invalid NodeId "${String(nodeId)}": ${describeError(e)}`, { cause: e });
    }
    reads.push({ item, order, nodeId: resolved, sinceMs, values: [], continuationPoint: undefined, started: false, emptyRounds: 0, unsupported: false, truncated: false });
  });

  // Reads with the same `since` share a request (one ReadRawModifiedDetails per request).
  const groups = new Map<number, Read[]>();
  for (const r of reads) groups.set(r.sinceMs, [...(groups.get(r.sinceMs) ?? []), r]);
  for (const [sinceMs, group] of groups) {
    const details = new ReadRawModifiedDetails({
      isReadModified: false,
      startTime: new Date(sinceMs + 1),
      endTime: new Date(untilMs),
      numValuesPerNode: chunkSize,
      returnBounds: false,
    });
    for (let i = 0; i < group.length; i += nodesPerRequest) {
      await readToEnd(session, details, group.slice(i, i + nodesPerRequest), maxValuesPerItem);
    }
  }
  return merge(reads, untilMs);
}

/** Follows continuation points until every read is done; releases what is left on the way out. */
async function readToEnd(session: ClientSession, details: ReadRawModifiedDetails, reads: Read[], maxValuesPerItem: number): Promise<void> {
  let active = reads;
  try {
    while (active.length > 0) {
      const results = await historyRead(session, details, active, false);
      // Note every continuation point first, so a throw below still releases all of them.
      active.forEach((r, i) => (r.continuationPoint = nonEmpty(results[i]!.continuationPoint)));
      active.forEach((r, i) => accept(r, results[i]!, maxValuesPerItem));
      active = active.filter((r) => r.continuationPoint && !r.truncated);
    }
  } finally {
    const open = reads.filter((r) => r.continuationPoint);
    // Best effort: if this fails the session is likely gone, and its points with it.
    if (open.length > 0) await historyRead(session, details, open, true).catch(() => undefined);
    for (const r of reads) r.continuationPoint = undefined;
  }
}

/** Takes one result of a read into it; throws on a status we cannot act on. */
function accept(r: Read, result: HistoryReadResult, maxValuesPerItem: number): void {
  const status = result.statusCode;
  if (status.isBad()) {
    r.continuationPoint = undefined; // a bad result holds no point to release
    if (!r.started && UNSUPPORTED.has(status.value)) {
      r.unsupported = true;
      return;
    }
    throw new TransientError(`reading history of ${r.item} (${r.nodeId.toString()}): ${status.name}`);
  }
  r.started = true;
  const values = result.historyData instanceof HistoryData ? (result.historyData.dataValues ?? []) : [];
  r.emptyRounds = values.length === 0 ? r.emptyRounds + 1 : 0;
  if (r.continuationPoint && r.emptyRounds > MAX_EMPTY_ROUNDS) {
    throw new TransientError(`reading history of ${r.item}: ${MAX_EMPTY_ROUNDS} answers without values but with a continuation point`);
  }
  r.values.push(...values);
  if (r.values.length > maxValuesPerItem || (r.values.length === maxValuesPerItem && r.continuationPoint)) {
    r.values.length = maxValuesPerItem;
    r.truncated = true;
  }
}

async function historyRead(session: ClientSession, details: ReadRawModifiedDetails, reads: Read[], release: boolean): Promise<HistoryReadResult[]> {
  const request = new HistoryReadRequest({
    historyReadDetails: details,
    timestampsToReturn: TimestampsToReturn.Both,
    releaseContinuationPoints: release,
    nodesToRead: reads.map((r) => ({ nodeId: r.nodeId, continuationPoint: r.continuationPoint })),
  });
  let results: HistoryReadResult[];
  try {
    results = (await session.historyRead(request)).results ?? [];
  } catch (e) {
    throw new TransientError(`reading history (${reads.length} nodes): ${describeError(e)}`, { cause: e });
  }
  if (results.length !== reads.length) {
    throw new TransientError(`reading history: ${results.length} results for ${reads.length} nodes`);
  }
  return results;
}

function nonEmpty(continuationPoint: Buffer | null | undefined): Buffer | undefined {
  return continuationPoint && continuationPoint.length > 0 ? continuationPoint : undefined;
}

function merge(reads: Read[], untilMs: number): HistorySince {
  const truncated = reads.filter((r) => r.truncated);
  // Each truncated item may have more values in its last millisecond: stop before it
  // (unless that millisecond is all it has, 10,000 values in 1 ms: then take it and move on).
  let horizonMs = untilMs;
  const perItem = reads.map((r) => ({ r, changes: r.values.map((v) => toChange(r.item, r.order, v, 0)) }));
  for (const { r, changes } of perItem) {
    if (!r.truncated) continue;
    const lastMs = changes[changes.length - 1]!.sourceTimestampMs;
    horizonMs = Math.min(horizonMs, changes[0]!.sourceTimestampMs < lastMs ? lastMs - 1 : lastMs);
  }
  const kept = perItem.flatMap(({ r, changes }) =>
    changes.filter((c) => c.sourceTimestampMs > r.sinceMs && c.sourceTimestampMs <= horizonMs),
  );
  // Array.prototype.sort is stable: within an item and a millisecond, the server's order stays.
  kept.sort((a, b) => a.sourceTimestampMs - b.sourceTimestampMs || a.order - b.order);
  return {
    changes: kept.map(({ item, value, sourceTimestampMs, statusGood, status }) => ({ item, value, sourceTimestampMs, statusGood, status })),
    unsupported: reads.filter((r) => r.unsupported).map((r) => r.item),
    truncated: truncated.map((r) => r.item),
  };
}
