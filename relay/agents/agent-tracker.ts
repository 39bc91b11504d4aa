/**
 * What the relay knows about each registered agent: whether it is connected, since when and
 * from where, when it was last heard from, the backlog it last reported (its outbox's pending
 * events and the age of the oldest), and the newest event time it sent.
 *
 * Kept in memory: after a relay restart an agent is "never seen" until it reconnects, which
 * it does within its reconnect backoff, and reports its backlog at once. Ages are derived from
 * the relay's clock only (the agent sends an age, not a timestamp), so a plant PC's clock
 * being off does not skew them.
 */
import type { StatusFrame } from '../../protocols/uplink/frames.js';
import type { AgentCredential } from '../ingress/agent-auth.js';
import type { BatchReport, IngressObserver } from '../ingress/observer.js';

export interface AgentBacklog {
  pending: number;
  pendingBytes: number | undefined;
  /** Oldest pending event's age now: the reported age plus the time since the report. Absent when nothing is pending. */
  oldestPendingAgeMs: number | undefined;
  reportedMs: number;
}

export interface AgentView {
  id: string;
  plant: string;
  connected: boolean;
  /** The current connection's start (or the last one's, when disconnected). */
  connectedMs: number | undefined;
  disconnectedMs: number | undefined;
  /** Last frame from the agent (batch or status). */
  lastSeenMs: number | undefined;
  remote: string | undefined;
  /** Undefined until the agent reported once (older agents never do). */
  backlog: AgentBacklog | undefined;
  /** Newest event time (the plant's clock) among the events it sent. */
  lastEventMs: number | undefined;
  /** Since the relay started. */
  batches: number;
  events: number;
}

interface AgentState {
  id: string;
  plant: string;
  connected: boolean;
  connectedMs?: number;
  disconnectedMs?: number;
  lastSeenMs?: number;
  remote?: string;
  status?: { frame: StatusFrame; atMs: number };
  lastEventMs?: number;
  batches: number;
  events: number;
}

export class AgentTracker implements IngressObserver {
  private readonly agents = new Map<string, AgentState>();

  constructor(
    registered: readonly { id: string; plant: string }[],
    private readonly now: () => number = Date.now,
  ) {
    for (const a of registered) this.agents.set(a.id, { id: a.id, plant: a.plant, connected: false, batches: 0, events: 0 });
  }

  private get(agent: AgentCredential): AgentState {
    let s = this.agents.get(agent.id);
    if (!s) {
      s = { id: agent.id, plant: agent.plant, connected: false, batches: 0, events: 0 };
      this.agents.set(agent.id, s);
    }
    return s;
  }

  connected(agent: AgentCredential, remote: string): void {
    const s = this.get(agent);
    const now = this.now();
    s.connected = true;
    s.connectedMs = now;
    s.lastSeenMs = now;
    s.remote = remote;
  }

  disconnected(agent: AgentCredential): void {
    const s = this.get(agent);
    s.connected = false;
    s.disconnectedMs = this.now();
  }

  batch(agent: AgentCredential, report: BatchReport): void {
    const s = this.get(agent);
    s.lastSeenMs = this.now();
    s.batches++;
    s.events += report.received;
    for (const { event } of report.accepted) {
      const t = Date.parse(event.time);
      if (s.lastEventMs === undefined || t > s.lastEventMs) s.lastEventMs = t;
    }
  }

  status(agent: AgentCredential, frame: StatusFrame): void {
    const s = this.get(agent);
    const now = this.now();
    s.lastSeenMs = now;
    s.status = { frame, atMs: now };
  }

  list(): AgentView[] {
    const now = this.now();
    return [...this.agents.values()]
      .map((s): AgentView => ({
        id: s.id,
        plant: s.plant,
        connected: s.connected,
        connectedMs: s.connectedMs,
        disconnectedMs: s.disconnectedMs,
        lastSeenMs: s.lastSeenMs,
        remote: s.remote,
        backlog: s.status && {
          pending: s.status.frame.pending,
          pendingBytes: s.status.frame.pendingBytes,
          oldestPendingAgeMs:
            s.status.frame.pending > 0 && s.status.frame.oldestPendingAgeMs !== undefined ? s.status.frame.oldestPendingAgeMs + (now - s.status.atMs) : undefined,
          reportedMs: s.status.atMs,
        },
        lastEventMs: s.lastEventMs,
        batches: s.batches,
        events: s.events,
      }))
      .sort((a, b) => a.plant.localeCompare(b.plant) || a.id.localeCompare(b.id));
  }
}
