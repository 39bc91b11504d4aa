/**
 * What an ingress tells the rest of the relay about its agents, whatever the transport:
 * connections, batches (after their inbox commit) and backlog reports. Observers must be
 * cheap and must not throw: they run on the ingress's hot path, between commit and ack.
 */
import type { Rejection, StatusFrame } from '../../protocols/uplink/frames.js';
import type { IncomingEvent, StoreResult } from '../inbox/inbox.js';
import type { AgentCredential } from './agent-auth.js';

export interface BatchReport {
  /** Events in the frame, refused ones included. */
  received: number;
  result: StoreResult;
  /** Events that passed validation (stored or duplicates). */
  accepted: readonly IncomingEvent[];
  rejected: readonly Rejection[];
}

export interface IngressObserver {
  connected(agent: AgentCredential, remote: string): void;
  /** The agent's current connection closed (not called for a connection replaced by a newer one). */
  disconnected(agent: AgentCredential): void;
  batch(agent: AgentCredential, report: BatchReport): void;
  status(agent: AgentCredential, status: StatusFrame): void;
}
