// The audit log: who replayed dead letters or repaired a reconciliation, when, and how many went back to delivery.
import { html } from 'htm/preact';
import { time } from './api.js';
import { usePoll } from './poll.js';

function describe(request) {
  if (request.items) return request.items.length === 1 ? `one: ${request.items[0].sink} #${request.items[0].seq}` : `${request.items.length} selected`;
  if (request.repair) return `reconciliation repair: day ${request.repair.day}${request.repair.plant ? `, plant ${request.repair.plant}` : ''}${request.repair.lane ? `, ${request.repair.lane}` : ''}`;
  if (request.filter) return `filter: ${Object.entries(request.filter).map(([k, v]) => `${k}=${v}`).join(', ')}`;
  return JSON.stringify(request);
}

export function AuditPage() {
  const [data, error] = usePoll('/api/audit', 10000);
  return html`
    <h1>Audit: replays and repairs</h1>
    ${error && html`<p class="error">${error}</p>`}
    <section class="card">
      ${data && data.audit.length === 0 && html`<p class="muted">No replays or repairs yet.</p>`}
      ${data &&
      data.audit.length > 0 &&
      html`<table>
        <thead><tr><th>#</th><th>When</th><th>Who</th><th>What</th><th>Matched</th><th>Replayed</th></tr></thead>
        <tbody>${data.audit.map(
          (a) => html`<tr data-testid="audit-row"><td>${a.id}</td><td>${time(a.atMs)}</td><td>${a.by} <span class=${`role role-${a.role}`}>${a.role}</span></td><td><code>${describe(a.request)}</code></td><td>${a.matched}</td><td>${a.replayed}</td></tr>`,
        )}</tbody>
      </table>`}
    </section>
  `;
}
