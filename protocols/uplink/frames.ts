/**
 * The uplink wire contract between agent and relay, version 1.
 *
 * Transports: one WebSocket per agent, opened by the agent (outbound only), with
 * subprotocol `plantlink.v1` and `Authorization: Bearer <agent token>`; or MQTT, with the
 * same frames as message payloads on the topics of mqtt-topics.ts (see MQTT.md). Text
 * frames, each one JSON object with a `t` tag.
 *
 *   relay -> agent  welcome  sent once after the upgrade: limits the agent must respect
 *   agent -> relay  batch    up to `maxBatchEvents` CloudEvents, at most `maxFrameBytes` on the wire
 *   relay -> agent  ack      after the whole batch is durably committed (fsync'd) in the inbox
 *   agent -> relay  status   optional, every few seconds: the agent's outbox backlog; sent only
 *                            to a relay whose welcome lists the `status` feature, so an older
 *                            relay (which would refuse an unknown frame) never gets one, and a
 *                            relay accepts agents that never send it
 *   agent -> relay  ledger   optional, sent only to a relay whose welcome lists `ledger`: the
 *                            agent's ledger entries (one per event its outbox committed, or dropped
 *                            when full) after its ledger cursor, at most one frame unacknowledged,
 *                            at most `MAX_LEDGER_ENTRIES` entries and `maxFrameBytes`; `upto` is the
 *                            agent's ledger row id of the last entry. For reconciliation: per plant
 *                            and day, what the plant produced.
 *   relay -> agent  ledger-ack  `upto` of a ledger frame, after the relay durably stored its entries
 *                            (idempotent on (source, id)); the agent then advances its cursor. No
 *                            ack (connection lost): the agent resends from its cursor.
 *   relay -> agent  error    a protocol violation; the relay closes the socket after it (over
 *                            MQTT it cannot: it names the batch, and the agent reconnects and resends)
 *
 * Guarantees: an `ack` means every event of the batch is either stored (or was already
 * stored: a duplicate), or listed in `rejected` with a reason, and the rejected ones are
 * recorded at the relay too. Nothing in a batch is acknowledged before the commit. Acks
 * come in batch order. An agent that gets no ack (socket closed) resends; the relay
 * dedupes on (source, id).
 *
 * Optional frames (`status`, `ledger`) follow one rule: an agent sends one only when the
 * welcome lists its feature, and a relay never needs one, so an old agent and a new relay, or
 * a new agent and an old relay, work together unchanged.
 */
import { z } from 'zod';

export const UPLINK_SUBPROTOCOL_PREFIX = 'plantlink.v';
export const SUPPORTED_UPLINK_VERSIONS = [1] as const;
export const subprotocolFor = (version: number): string => `${UPLINK_SUBPROTOCOL_PREFIX}${version}`;

/** Picks the highest version both sides speak, from the client's offered subprotocols. */
export function negotiateVersion(offered: Iterable<string>): number | undefined {
  let best: number | undefined;
  for (const p of offered) {
    if (!p.startsWith(UPLINK_SUBPROTOCOL_PREFIX)) continue;
    const v = Number(p.slice(UPLINK_SUBPROTOCOL_PREFIX.length));
    if ((SUPPORTED_UPLINK_VERSIONS as readonly number[]).includes(v) && (best === undefined || v > best)) best = v;
  }
  return best;
}

export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024;
export const DEFAULT_MAX_BATCH_EVENTS = 500;

export const WelcomeFrame = z.object({
  t: z.literal('welcome'),
  protocol: z.number().int(),
  agent: z.string(),
  plant: z.string(),
  maxFrameBytes: z.number().int().positive(),
  maxBatchEvents: z.number().int().positive(),
  maxInFlight: z.number().int().positive(),
  /** Optional frames this relay accepts beyond `batch` (absent from older relays). */
  features: z.array(z.string()).optional(),
});
export type WelcomeFrame = z.infer<typeof WelcomeFrame>;

export const RejectionCode = z.enum([
  'invalid_envelope',
  'unknown_type',
  'invalid_data',
  'plant_mismatch',
  'event_too_large',
]);
export type RejectionCode = z.infer<typeof RejectionCode>;

export const Rejection = z.object({
  index: z.number().int().nonnegative(),
  id: z.string().optional(),
  code: RejectionCode,
  reason: z.string(),
});
export type Rejection = z.infer<typeof Rejection>;

export const AckFrame = z.object({
  t: z.literal('ack'),
  batch: z.number().int().nonnegative(),
  stored: z.number().int().nonnegative(),
  duplicates: z.number().int().nonnegative(),
  rejected: z.array(Rejection),
});
export type AckFrame = z.infer<typeof AckFrame>;

