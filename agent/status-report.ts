/**
 * `plantlink agent status` for people: the outbox backlog (read from the outbox itself),
 * the running agent's state, uplink and sources (from the `status.json` it rewrites every
 * few seconds), and the quarantined events.
 */
import { formatAgo, formatDuration, formatPairs, formatTable } from '../protocols/text-table.js';
import type { OutboxStats, RejectedEvent } from './outbox/outbox.js';

/** What the running agent writes to `<dataDir>/status.json`. */
export interface LiveStatus {
  writtenMs: number;
  state: string;
  uplink: { state: string; detail?: string; lastAckMs?: number; connectedSinceMs?: number; inFlight?: number };
  sources: { name: string; kind: string; state: string; detail?: string; lastActivityMs?: number }[];
}

/** status.json older than this: the agent is probably not running. */
const STALE_MS = 15_000;

export function formatAgentStatus(
  report: { outbox: OutboxStats; rejected: Omit<RejectedEvent, 'body'>[]; live: LiveStatus | undefined },
  now = Date.now(),
): string {
  const { outbox, rejected, live } = report;
  const summary: [string, string][] = [
    ['backlog (pending events)', String(outbox.pending)],
    ['pending bytes', String(outbox.pendingBytes)],
    ['oldest pending', outbox.oldestPendingMs === undefined ? '-' : formatDuration(now - outbox.oldestPendingMs)],
    ['quarantined', String(outbox.rejected)],
    ['outbox full', outbox.full ? 'YES' : 'no'],
  ];
  let sources = '';
  if (live) {
    const stale = now - live.writtenMs > STALE_MS ? ` (as of ${formatAgo(live.writtenMs, now)}: agent not running?)` : '';
    const u = live.uplink;
    const since = u.state === 'connected' && u.connectedSinceMs !== undefined ? `, for ${formatDuration(now - u.connectedSinceMs)}` : '';
    const lastAck = u.lastAckMs === undefined ? '' : `, last ack ${formatAgo(u.lastAckMs, now)}`;
    summary.push(['agent', `${live.state}${stale}`]);
    summary.push(['uplink', `${u.state}${since}${lastAck}${u.detail ? `: ${u.detail}` : ''}`]);
    sources = formatTable(
      ['SOURCE', 'KIND', 'HEALTH', 'LAST ACTIVITY', 'DETAIL'],
      live.sources.map((s) => [s.name, s.kind, s.state, formatAgo(s.lastActivityMs, now), s.detail ?? '']),
    );
  } else {
    summary.push(['agent', 'no status.json: never started with this data folder']);
  }
  let out = formatPairs(summary);
  if (sources) out += `\n${sources}`;
  if (rejected.length > 0) {
    out += `\n${formatTable(
      ['QUARANTINED', 'TYPE', 'SUBJECT', 'CODE', 'REASON'],
      rejected.map((r) => [r.id, r.type, r.subject, r.code, r.reason]),
    )}`;
  }
  return out;
}
