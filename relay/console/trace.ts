/**
 * The event trace: every hop of an event from the plant to each sink, for "why is order X not
 * in the CRM?".
 *
 * Hops, in order, each with its time where known:
 * - `read`: the agent's source read the fact (the event's `readtime`, stamped by the agent);
 * - `outbox`: the agent committed it to its outbox (`outboxtime`);
 * - `received`: the relay committed it to its inbox (acked to the agent after this);
 * - `routed`: to which lanes (the same transaction as `received`);
 * - per lane `delivered` (with the record ids the target returned), `dead-lettered` (with the
 *   reason) or `pending` (attempts so far, next attempt, last error).
 * Agents older than the `readtime`/`outboxtime` attributes leave those two hops without time.
 */
import type { RelayStore, TracedEvent } from '../store/store.js';
import { MAX_QUERY_KEY } from '../store/store.js';

/** At most this many events per search; the newest ones when there are more. */
export const MAX_TRACED = 200;

export interface TraceHop {
  hop: 'read' | 'outbox' | 'received' | 'routed' | 'delivered' | 'dead-lettered' | 'pending';
  atMs: number | null;
  lane?: string;
  detail: string;
  recordIds?: string[];
}

export interface TraceEntry {
  id: string;
  type: string;
  subject: string;
  plant: string;
  agent: string;
  correlationId: string;
  salesOrder: string | null;
  timeMs: number;
  plantseq: number;
  /** What happened at the plant: the milestone or shipment status, when the event names one. */
  what: string;
  hops: TraceHop[];
  /** From reading at the source (or the event time) to the last lane's confirmation, once every lane delivered. */
  endToEndMs: number | null;
  /** What `endToEndMs` counts from: the agent's read, or (agents without `readtime`) the event's own time. */
  endToEndFrom: 'read' | 'event';
  event: Record<string, unknown>;
}

function timeAttr(event: Record<string, unknown>, name: string): number | null {
  const v = event[name];
  if (typeof v !== 'string') return null;
  const t = Date.parse(v);
  return Number.isFinite(t) ? t : null;
}

function whatHappened(event: Record<string, unknown>): string {
  const data = event.data as Record<string, unknown> | undefined;
  if (data && typeof data.milestone === 'string') return data.milestone;
  if (data && typeof data.status === 'string') return data.status;
  return String(event.type ?? '');
}

export function traceOf(e: TracedEvent): TraceEntry {
  const readMs = timeAttr(e.event, 'readtime');
  const outboxMs = timeAttr(e.event, 'outboxtime');
  const hops: TraceHop[] = [
    { hop: 'read', atMs: readMs, detail: `read at ${e.source}` },
    { hop: 'outbox', atMs: outboxMs, detail: `stored in agent ${e.agent}'s outbox as #${e.plantseq}` },
    { hop: 'received', atMs: e.receivedMs, detail: `received and stored by the relay from ${e.agent}` },
    { hop: 'routed', atMs: e.receivedMs, detail: e.deliveries.length ? `routed to ${e.deliveries.map((d) => d.lane).join(', ')}` : 'no route matched: delivered nowhere' },
  ];
  for (const d of e.deliveries) {
    if (d.status === 'delivered') {
      hops.push({ hop: 'delivered', atMs: d.updatedMs, lane: d.lane, detail: `delivered to ${d.lane}${d.attempts > 1 ? ` after ${d.attempts} attempts` : ''}`, recordIds: d.recordIds });
    } else if (d.status === 'dead') {
      hops.push({ hop: 'dead-lettered', atMs: d.updatedMs, lane: d.lane, detail: `dead-lettered by ${d.lane}: ${d.errorCode ?? 'error'}: ${d.lastError ?? ''}`.trim() });
    } else {
      const tried = d.attempts > 0 ? `${d.attempts} attempts so far, next at ${new Date(d.nextAttemptMs).toISOString()}; last error ${d.errorCode ?? ''}: ${d.lastError ?? ''}` : 'waiting for its turn';
      hops.push({ hop: 'pending', atMs: null, lane: d.lane, detail: `pending at ${d.lane}: ${tried}` });
    }
  }
  const allDelivered = e.deliveries.length > 0 && e.deliveries.every((d) => d.status === 'delivered');
  const start = readMs ?? e.timeMs;
  return {
    id: e.id,
    type: e.type,
    subject: e.subject,
    plant: e.plant,
    agent: e.agent,
    correlationId: e.correlationId,
    salesOrder: e.salesOrder,
    timeMs: e.timeMs,
    plantseq: e.plantseq,
    what: whatHappened(e.event),
    hops,
    endToEndMs: allDelivered ? Math.max(...e.deliveries.map((d) => d.updatedMs)) - start : null,
    endToEndFrom: readMs === null ? 'event' : 'read',
    event: e.event,
  };
}

/**
 * Events matching `key` (work order, shipment, sales order, correlation id or event id), oldest
 * first. When more than MAX_TRACED match, the newest MAX_TRACED, and `truncated` says so.
 */
export async function trace(store: RelayStore, key: string, plant?: string): Promise<{ key: string; events: TraceEntry[]; truncated: boolean }> {
  const k = key.trim();
  if (!k || k.length > MAX_QUERY_KEY) return { key: k, events: [], truncated: false };
  // The newest MAX_TRACED (+1 to know there are more), read newest first: one bounded query
  // however many events the key has (a sales order may have thousands).
  const newest = await store.findEvents({ key: k, plant, newestFirst: true, limit: MAX_TRACED + 1 });
  const truncated = newest.length > MAX_TRACED;
  const found = newest.slice(0, MAX_TRACED).reverse();
  return { key: k, events: found.map(traceOf), truncated };
}