/** `forbidden_topic`: over MQTT, a batch on the events topic of an agent id or plant the relay does not have registered. */
export const ErrorCode = z.enum(['malformed_frame', 'unexpected_frame', 'frame_too_large', 'batch_too_large', 'forbidden_topic', 'internal']);
export const ErrorFrame = z.object({
  t: z.literal('error'),
  code: ErrorCode,
  reason: z.string(),
  /** The batch the error is about, when the frame could be read that far. */
  batch: z.number().int().nonnegative().optional(),
});
export type ErrorFrame = z.infer<typeof ErrorFrame>;

/**
 * The relay stored the entries of the agent's ledger frame `upto` (durably). Entries it could
 * not take (malformed, another plant's source) are counted in `refused` and logged by the relay;
 * they never fail the frame, so one bad entry cannot hold the ledger back or cost a connection.
 */
export const LedgerAckFrame = z.object({
  t: z.literal('ledger-ack'),
  upto: z.number().int().nonnegative(),
  refused: z.number().int().nonnegative().optional(),
});
export type LedgerAckFrame = z.infer<typeof LedgerAckFrame>;

export const RelayFrame = z.discriminatedUnion('t', [WelcomeFrame, AckFrame, ErrorFrame, LedgerAckFrame]);
export type RelayFrame = z.infer<typeof RelayFrame>;

/** The batch frame; events are validated one by one at the relay, not here, so one bad event cannot sink its batch. */
export const BatchFrame = z.object({
  t: z.literal('batch'),
  batch: z.number().int().nonnegative(),
  events: z.array(z.unknown()).min(1),
});
export type BatchFrame = z.infer<typeof BatchFrame>;

/** The welcome feature that tells an agent it may send `status` frames. */
export const STATUS_FEATURE = 'status';

/**
 * The agent's backlog, as its outbox saw it when sending. The oldest pending event's age
 * is sent rather than its timestamp, so the relay does not depend on the plant's clock.
 */
export const StatusFrame = z.object({
  t: z.literal('status'),
  pending: z.number().int().nonnegative(),
  pendingBytes: z.number().int().nonnegative().optional(),
  oldestPendingAgeMs: z.number().int().nonnegative().optional(),
});
export type StatusFrame = z.infer<typeof StatusFrame>;

/** The welcome feature that tells an agent it may send `ledger` frames. */
export const LEDGER_FEATURE = 'ledger';

/** Entries per ledger frame, at most (the relay refuses more with `batch_too_large`). */
export const MAX_LEDGER_ENTRIES = 2000;

/** One event an agent's outbox committed (`stored`) or dropped because it was full (`dropped`). */
/** Text the relay's stores index or key on: PostgreSQL text cannot hold a NUL. */
const storableText = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .refine((v) => !v.includes('\u0000'), { message: 'contains a NUL character' });

export const LedgerEntryWire = z.object({
  id: storableText(128),
  /** The event's CloudEvents `source`; the relay refuses an entry naming a source outside the agent's plant. */
  source: storableText(512),
  type: storableText(256),
  subject: storableText(256),
  /** The event time (its `time` attribute), Unix ms. */
  timeMs: z.number().int(),
  status: z.enum(['stored', 'dropped']),
});
export type LedgerEntryWire = z.infer<typeof LedgerEntryWire>;

export const LedgerFrame = z.object({
  t: z.literal('ledger'),
  /** The agent's ledger row id of the last entry: the relay echoes it in its `ledger-ack`. */
  upto: z.number().int().nonnegative(),
  /** Each checked against LedgerEntryWire at the relay, one by one (a bad one is refused alone). */
  entries: z.array(z.unknown()).min(1),
});
export type LedgerFrame = z.infer<typeof LedgerFrame>;

/** Everything an agent may send. */
export const AgentFrame = z.discriminatedUnion('t', [BatchFrame, StatusFrame, LedgerFrame]);
export type AgentFrame = z.infer<typeof AgentFrame>;

/** A close reason within the protocol's 123 bytes (ws throws past them), cut on a character boundary. */
export function closeReason(reason: string, maxBytes = 120): string {
  let out = reason.slice(0, maxBytes);
  while (Buffer.byteLength(out) > maxBytes) out = out.slice(0, -1);
  // Not half of a surrogate pair (it would go out as U+FFFD).
  return /[\uD800-\uDBFF]$/.test(out) ? out.slice(0, -1) : out;
}

/** WebSocket close codes the relay uses, so the agent can tell "fix your config" from "try again". */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  invalidPayload: 1007,
  tooLarge: 1009,
  protocolViolation: 4400,
  internal: 1011,
} as const;
