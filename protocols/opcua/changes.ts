/**
 * Value changes as the rest of plantlink sees them: plain JS values stamped with the
 * source timestamp, never receive time (peer products stamp receive time and then
 * cannot order or dedupe; FIELD-NOTES).
 */
import { DataType, type DataValue, type Variant } from 'node-opcua';

export interface Change {
  /** The item key from the client's configuration. */
  item: string;
  /** The value as plain JSON-friendly JS (strings, numbers, booleans, null, arrays). */
  value: unknown;
  /** Source timestamp in Unix ms; the server timestamp if the server sends no source timestamp. */
  sourceTimestampMs: number;
  /** False for Bad and Uncertain values: they carry no trustworthy value. */
  statusGood: boolean;
  /** Status code name, e.g. `Good`, `BadNodeIdUnknown` (for logs). */
  status: string;
}

/** A change with what the client needs to sort it; not part of the public batch. */
export interface SortableChange extends Change {
  serverTimestampMs: number;
  order: number;
}

const TWO_POW_32 = 2 ** 32;

function plain(value: unknown, dataType: DataType): unknown {
  if (value === null || value === undefined) return null;
  if ((dataType === DataType.Int64 || dataType === DataType.UInt64) && Array.isArray(value) && value.length === 2) {
    // node-opcua represents 64-bit integers as [high, low]
    const [high, low] = value as [number, number];
    return high * TWO_POW_32 + (low >>> 0);
  }
  if (value instanceof Date) return value.toISOString();
  if (Buffer.isBuffer(value)) return value.toString('base64');
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) return Array.from(value as unknown as ArrayLike<number>);
  if (Array.isArray(value)) return value.map((v) => plain(v, dataType));
  if (typeof value === 'object') {
    // LocalizedText, QualifiedName: the text is what a plant value means
    const o = value as { text?: unknown; name?: unknown };
    if (typeof o.text === 'string' || o.text === null) return o.text ?? null;
    if (typeof o.name === 'string') return o.name;
    return String(value);
  }
  return value;
}

export function variantToPlain(variant: Variant | null | undefined): unknown {
  if (!variant) return null;
  return plain(variant.value, variant.dataType);
}

function ms(date: Date | null | undefined): number {
  const t = date?.getTime();
  // node-opcua reports "no timestamp" as null or as the OPC UA minimum date (1601)
  return t === undefined || Number.isNaN(t) || t <= 0 ? 0 : t;
}

export function toChange(item: string, order: number, dataValue: DataValue, receivedAtMs: number): SortableChange {
  const source = ms(dataValue.sourceTimestamp);
  const server = ms(dataValue.serverTimestamp);
  return {
    item,
    value: variantToPlain(dataValue.value),
    sourceTimestampMs: source || server || receivedAtMs,
    statusGood: dataValue.statusCode.isGood(),
    status: dataValue.statusCode.name,
    serverTimestampMs: server,
    order,
  };
}

/** Sorted by source timestamp, then server timestamp, then item order; stripped of sort keys. */
export function sortChanges(changes: SortableChange[]): Change[] {
  return [...changes]
    .sort((a, b) => a.sourceTimestampMs - b.sourceTimestampMs || a.serverTimestampMs - b.serverTimestampMs || a.order - b.order)
    .map(({ item, value, sourceTimestampMs, statusGood, status }) => ({ item, value, sourceTimestampMs, statusGood, status }));
}
