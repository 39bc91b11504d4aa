// Event trace: search a work order, shipment, sales order or correlation id and see each
// event's path from the plant's source to every sink, with times.
import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { api, duration, time } from './api.js';

const HOP_LABEL = {
  read: 'Read at the source',
  outbox: 'Stored in the agent outbox',
  received: 'Received by the relay',
  routed: 'Routed',
  delivered: 'Delivered',
  'dead-lettered': 'Dead-lettered',
  pending: 'Pending',
};

function ms(n) {
  if (n === null || n === undefined) return '';
  if (n < 1000) return `${n} ms`;
  if (n < 60_000) return `${(n / 1000).toFixed(n < 10_000 ? 2 : 1)} s`;
  return duration(n);
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** Local date and 24-hour time to the millisecond: hops are often milliseconds apart. */
function clock(atMs) {
  if (atMs === null || atMs === undefined) return '-';
  const d = new Date(atMs);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

function Hops({ e }) {
  let prev = null;
  return html`<ol class="hops">
    ${e.hops.map((h) => {
      const delta = h.atMs !== null && prev !== null ? h.atMs - prev : null;
      if (h.atMs !== null) prev = h.atMs;
      return html`<li class=${`hop hop-${h.hop}`} data-testid=${`hop-${h.hop}`}>
        <span class="hop-dot"></span>
        <span class="hop-name">${HOP_LABEL[h.hop] ?? h.hop}${h.lane ? html` <code>${h.lane}</code>` : ''}</span>
        <span class="hop-time">${clock(h.atMs)}${delta !== null ? html` <span class="muted">+${ms(delta)}</span>` : ''}</span>
        <span class="hop-detail">${h.detail}${h.recordIds?.length ? html` · record ${h.recordIds.map((r) => html`<code class="tag" data-testid="record-id">${r}</code>`)}` : ''}</span>
      </li>`;
    })}
  </ol>`;
}

function EventCard({ e }) {
  const [open, setOpen] = useState(false);
  const state = e.hops.some((h) => h.hop === 'dead-lettered') ? 'bad' : e.hops.some((h) => h.hop === 'pending') ? 'warn' : 'ok';
  return html`<section class="card trace-event" data-testid="trace-event">
    <h3>
      <span class=${`pill ${state}`}>${state === 'ok' ? 'delivered' : state === 'bad' ? 'dead letter' : 'in flight'}</span>
      <b>${e.subject}</b> <span>${e.what}</span>
      <span class="muted small">plant ${e.plant} · ${time(e.timeMs)}${e.salesOrder ? ` · sales order ${e.salesOrder}` : ''}${e.endToEndMs !== null ? ` · ${e.endToEndFrom === 'read' ? 'read to delivered' : 'event time to delivered'} ${ms(e.endToEndMs)}` : ''}</span>
    </h3>
    <${Hops} e=${e} />
    <div class="muted small">event <code>${e.id}</code> · correlation <code>${e.correlationId}</code> · ${e.type}
      <button class="link" onClick=${() => setOpen(!open)}>${open ? 'Hide event' : 'Show event'}</button></div>
    ${open && html`<pre>${JSON.stringify(e.event, null, 2)}</pre>`}
  </section>`;
}

function keyFromHash() {
  const q = window.location.hash.split('?')[1] ?? '';
  return new URLSearchParams(q).get('key') ?? '';
}

export function TracePage() {
  const [key, setKey] = useState(keyFromHash());
  const [result, setResult] = useState(undefined);
  const [error, setError] = useState(undefined);
  const [live, setLive] = useState(true);
  // A link to another key (#/trace?key=...) keeps this page mounted: follow the hash.
  useEffect(() => {
    const on = () => setKey(keyFromHash());
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  const search = (k) =>
    api(`/api/trace?key=${encodeURIComponent(k)}`)
      .then((r) => {
        setResult(r);
        setError(undefined);
      })
      .catch((e) => setError(e.message));
  useEffect(() => {
    if (!key) return undefined;
    search(key);
    // Follows the key while its events are still on their way.
    const t = live ? setInterval(() => search(key), 3000) : undefined;
    return () => clearInterval(t);
  }, [key, live]);
  const submit = (ev) => {
    ev.preventDefault();
    const k = new FormData(ev.target).get('key').trim();
    window.history.replaceState(null, '', `#/trace?key=${encodeURIComponent(k)}`);
    setKey(k);
  };
  return html`
    <h1>Event trace</h1>
    <form class="search card" onSubmit=${submit}>
      <input name="key" value=${key} key=${key} placeholder="Work order, shipment, sales order, correlation or event id" aria-label="search key" data-testid="trace-key" />
      <button type="submit" data-testid="trace-search">Trace</button>
      <label class="small"><input type="checkbox" checked=${live} onChange=${() => setLive(!live)} /> follow live</label>
    </form>
    ${error && html`<p class="error">${error}</p>`}
    ${result && result.events.length === 0 && html`<p class="muted" data-testid="trace-none">No event at the relay matches <code>${result.key}</code> (the relay keeps delivered events for its retention window).</p>`}
    ${result?.truncated && html`<p class="muted">Showing the newest ${result.events.length} events.</p>`}
    ${result && result.events.length > 0 && html`<p class="muted">${result.events.length} event(s) for <code>${result.key}</code>, oldest first.</p>`}
    ${result?.events.map((e) => html`<${EventCard} e=${e} key=${e.id} />`)}
  `;
}
