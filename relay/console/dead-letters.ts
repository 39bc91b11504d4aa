/**
 * Dead letters as the cloud team thinks of them: by business impact (which orders and
 * shipments the CRM is missing) and by cause (what has to be fixed before a replay helps),
 * classified from the permanent error's code that the sink stored.
 */
import { PRODUCTION_MILESTONE_V1 } from '../../protocols/events/production-milestone.v1.js';
import { SHIPMENT_V1 } from '../../protocols/events/shipment.v1.js';
import type { DeliveryRow, RelayStore } from '../store/store.js';

export type Cause = 'validation' | 'mapping' | 'auth' | 'rate_limit' | 'other';
export type Impact = 'orders_blocked' | 'shipments_not_reflected' | 'other';

export const CAUSE_LABELS: Record<Cause, string> = {
  validation: 'the target refused the record (a validation rule, a required or malformed field)',
  mapping: 'the event does not map onto the target (no mapping, unknown object or field)',
  auth: 'credentials or permissions refused',
  rate_limit: 'rate limit or API quota exhausted',
  other: 'not classified; see the reason',
};

export const IMPACT_LABELS: Record<Impact, string> = {
  orders_blocked: 'Orders whose milestones are blocked',
  shipments_not_reflected: 'Shipments not reflected',
  other: 'Other events',
};

/** First match wins; codes are Salesforce/HubSpot/NetSuite error codes or plantlink's own (`mapping_error`, `http_<status>`). */
const CAUSE_RULES: [RegExp, Cause][] = [
  [/^(mapping_error|no_mapping|unmappable_attribute|INVALID_FIELD|INVALID_TYPE|NOT_FOUND|http_404)$/i, 'mapping'],
  [/(SESSION|AUTH|LOGIN|ACCESS|PERMISSION|invalid_client|invalid_grant|unauthorized|private_key|instance_url|^http_40[13]$)/i, 'auth'],
  [/(LIMIT_EXCEEDED|RATE_LIMIT|throttl|QUOTA|^http_429$)/i, 'rate_limit'],
  [/(VALIDATION|REQUIRED|TOO_LONG|INVALID|DUPLICATE|INTEGRITY|PICKLIST|^http_4(00|09|22)$)/i, 'validation'],
];

export function causeOf(code: string | null): Cause {
  if (!code) return 'other';
  return CAUSE_RULES.find(([re]) => re.test(code))?.[1] ?? 'other';
}

export function impactOf(type: string): Impact {
  if (type === PRODUCTION_MILESTONE_V1) return 'orders_blocked';
  if (type === SHIPMENT_V1) return 'shipments_not_reflected';
  return 'other';
}

export interface DeadLetterItem {
  sink: string;
  seq: number;
  id: string;
  type: string;
  plant: string;
  subject: string;
  /** The subject without its kind: the work order or shipment number. */
  businessKey: string;
  salesOrder: string | undefined;
  correlationId: string;
  code: string | null;
  cause: Cause;
  impact: Impact;
  reason: string | null;
  attempts: number;
  updatedMs: number;
  payload: unknown;
}

export interface DeadLetterView {
  /** Dead letters in the store (up to the listing cap). */
  total: number;
  items: DeadLetterItem[];
  byImpact: { impact: Impact; label: string; count: number; businessKeys: string[]; salesOrders: string[] }[];
  byCause: { cause: Cause; label: string; count: number; codes: string[] }[];
}

/** What a console replay may select, beyond one or more (sink, seq). */
export interface ConsoleFilter {
  cause?: Cause | undefined;
  impact?: Impact | undefined;
  sink?: string | undefined;
  code?: string | undefined;
  plant?: string | undefined;
}

export const MAX_LISTED = 10_000;
/** Payloads are loaded for this many (one store read each); the others are listed without. */
const MAX_DETAILED = 200;

export function matches(item: Pick<DeadLetterItem, 'cause' | 'impact' | 'sink' | 'code' | 'plant'>, f: ConsoleFilter): boolean {
  return (
    (f.cause === undefined || item.cause === f.cause) &&
    (f.impact === undefined || item.impact === f.impact) &&
    (f.sink === undefined || item.sink === f.sink) &&
    (f.code === undefined || item.code === f.code) &&
    (f.plant === undefined || item.plant === f.plant)
  );
}

function itemOf(row: DeliveryRow, event: unknown): DeadLetterItem {
  const data = (event as { data?: { salesOrder?: unknown } } | undefined)?.data;
  return {
    sink: row.sink,
    seq: row.inboxSeq,
    id: row.id,
    type: row.type,
    plant: row.plant,
    subject: row.subject,
    businessKey: row.subject.includes('/') ? row.subject.slice(row.subject.indexOf('/') + 1) : row.subject,
    salesOrder: typeof data?.salesOrder === 'string' ? data.salesOrder : undefined,
    correlationId: row.correlationId,
    code: row.errorCode,
    cause: causeOf(row.errorCode),
    impact: impactOf(row.type),
    reason: row.lastError,
    attempts: row.attempts,
    updatedMs: row.updatedMs,
    payload: event,
  };
}

/** All dead letters (up to MAX_LISTED), newest first; payloads for the first MAX_DETAILED. */
export async function listDeadLetters(store: RelayStore): Promise<DeadLetterItem[]> {
  const rows = await store.listDeliveries({ status: 'dead', limit: MAX_LISTED });
  rows.sort((a, b) => b.updatedMs - a.updatedMs || b.inboxSeq - a.inboxSeq);
  const detailed = await Promise.all(rows.slice(0, MAX_DETAILED).map((r) => store.getDelivery(r.sink, r.inboxSeq)));
  return rows.map((r, i) => itemOf(r, detailed[i]?.event));
}

export function group(items: DeadLetterItem[]): DeadLetterView {
  const impacts = new Map<Impact, { count: number; keys: Set<string>; orders: Set<string> }>();
  const causes = new Map<Cause, { count: number; codes: Set<string> }>();
  for (const it of items) {
    let i = impacts.get(it.impact);
    if (!i) impacts.set(it.impact, (i = { count: 0, keys: new Set(), orders: new Set() }));
    i.count++;
    i.keys.add(it.businessKey);
    if (it.salesOrder) i.orders.add(it.salesOrder);
    let c = causes.get(it.cause);
    if (!c) causes.set(it.cause, (c = { count: 0, codes: new Set() }));
    c.count++;
    if (it.code) c.codes.add(it.code);
  }
  return {
    total: items.length,
    items,
    byImpact: (Object.keys(IMPACT_LABELS) as Impact[])
      .filter((k) => impacts.has(k))
      .map((k) => {
        const i = impacts.get(k)!;
        return { impact: k, label: IMPACT_LABELS[k], count: i.count, businessKeys: [...i.keys].sort(), salesOrders: [...i.orders].sort() };
      }),
    byCause: (Object.keys(CAUSE_LABELS) as Cause[])
      .filter((k) => causes.has(k))
      .map((k) => {
        const c = causes.get(k)!;
        return { cause: k, label: CAUSE_LABELS[k], count: c.count, codes: [...c.codes].sort() };
      }),
  };
}
