/**
 * The uplink's ledger sender, independent of transport: which ledger entries go to the relay
 * next, and what the relay's `ledger-ack` changes.
 *
 * Invariants
 * - Entries go out in ledger order, starting after the outbox's durable cursor (`ledger_sent`),
 *   so after a reconnect or a restart they are sent again from there; the relay dedupes on
 *   (source, id).
 * - At most one ledger frame is unacknowledged. Its `ledger-ack` (sent by the relay after its
 *   durable commit) moves the cursor, durably; an ack naming another frame changes nothing.
 *   A frame unacknowledged for `ackTimeoutMs` counts as lost and is sent again.
 * - Only entries of the welcome's plant are sent: the relay refuses a whole frame naming
 *   another plant's source, and an agent configured for another plant than its registration
 *   would otherwise be refused on every attempt (its events are refused one by one anyway).
 * - A frame holds at most `MAX_LEDGER_ENTRIES` entries and `maxFrameBytes` bytes.
 */
import { sourceUri } from '../../protocols/events/envelope.js';
import type { Logger } from '../../protocols/log.js';
import { MAX_LEDGER_ENTRIES, type LedgerEntryWire } from '../../protocols/uplink/frames.js';
import type { Outbox } from '../outbox/outbox.js';

/** Bytes of a ledger frame besides its entries: `{"t":"ledger","upto":N,"entries":[...]}`. */
const FRAME_OVERHEAD = 64;

export interface LedgerFrameToSend {
  upto: number;
  entries: number;
  frame: string;
}

export class LedgerSender {
  private inFlight: { upto: number; sentMs: number } | undefined;
  private warnedPlant: string | undefined;

  constructor(
    private readonly outbox: Outbox,
    private readonly logger: Logger,
    private readonly ackTimeoutMs: number,
  ) {}

  /** Whether a ledger frame waits for its ack. */
  get busy(): boolean {
    return this.inFlight !== undefined;
  }

  /** Forgets the frame in flight (connection lost): the next frame starts again at the cursor. */
  reset(): void {
    this.inFlight = undefined;
  }

  /** The next ledger frame for a relay registered with `plant`, or undefined (one in flight, or nothing to send). */
  next(plant: string, maxFrameBytes: number): LedgerFrameToSend | undefined {
    if (this.inFlight && performance.now() - this.inFlight.sentMs < this.ackTimeoutMs) return undefined;
    this.inFlight = undefined;
    const rows = this.outbox.readLedger(this.outbox.ledgerCursor(), MAX_LEDGER_ENTRIES);
    if (rows.length === 0) return undefined;
    const prefix = sourceUri(plant, '');
    const parts: string[] = [];
    let bytes = FRAME_OVERHEAD;
    let upto = 0;
    for (const r of rows) {
      if (!r.source.startsWith(prefix)) break;
      const entry: LedgerEntryWire = { id: r.id, source: r.source, type: r.type, subject: r.subject, timeMs: r.timeMs, status: r.status };
      const json = JSON.stringify(entry);
      const size = Buffer.byteLength(json) + 1;
      if (bytes + size > maxFrameBytes) break;
      parts.push(json);
      bytes += size;
      upto = r.seq;
    }
    if (parts.length === 0) {
      const first = rows[0]!;
      if (!first.source.startsWith(prefix)) {
        if (this.warnedPlant !== plant) {
          this.warnedPlant = plant;
          this.logger.warn({ relayPlant: plant, source: first.source }, 'ledger not sent: the relay registered this agent for another plant than its sources\'');
        }
        return undefined;
      }
      // One entry larger than the relay's frames (a relay with a tiny frame limit): it can never
      // be sent, and would block the ledger behind it. Skip it, and say so.
      this.logger.error({ seq: first.seq, id: first.id, maxFrameBytes }, 'ledger entry larger than the relay\'s frame limit; not sent');
      this.outbox.ackLedger(first.seq);
      return this.next(plant, maxFrameBytes);
    }
    this.inFlight = { upto, sentMs: performance.now() };
    return { upto, entries: parts.length, frame: `{"t":"ledger","upto":${upto},"entries":[${parts.join(',')}]}` };
  }

  /** Applies the relay's `ledger-ack`; false when it is not the ack of the frame in flight (nothing changes). */
  ack(upto: number): boolean {
    if (!this.inFlight || this.inFlight.upto !== upto) return false;
    this.inFlight = undefined;
    this.outbox.ackLedger(upto);
    return true;
  }
}
