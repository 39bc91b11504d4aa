// Reconciliation: for one day, do the CRM and ERP hold exactly what the plants produced?
// Operators repair what it finds (re-send missing and stale records, delete duplicates).
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { api, time } from './api.js';

const KIND_LABEL = {
  missing: 'Missing in the target',
  duplicated: 'Duplicated in the target',
  stale: 'Stale in the target',
  dead: 'Dead-lettered',
  not_received: 'Not received from the plant',
  dropped: 'Dropped at the plant (outbox full)',
  pending: 'Still on its way',
};
const KIND_ORDER = ['missing', 'duplicated', 'stale', 'dead', 'not_received', 'dropped', 'pending'];
const REPAIRABLE = new Set(['missing', 'duplicated', 'stale']);
const isRepairable = (f) => REPAIRABLE.has(f.kind) && !f.manual;

const today = () => new Date().toISOString().slice(0, 10);

function Summary({ report }) {
  return html`<section class="card">
    <h2>Per plant and sink <span class="muted small">${report.day} (UTC), checked ${time(report.generatedMs)}${report.verify ? ', read back from the targets' : ''}</span></h2>
    <table>
      <thead><tr><th>Plant</th><th>In ledgers</th><th>At the relay</th><th>Not received</th><th>Dropped</th></tr></thead>
      <tbody>${report.plants.map((p) => html`<tr><td>${p.plant}</td><td>${p.ledger}</td><td>${p.received}</td><td>${p.notReceived}</td><td>${p.dropped}</td></tr>`)}</tbody>
    </table>
    <table data-testid="reconcile-lanes">
      <thead><tr><th>Plant</th><th>Sink</th><th>Events</th><th>Delivered</th><th>Pending</th><th>Dead</th><th>Records checked</th><th>Missing</th><th>Duplicated</th><th>Stale</th></tr></thead>
      <tbody>${report.lanes.map(
        (l) => html`<tr data-testid=${`lane-${l.plant}-${l.lane}`}>
          <td>${l.plant}</td><td>${l.lane}</td><td>${l.events}</td><td>${l.delivered}</td><td>${l.pending}</td><td>${l.dead}</td>
          <td>${l.verified ? l.recordsChecked : html`<span class="muted">not read back</span>`}</td>
          <td class=${l.missing ? 'bad-cell' : ''}>${l.missing}</td><td class=${l.duplicated ? 'bad-cell' : ''}>${l.duplicated}</td><td class=${l.stale ? 'bad-cell' : ''}>${l.stale}</td>
        </tr>`,
      )}</tbody>
    </table>
    ${report.unverifiable.length > 0 && html`<p class="muted small">Not read back (no read API): ${report.unverifiable.join(', ')}.</p>`}
  </section>`;
}

function Findings({ report }) {
  const byKind = KIND_ORDER.map((k) => [k, report.findings.filter((f) => f.kind === k)]).filter(([, list]) => list.length > 0);
  if (byKind.length === 0) return html`<section class="card empty" data-testid="reconcile-clean">No drift: every event of ${report.day} is where it should be.</section>`;
  return html`<section class="card">
    <h2>Findings by order <span class="count">${report.byKey.length}</span></h2>
    ${byKind.map(
      ([kind, list]) => html`<div class="group" data-testid=${`finding-${kind}`}>
        <h3>${KIND_LABEL[kind] ?? kind} <span class="count">${list.length}</span></h3>
        <table>
          <thead><tr><th>Key</th><th>Plant</th><th>Sink</th><th>Record</th><th>Detail</th><th></th></tr></thead>
          <tbody>${list.map(
            (f) => html`<tr data-testid="finding-row">
              <td><b>${f.subject}</b></td><td>${f.plant}</td><td>${f.lane ?? '-'}</td>
              <td>${f.record ? html`<code>${f.record.object}/${f.record.externalId}</code>` : '-'}</td>
              <td class="reason">${f.detail}${f.manual ? html` <span class="pill warn">by hand</span>` : ''}</td>
              <td><a href=${`#/trace?key=${encodeURIComponent(f.eventId)}`}>trace</a></td>
            </tr>`,
          )}</tbody>
        </table>
      </div>`,
    )}
    ${report.truncated && html`<p class="muted">Findings cut at ${report.findings.length}; the counts are complete.</p>`}
  </section>`;
}

export function ReconcilePage({ session }) {
  const [day, setDay] = useState(today());
  const [plant, setPlant] = useState('');
  const [report, setReport] = useState(undefined);
  const [repair, setRepair] = useState(undefined);
  const [error, setError] = useState(undefined);
  const [busy, setBusy] = useState(false);
  const operator = session.role === 'operator';
  const run = async (ev) => {
    ev?.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const q = new URLSearchParams({ day });
      if (plant) q.set('plant', plant);
      setReport(await api(`/api/reconcile?${q}`));
    } catch (e) {
      setError(e.message);
    } finally {
      setBusy(false);
    }
  };
  const doRepair = async () => {
    const n = report.findings.filter(isRepairable).length;
    if (!window.confirm(`Repair ${n} finding(s) for ${day}? Missing and stale records are sent again, duplicates deleted.`)) return;
    setBusy(true);
    setError(undefined);
    try {
      const r = await api('/api/reconcile/repair', { method: 'POST', body: { day, ...(plant ? { plant } : {}) } });
      setRepair(r.repair);
      setReport(r.report);
    } catch (e) {
      setError(e.message);
    } finally {
      setBusy(false);
    }
  };
  const repairable = report ? report.findings.filter(isRepairable).length : 0;
  return html`
    <h1>Reconciliation</h1>
    <form class="search card" onSubmit=${run}>
      <label>Day (UTC) <input type="date" value=${day} onInput=${(e) => setDay(e.target.value)} data-testid="reconcile-day" /></label>
      <label>Plant <input value=${plant} placeholder="all" onInput=${(e) => setPlant(e.target.value.trim())} data-testid="reconcile-plant" /></label>
      <button type="submit" disabled=${busy} data-testid="reconcile-run">${busy ? 'Checking…' : 'Reconcile'}</button>
      ${operator && report && repairable > 0 && html`<button type="button" class="danger" disabled=${busy} onClick=${doRepair} data-testid="reconcile-repair">Repair ${repairable}</button>`}
    </form>
    <p class="muted small">Compares the agents' ledgers, what each sink confirmed, and the records in the CRM and ERP read back by external id. Repair re-sends missing and stale records through the usual delivery (in order, once) and deletes duplicates, keeping the record plantlink wrote; it is audited.</p>
    ${error && html`<p class="error">${error}</p>`}
    ${repair && html`<p class="notice" data-testid="repair-result">Repair: ${repair.resent.map((r) => `${r.events} re-sent to ${r.lane}`).join(', ') || 'nothing re-sent'}${repair.deleted.length ? `; ${repair.deleted.reduce((n, d) => n + d.ids.length, 0)} duplicate(s) deleted` : ''}${repair.errors.length ? `; errors: ${repair.errors.join('; ')}` : ''}. Reconcile again in a few seconds to check.</p>`}
    ${report && html`<${Summary} report=${report} /><${Findings} report=${report} />`}
  `;
}
