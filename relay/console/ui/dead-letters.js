// Dead letters by business impact and by cause, each with its payload and reason; operators
// replay one, a selection, or everything of a cause.
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { api, time } from './api.js';
import { usePoll } from './poll.js';

const key = (d) => `${d.sink}/${d.seq}`;

function Impact({ groups }) {
  return html`<section class="card">
    <h2>By business impact</h2>
    ${groups.map(
      (g) => html`<div class="group" data-testid=${`impact-${g.impact}`}>
        <h3>${g.label} <span class="count">${g.count}</span></h3>
        <p><span class="muted">${g.impact === 'shipments_not_reflected' ? 'Shipments' : g.impact === 'orders_blocked' ? 'Work orders' : 'Keys'}:</span> ${g.businessKeys.map((k) => html`<code class="tag">${k}</code>`)}</p>
        ${g.salesOrders.length > 0 && html`<p><span class="muted">Sales orders:</span> ${g.salesOrders.map((k) => html`<code class="tag">${k}</code>`)}</p>`}
      </div>`,
    )}
  </section>`;
}

function Causes({ groups, operator, replay, busy }) {
  return html`<section class="card">
    <h2>By cause</h2>
    ${groups.map(
      (g) => html`<div class="group" data-testid=${`cause-${g.cause}`}>
        <h3><span class=${`cause cause-${g.cause}`}>${g.cause.replace('_', ' ')}</span> <span class="count">${g.count}</span> <span class="desc">${g.label}</span></h3>
        <p><span class="muted">Error codes:</span> ${g.codes.map((c) => html`<code class="tag">${c}</code>`)}</p>
        ${operator &&
        html`<button disabled=${busy} data-testid=${`replay-cause-${g.cause}`} onClick=${() => replay({ filter: { cause: g.cause } }, `all ${g.count} with cause ${g.cause}`)}>
          Replay all ${g.count} (${g.cause.replace('_', ' ')})
        </button>`}
      </div>`,
    )}
  </section>`;
}

function Row({ d, operator, selected, toggle, replay, busy }) {
  const [open, setOpen] = useState(false);
  return html`
    <tr data-testid="dead-letter-row" class=${open ? 'open' : ''}>
      ${operator && html`<td><input type="checkbox" checked=${selected} onChange=${toggle} aria-label=${`select ${key(d)}`} /></td>`}
      <td><span class=${`cause cause-${d.cause}`}>${d.cause.replace('_', ' ')}</span></td>
      <td><b>${d.businessKey}</b><div class="muted small">${d.salesOrder ? `sales order ${d.salesOrder}` : ''}</div></td>
      <td>${d.plant}</td>
      <td>${d.sink}</td>
      <td><code>${d.code ?? '-'}</code></td>
      <td class="reason">${d.reason}</td>
      <td class="small">${time(d.updatedMs)}</td>
      <td class="actions">
        <button class="link" onClick=${() => setOpen(!open)}>${open ? 'Hide' : 'Payload'}</button>
        ${operator && html`<button disabled=${busy} data-testid="replay-one" onClick=${() => replay({ items: [{ sink: d.sink, seq: d.seq }] }, `${d.businessKey} to ${d.sink}`)}>Replay</button>`}
      </td>
    </tr>
    ${open &&
    html`<tr class="payload"><td colspan=${operator ? 9 : 8}>
      <div class="muted small">event ${d.id} · ${d.type} · correlation ${d.correlationId} · ${d.attempts} attempt(s)</div>
      <pre>${d.payload === undefined ? '(payload not loaded: only the newest 200 are)' : JSON.stringify(d.payload, null, 2)}</pre>
    </td></tr>`}
  `;
}

export function DeadLettersPage({ session }) {
  const [view, error, reload] = usePoll('/api/dead-letters', 5000);
  const [selected, setSelected] = useState(new Set());
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState(undefined);
  const operator = session.role === 'operator';

  const replay = async (request, what) => {
    setBusy(true);
    setMessage(undefined);
    try {
      const r = await api('/api/replay', { method: 'POST', body: request });
      setMessage({ ok: true, text: `Replayed ${r.replayed} of ${r.matched} (${what}); recorded in the audit log as #${r.audit.id}.` });
      setSelected(new Set());
    } catch (e) {
      setMessage({ ok: false, text: `Replay refused: ${e.message}` });
    } finally {
      setBusy(false);
      reload();
    }
  };
  const toggle = (d) => () => {
    const next = new Set(selected);
    next.has(key(d)) ? next.delete(key(d)) : next.add(key(d));
    setSelected(next);
  };
  const chosen = view ? view.items.filter((d) => selected.has(key(d))) : [];

  return html`
    <h1>Dead letters ${view && html`<span class="count" data-testid="dead-letter-total">${view.total}</span>`}</h1>
    <p class="muted">Deliveries a target system refused for good. Fix the cause (the CRM rule, the mapping, the credentials) first, then replay: a replay delivers them again, in order, once.${operator ? '' : html` <b data-testid="viewer-note">Replay needs the operator role; you are logged in as a viewer.</b>`}</p>
    ${message && html`<p class=${message.ok ? 'notice' : 'error'} role="status" data-testid="replay-message">${message.text}</p>`}
    ${error && html`<p class="error">${error}</p>`}
    ${view && view.total === 0 && html`<section class="card empty" data-testid="no-dead-letters">No dead letters: every event stored at the relay was delivered or is on its way.</section>`}
    ${view &&
    view.total > 0 &&
    html`
      <div class="two">
        <${Impact} groups=${view.byImpact} />
        <${Causes} groups=${view.byCause} operator=${operator} replay=${replay} busy=${busy} />
      </div>
      <section class="card">
        <h2>
          All dead letters
          ${operator && html`<button disabled=${busy || chosen.length === 0} data-testid="replay-selected" onClick=${() => replay({ items: chosen.map((d) => ({ sink: d.sink, seq: d.seq })) }, `${chosen.length} selected`)}>Replay selected (${chosen.length})</button>`}
        </h2>
        <table class="dead">
          <thead><tr>${operator && html`<th></th>`}<th>Cause</th><th>Order / shipment</th><th>Plant</th><th>Sink</th><th>Code</th><th>Reason</th><th>Since</th><th></th></tr></thead>
          <tbody>${view.items.map((d) => html`<${Row} key=${key(d)} d=${d} operator=${operator} selected=${selected.has(key(d))} toggle=${toggle(d)} replay=${replay} busy=${busy} />`)}</tbody>
        </table>
      </section>
    `}
  `;
}
