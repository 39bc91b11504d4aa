/**
 * The uplink's window of unacknowledged batches over the outbox, independent of transport.
 *
 * Invariants
 * - Batches are read from the outbox in sequence order, after the last one sent; at most
 *   `maxInFlight` are unacknowledged at a time.
 * - Outbox rows change only in `ack()`, on the relay's ack frame: refused rows move to
 *   `rejected` first, then the stored ones are deleted, so a crash between the two leaves the
 *   stored ones pending, which is a harmless resend.
 * - `reset()` forgets every batch in flight (connection lost, ack overdue); the next `fill()`
 *   reads again from the oldest pending event. An ack for a forgotten batch is unknown and
 *   changes nothing.
 * - Batch numbers never repeat within a window's life and start at `firstBatch`, so a
 *   transport that may deliver an old ack late (MQTT persistent sessions) can start each
 *   process at a random offset.
 */
import type { Logger } from '../../protocols/log.js';
import type { AckFrame } from '../../protocols/uplink/frames.js';
import type { Outbox } from '../outbox/outbox.js';

export interface WindowLimits {
  maxInFlight: number;
  maxBatchEvents: number;
  maxFrameBytes: number;
}

interface InFlight {
  seqs: number[];
  sentMs: number;
}

/** Bytes of a batch frame besides its events: `{"t":"batch","batch":N,"events":[...]}`. */
const FRAME_OVERHEAD = 64;

export class BatchWindow {
  private readonly inFlight = new Map<number, InFlight>();
  private cursor = 0;
  private nextBatch: number;

  constructor(
    private readonly outbox: Outbox,
    private readonly logger: Logger,
    firstBatch = 0,
  ) {
    this.nextBatch = firstBatch;
  }

  get size(): number {
    return this.inFlight.size;
  }

  has(batch: number): boolean {
    return this.inFlight.has(batch);
  }

  /** Forgets the batches in flight (their acks will never come, or too late); returns how many. */
  reset(): number {
    const lost = this.inFlight.size;
    this.inFlight.clear();
    this.cursor = 0;
    return lost;
  }

  /** Sends batches until the window is full or nothing is pending; returns how many were sent. */
  fill(limits: WindowLimits, send: (batch: number, frame: string) => void): number {
    let sent = 0;
    while (this.inFlight.size < limits.maxInFlight) {
      const rows = this.outbox.readPending(this.cursor, limits.maxBatchEvents, limits.maxFrameBytes - FRAME_OVERHEAD);
      if (rows.length === 0) break;
      if (rows.length === 1 && Buffer.byteLength(rows[0]!.body) > limits.maxFrameBytes - FRAME_OVERHEAD) {
        // It can never fit this relay's frames: sending it would be refused every time and
        // block the whole backlog behind it. Quarantine it with the reason.
        const reason = `event is larger than the relay's frame limit of ${limits.maxFrameBytes} bytes`;
        this.logger.error({ seq: rows[0]!.seq, id: rows[0]!.id, reason }, 'event quarantined in the outbox');
        this.outbox.reject([{ seq: rows[0]!.seq, code: 'event_too_large', reason }]);
        continue;
      }
      const batch = this.nextBatch++;
      // Bodies are stored as JSON text: splice them into the frame instead of parsing and re-serialising.
      const frame = `{"t":"batch","batch":${batch},"events":[${rows.map((r) => r.body).join(',')}]}`;
      this.inFlight.set(batch, { seqs: rows.map((r) => r.seq), sentMs: performance.now() });
      this.cursor = rows[rows.length - 1]!.seq;
      send(batch, frame);
      sent++;
    }
    return sent;
  }

  /** Applies the relay's ack to the outbox; undefined when the batch is not in flight (nothing changes). */
  ack(ack: AckFrame): { stored: number; rejected: number; rttMs: number } | undefined {
    const batch = this.inFlight.get(ack.batch);
    if (!batch) return undefined;
    if (ack.stored + ack.duplicates + ack.rejected.length !== batch.seqs.length) {
      // Not the ack of this batch (a number reused across restarts, against the odds): keep
      // the batch in flight; it is resent after the ack timeout and the relay dedupes.
      this.logger.warn({ batch: ack.batch, events: batch.seqs.length, acked: ack.stored + ack.duplicates + ack.rejected.length }, 'ack does not match its batch; ignored');
      return undefined;
    }
    this.inFlight.delete(ack.batch);
    const rejectedIdx = new Set(ack.rejected.map((r) => r.index));
    const rejections = ack.rejected
      .filter((r) => r.index < batch.seqs.length)
      .map((r) => ({ seq: batch.seqs[r.index]!, code: r.code, reason: r.reason }));
    const stored = batch.seqs.filter((_, i) => !rejectedIdx.has(i));
    this.outbox.reject(rejections);
    this.outbox.ack(stored);
    for (const r of rejections) this.logger.error({ seq: r.seq, code: r.code, reason: r.reason }, 'relay rejected an event; quarantined in the outbox');
    return { stored: stored.length, rejected: rejections.length, rttMs: performance.now() - batch.sentMs };
  }
}
