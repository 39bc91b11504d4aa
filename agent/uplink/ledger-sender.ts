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
 * - Only entries of the welcome's plant are sent: the relay refuses another plant's entries,
 *   and an agent configured for another plant than its registration would otherwise send
 *   entries refused on every attempt (its events are refused one by one anyway).
 * - Only entries the relay can take are sent: each is checked against `LedgerEntryWire` and
 *   for NUL (which the relay's stores cannot hold). A bad one is skipped with a warning, and
 *   the cursor moves past it with the frame around it, so it can never hold the ledger back.
 *   Likewise an entry larger than the relay's frame limit.
 * - A frame holds at most `MAX_LEDGER_ENTRIES` entries and `maxFrameBytes` bytes.
 */
import { sourceUri } from '../../protocols/events/envelope.js';
import { describeError } from '../../protocols/errors.js';
import type { Logger } from '../../protocols/log.js';
import { LedgerEntryWire, MAX_LEDGER_ENTRIES } from '../../protocols/uplink/frames.js';
import type { LedgerRecord, Outbox } from '../outbox/outbox.js';

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
  /** The highest seq of a bad entry already logged, so a resent frame does not log it again. */
  private warnedBadSeq = 0;

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

  /**
   * The next ledger frame for a relay registered with `plant`, or undefined (one in flight,
   * nothing to send, or the outbox could not be read: logged).
   */
  next(plant: string, maxFrameBytes: number): LedgerFrameToSend | undefined {
    try {
      return this.build(plant, maxFrameBytes);
    } catch (e) {
      // The ledger is for reconciliation: a failed read (closing, disk error) must not crash the agent from a timer.
      this.logger.warn({ err: describeError(e) }, 'could not read the outbox ledger for the relay');
      return undefined;
    }
  }

  private build(plant: string, maxFrameBytes: number): LedgerFrameToSend | undefined {
    if (this.inFlight && performance.now() - this.inFlight.sentMs < this.ackTimeoutMs) return undefined;
    this.inFlight = undefined;
    const prefix = sourceUri(plant, '');
    for (;;) {
      const cursor = this.outbox.ledgerCursor();
      const rows = this.outbox.readLedger(cursor, MAX_LEDGER_ENTRIES);
      if (rows.length === 0) return undefined;
      const parts: string[] = [];
      let bytes = FRAME_OVERHEAD;
      // The last row this frame accounts for, sent or skipped: the relay's ack moves the cursor here.
      let upto = cursor;
      for (const r of rows) {
        if (!r.source.startsWith(prefix)) break;
        const entry = this.entryOf(r);
        if (!entry) {
          upto = r.seq;
          continue;
        }
        const json = JSON.stringify(entry);
        const size = Buffer.byteLength(json) + 1;
        if (bytes + size > maxFrameBytes) {
          if (parts.length > 0) break;
          // One entry larger than the relay's frames (a relay with a tiny frame limit): it can
          // never be sent, and would block the ledger behind it. Skip it, and say so.
          this.logger.error({ seq: r.seq, maxFrameBytes }, 'ledger entry larger than the relay\'s frame limit; not sent');
          upto = r.seq;
          continue;
        }
        parts.push(json);
        bytes += size;
        upto = r.seq;
      }
      if (parts.length > 0) {
        this.inFlight = { upto, sentMs: performance.now() };
        return { upto, entries: parts.length, frame: `{"t":"ledger","upto":${upto},"entries":[${parts.join(',')}]}` };
      }
      if (upto > cursor) {
        // Only skipped entries so far: move past them here, as no ack will.
        this.outbox.ackLedger(upto);
        continue;
      }
      const first = rows[0]!;
      if (this.warnedPlant !== plant) {
        this.warnedPlant = plant;
        this.logger.warn({ relayPlant: plant, source: first.source }, 'ledger not sent: the relay registered this agent for another plant than its sources\'');
      }
      return undefined;
    }
  }

  /** The wire entry of `r`, or undefined (logged once) when the relay could not take it. */
  private entryOf(r: LedgerRecord): LedgerEntryWire | undefined {
    // Rows written before the outbox truncated fractional event times may hold one; `time` is truncated too.
    const entry = { id: r.id, source: r.source, type: r.type, subject: r.subject, timeMs: Number.isFinite(r.timeMs) ? Math.trunc(r.timeMs) : r.timeMs, status: r.status };
    const parsed = LedgerEntryWire.safeParse(entry);
    if (parsed.success) return parsed.data;
    const issue = parsed.error.issues[0];
    const problem = `${issue?.path.join('.') || '(entry)'}: ${issue?.message ?? 'invalid'}`;
    // Values stay out of the log (a subject may name a customer's order); the seq finds the row.
    if (r.seq > this.warnedBadSeq) {
      this.warnedBadSeq = r.seq;
      this.logger.warn({ seq: r.seq, problem }, 'ledger entry the relay could not take; skipped, not sent');
    }
    return undefined;
  }

  /**
   * Applies the relay's `ledger-ack`; false when it is not the ack of the frame in flight
   * (nothing changes; one from an earlier connection, say). Entries the relay `refused` are not
   * resent (they never would be taken); the relay logs why.
   */
  ack(upto: number, refused = 0): boolean {
    if (!this.inFlight || this.inFlight.upto !== upto) {
      this.logger.debug({ upto }, 'ledger-ack for a ledger frame not in flight; ignored');
      return false;
    }
    this.inFlight = undefined;
    this.outbox.ackLedger(upto);
    if (refused > 0) this.logger.warn({ upto, refused }, 'relay refused some ledger entries (its log says why); not resent');
    return true;
  }
}
