/**
 * Sparkplug B (spBv1.0) decoding: a topic and a protobuf payload become ONE record the
 * shared mapping language can read.
 *
 * Invariants:
 * - Metric names are always resolved: a DATA message may carry aliases only, so every
 *   BIRTH's alias -> name pairs are kept per edge node (NBIRTH starts a new map for the
 *   node, DBIRTH adds its device's metrics; Sparkplug makes aliases unique per node). The
 *   caller persists the map with the events (source state), so a DATA message queued by the
 *   broker while the agent was down still resolves after a restart.
 * - An alias with no known name is a decode error (the caller quarantines the message),
 *   never a metric silently dropped or named by number.
 * - 64-bit values become numbers when they are exact, decimal strings when they are not.
 */
// sparkplug-payload is CommonJS: a default import (not createRequire(import.meta.url), which
// has no URL inside the single executable's CommonJS bundle); `get` returns the spBv1.0 codec.
import sparkplugPayload from 'sparkplug-payload';

const codec = sparkplugPayload.get('spBv1.0')!;

export const SPARKPLUG_NAMESPACE = 'spBv1.0';

export const MESSAGE_TYPES = ['NBIRTH', 'NDEATH', 'DBIRTH', 'DDEATH', 'NDATA', 'DDATA', 'NCMD', 'DCMD'] as const;
export type SparkplugMessageType = (typeof MESSAGE_TYPES)[number];

export interface SparkplugTopic {
  group: string;
  messageType: SparkplugMessageType;
  node: string;
  device?: string;
}

/** What the mapping sees for one Sparkplug message. */
export interface SparkplugRecord {
  topic: string;
  group: string;
  node: string;
  /** Absent for node-level messages (N*). */
  device?: string;
  messageType: SparkplugMessageType;
  seq?: number;
  /** Payload timestamp, Unix ms. */
  timestamp?: number;
  /** Metric values by name (null for null metrics). */
  metrics: Record<string, unknown>;
  /** Metric timestamps by name, Unix ms, where the metric carries one. */
  metricTimestamps: Record<string, number>;
  /** True when any metric is flagged `is_historical` (buffered by the edge node, not live). */
  historical: boolean;
}

/** alias (decimal text) -> metric name, per edge node. */
export type AliasMap = Record<string, string>;

export class SparkplugDecodeError extends Error {
  override readonly name = 'SparkplugDecodeError';
}

/** The parts of a Sparkplug topic, `undefined` for the STATE topic (host application state, not edge data). */
export function parseSparkplugTopic(topic: string): SparkplugTopic | undefined {
  const levels = topic.split('/');
  if (levels[0] !== SPARKPLUG_NAMESPACE) throw new SparkplugDecodeError(`topic ${topic} is not in the ${SPARKPLUG_NAMESPACE} namespace`);
  if (levels[1] === 'STATE') return undefined;
  const [, group, type, node, device, ...rest] = levels;
  if (!group || !type || !node || rest.length > 0) throw new SparkplugDecodeError(`topic ${topic} is not spBv1.0/<group>/<type>/<node>[/<device>]`);
  if (!(MESSAGE_TYPES as readonly string[]).includes(type)) throw new SparkplugDecodeError(`topic ${topic} has an unknown message type ${type}`);
  const messageType = type as SparkplugMessageType;
  const deviceLevel = messageType.startsWith('D');
  if (deviceLevel && !device) throw new SparkplugDecodeError(`topic ${topic}: a ${messageType} needs a device level`);
  if (!deviceLevel && device) throw new SparkplugDecodeError(`topic ${topic}: a ${messageType} has no device level`);
  return { group, messageType, node, ...(device ? { device } : {}) };
}

/** The alias map's key: one per edge node (its devices share it). */
export function nodeKey(t: { group: string; node: string }): string {
  return `${t.group}/${t.node}`;
}

interface LongLike {
  toNumber(): number;
  toString(): string;
  low: number;
  high: number;
}

function isLong(v: unknown): v is LongLike {
  return typeof v === 'object' && v !== null && 'low' in v && 'high' in v && typeof (v as LongLike).toNumber === 'function';
}

/** A protobuf value as plain JSON: Longs to numbers when exact, else decimal text; Buffers to base64. */
export function plainValue(v: unknown): unknown {
  if (isLong(v)) {
    const n = v.toNumber();
    return Number.isSafeInteger(n) ? n : v.toString();
  }
  if (v instanceof Uint8Array) return Buffer.from(v).toString('base64');
  if (Array.isArray(v)) return v.map(plainValue);
  if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plainValue(x)]));
  return v;
}

function asNumber(v: unknown): number | undefined {
  if (v === undefined || v === null) return undefined;
  const n = plainValue(v);
  return typeof n === 'number' ? n : Number(n);
}

export interface DecodedSparkplug {
  record: SparkplugRecord;
  /** The node's alias map after this message; set when it changed (a BIRTH). */
  aliases?: AliasMap;
}

/**
 * Decodes one message. `aliases` is the node's current map (from its last BIRTH), or
 * undefined when none is known. Throws SparkplugDecodeError for anything unreadable.
 */
export function decodeSparkplug(topic: string, t: SparkplugTopic, payload: Uint8Array, aliases: AliasMap | undefined): DecodedSparkplug {
  let decoded;
  try {
    decoded = codec.decodePayload(payload);
  } catch (e) {
    throw new SparkplugDecodeError(`payload is not a Sparkplug B protobuf: ${(e as Error).message}`);
  }
  const birth = t.messageType === 'NBIRTH' || t.messageType === 'DBIRTH';
  // NBIRTH starts the node's session over; DBIRTH adds its device's aliases.
  const next: AliasMap = t.messageType === 'NBIRTH' ? {} : { ...(aliases ?? {}) };
  const metrics: Record<string, unknown> = {};
  const metricTimestamps: Record<string, number> = {};
  let historical = false;
  for (const m of decoded.metrics ?? []) {
    const alias = m.alias === undefined || m.alias === null ? undefined : String(plainValue(m.alias));
    let name = m.name ?? undefined;
    if (birth && name && alias !== undefined) next[alias] = name;
    if (!name) {
      if (alias === undefined) throw new SparkplugDecodeError('a metric has neither a name nor an alias');
      name = (birth ? next : aliases)?.[alias];
      if (!name) {
        throw new SparkplugDecodeError(
          aliases === undefined && !birth
            ? `metric alias ${alias} cannot be resolved: no BIRTH seen for node ${nodeKey(t)}`
            : `metric alias ${alias} is not in the BIRTH of node ${nodeKey(t)}`,
        );
      }
    }
    metrics[name] = m.isNull ? null : plainValue(m.value);
    const ts = asNumber(m.timestamp);
    if (ts !== undefined) metricTimestamps[name] = ts;
    if (m.isHistorical) historical = true;
  }
  const seq = asNumber(decoded.seq);
  const timestamp = asNumber(decoded.timestamp);
  const record: SparkplugRecord = {
    topic,
    group: t.group,
    node: t.node,
    ...(t.device !== undefined ? { device: t.device } : {}),
    messageType: t.messageType,
    ...(seq !== undefined ? { seq } : {}),
    ...(timestamp !== undefined ? { timestamp } : {}),
    metrics,
    metricTimestamps,
    historical,
  };
  return birth ? { record, aliases: next } : { record };
}

/** For simulators and tests: encodes a payload the way an edge node does. */
export function encodeSparkplug(payload: Parameters<typeof codec.encodePayload>[0]): Uint8Array {
  return codec.encodePayload(payload);
}
