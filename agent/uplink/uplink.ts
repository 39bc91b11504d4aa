/**
 * What the agent needs from an uplink, whatever the transport (WebSocket, MQTT).
 *
 * Contract every uplink keeps: the outbox drives delivery. An uplink reads pending events
 * from the outbox in sequence order, sends them in batches, and removes a row only on the
 * relay's `ack` frame for its batch (sent after the relay's durable inbox commit); a row the
 * relay refuses moves to the outbox's `rejected` table with the relay's reason. A transport
 * acknowledgement (TCP, an MQTT PUBACK) never removes anything. Whatever was in flight when a
 * connection ends is read again from the outbox; the relay dedupes on (source, id).
 */
import type { EventEmitter } from 'node:events';

export type UplinkState = 'connecting' | 'connected' | 'disconnected' | 'unauthorized' | 'stopped';

export interface UplinkHealth {
  state: UplinkState;
  detail?: string;
  lastAckMs?: number;
  connectedSinceMs?: number;
}

export interface UplinkEvents {
  /** `rttMs`: from sending the batch to its ack (the relay's validation and fsync'd commit included). */
  acked: [stored: number, rejected: number, rttMs: number];
  state: [health: UplinkHealth];
}

export interface Uplink extends EventEmitter<UplinkEvents> {
  /** Connects and keeps connecting (with backoff) until stopped; never throws for a relay that is away. */
  start(): void;
  /** Closes the connection; what is in flight stays in the outbox for the next start. */
  stop(): Promise<void>;
  status(): UplinkHealth & { inFlight: number };
}
