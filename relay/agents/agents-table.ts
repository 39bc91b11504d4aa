/** `plantlink relay agents` for people: one line per agent, its connection, backlog and lag. */
import { formatAgo, formatDuration, formatTable } from '../../protocols/text-table.js';
import type { AgentView } from './agent-tracker.js';

/** What GET /v1/agents answers per agent (JSON: absent fields are unknown). */
export type AgentRow = Partial<AgentView> &
  Pick<AgentView, 'id' | 'plant' | 'connected'> & {
    relay?: { pendingEvents: number; oldestPendingAgeMs?: number | undefined };
  };

export function formatAgents(agents: readonly AgentRow[], now = Date.now()): string {
  if (agents.length === 0) return 'no agents registered in this relay\'s config\n';
  const header = ['PLANT', 'AGENT', 'CONNECTED', 'LAST SEEN', 'REMOTE', 'BACKLOG', 'OLDEST PENDING', 'LAST EVENT', 'AT RELAY', 'RELAY LAG'];
  const rows = agents.map((a) => [
    a.plant,
    a.id,
    a.connected ? `yes, ${formatDuration(now - (a.connectedMs ?? now))}` : a.lastSeenMs === undefined ? 'never' : `no, since ${formatAgo(a.disconnectedMs, now)}`,
    formatAgo(a.lastSeenMs, now),
    a.remote ?? '-',
    a.backlog ? String(a.backlog.pending) : '?',
    a.backlog ? (a.backlog.pending > 0 ? formatDuration(a.backlog.oldestPendingAgeMs) : '-') : '?',
    formatAgo(a.lastEventMs, now),
    a.relay ? String(a.relay.pendingEvents) : '?',
    a.relay && a.relay.pendingEvents > 0 ? formatDuration(a.relay.oldestPendingAgeMs) : '-',
  ]);
  const legend =
    'BACKLOG / OLDEST PENDING: events waiting in the agent\'s outbox, as it last reported (? = not reported: not connected since the relay started, or an older agent).\n' +
    'AT RELAY / RELAY LAG: events of the plant stored at the relay and still waiting for a sink; age since they happened at the plant.\n';
  return `${formatTable(header, rows)}\n${legend}`;
}
