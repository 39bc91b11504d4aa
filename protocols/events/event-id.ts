/**
 * Deterministic event ids.
 *
 * Invariant: the same source fact always yields the same id, in any process, after
 * any restart. The id is the only thing that makes redelivery harmless downstream
 * (outbox dedupe, relay inbox dedupe, CRM upsert by external id), so every input
 * that identifies the fact goes in, and nothing that varies between reads does
 * (no receive time, no sequence number).
 *
 * Shape: a UUIDv8 (RFC 9562 "custom") whose first 48 bits are the fact's
 * occurred-at time in Unix milliseconds and whose remaining bits come from a
 * SHA-256 of the fact key. Time-first ids keep the dedupe indexes in SQLite
 * append-mostly (a random key touches ~870 index pages per 1,000 rows; see
 * shared/FIELD-NOTES.md), while the hash keeps distinct facts distinct.
 */
import { hash } from 'node:crypto';

export interface SourceFact {
  /** Plant that produced the fact. */
  plant: string;
  /** Name of the configured source inside the agent (e.g. `line-opcua`). */
  source: string;
  /** Business key: work order or shipment number. */
  key: string;
  /** What happened: milestone kind or shipment status. */
  what: string;
  /** When it happened at the source, in Unix ms (source timestamp). */
  occurredAtMs: number;
  /** Anything else needed to tell two facts apart (counter value, source sequence). */
  discriminator?: string | number;
}

const SEP = '\u001f'; // unit separator: cannot appear in config-supplied names by accident

export function deriveEventId(fact: SourceFact): string {
  const material = [
    'plantlink/v1',
    fact.plant,
    fact.source,
    fact.key,
    fact.what,
    String(Math.trunc(fact.occurredAtMs)),
    fact.discriminator === undefined ? '' : String(fact.discriminator),
  ].join(SEP);
  const digest = hash('sha256', material, 'buffer');
  const bytes = Buffer.allocUnsafe(16);
  bytes.writeUIntBE(Math.min(Math.max(0, Math.trunc(fact.occurredAtMs)), 2 ** 48 - 1), 0, 6);
  digest.copy(bytes, 6, 0, 10);
  bytes[6] = (bytes[6]! & 0x0f) | 0x80; // version 8
  bytes[8] = (bytes[8]! & 0x3f) | 0x80; // RFC 9562 variant
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
