// Plants and agents: connection, last seen, backlogs per plant; throughput over the last hour.
import { html } from 'htm/preact';
import { useEffect, useMemo, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { ago, duration } from './api.js';
import { usePoll } from './poll.js';

function byPlant(agents) {
  const plants = new Map();
  for (const a of agents) {
    if (!plants.has(a.plant)) plants.set(a.plant, []);
    plants.get(a.plant).push(a);
  }
  return [...plants].sort(([a], [b]) => a.localeCompare(b));
}

function PlantCard({ plant, agents, now }) {
  const connected = agents.filter((a) => a.connected).length;
  const backlog = agents.reduce((n, a) => n + (a.backlog?.pending ?? 0), 0);
  const atRelay = agents[0]?.relay?.pendingEvents ?? 0;
  const oldest = Math.max(...agents.map((a) => (a.backlog?.pending ? a.backlog.oldestPendingAgeMs ?? 0 : 0)), 0);
  return html`
    <section class="card" data-testid=${`plant-${plant}`}>
      <h2>${plant} <span class=${`pill ${connected ? 'ok' : 'bad'}`}>${connected}/${agents.length} connected</span></h2>
      <div class="figures">
        <div><b>${backlog}</b><span>waiting at the plant</span></div>
        <div><b>${backlog ? duration(oldest) : '-'}</b><span>oldest pending at the plant</span></div>
        <div><b>${atRelay}</b><span>waiting at the relay</span></div>
        <div><b>${atRelay ? duration(agents[0]?.relay?.oldestPendingAgeMs) : '-'}</b><span>relay lag</span></div>
      </div>
      <table>
        <thead><tr><th>Agent</th><th>Connected</th><th>Last seen</th><th>From</th><th>Backlog</th><th>Oldest pending</th><th>Events since start</th></tr></thead>
        <tbody>
          ${agents.map(
            (a) => html`<tr data-testid=${`agent-${a.id}`}>
              <td>${a.id}</td>
              <td><span class=${`dot ${a.connected ? 'ok' : 'bad'}`}></span>${a.connected ? `yes, for ${duration(now - a.connectedMs)}` : a.lastSeenMs ? `no, since ${ago(a.disconnectedMs, now)}` : 'never seen'}</td>
              <td>${ago(a.lastSeenMs, now)}</td>
              <td>${a.remote ?? '-'}</td>
              <td>${a.backlog ? a.backlog.pending : '?'}</td>
              <td>${a.backlog?.pending ? duration(a.backlog.oldestPendingAgeMs) : '-'}</td>
              <td>${a.events ?? 0}</td>
            </tr>`,
          )}
        </tbody>
      </table>
    </section>
  `;
}

/** A uPlot chart in a div: created with `options` on the first data, fed each new data after. */
function Chart({ options, data, testid }) {
  const box = useRef(null);
  const chart = useRef(null);
  useEffect(() => {
    if (!data) return;
    if (!chart.current) chart.current = new uPlot({ width: Math.max(320, box.current.clientWidth - 8), ...options }, data, box.current);
    else chart.current.setData(data);
  }, [data]);
  useEffect(() => () => chart.current?.destroy(), []);
  return html`<div ref=${box} class="chart" data-testid=${testid}></div>`;
}

const THROUGHPUT_CHART = {
  height: 220,
  scales: { y: { range: (_u, _min, max) => [0, Math.max(5, max * 1.1)] } },
  axes: [{}, { label: 'events / min' }],
  series: [
    {},
    { label: 'stored', stroke: '#2563eb', width: 2, fill: 'rgba(37,99,235,0.08)', points: { show: false } },
    { label: 'delivered', stroke: '#16a34a', width: 2, points: { show: false } },
    { label: 'dead-lettered', stroke: '#dc2626', width: 2, points: { show: false } },
  ],
};

function ThroughputChart({ minutes }) {
  const data = useMemo(() => minutes && [minutes.map((m) => m.minuteMs / 1000), minutes.map((m) => m.stored), minutes.map((m) => m.delivered), minutes.map((m) => m.deadLettered)], [minutes]);
  return html`<${Chart} options=${THROUGHPUT_CHART} data=${data} testid="throughput-chart" />`;
}

/** Short latency text for axes and captions: 850 ms, 2.4 s, 3.5 min, 2.1 h. */
function latency(ms) {
  if (ms === null || ms === undefined) return '-';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3_600_000) return `${(ms / 60_000).toFixed(1)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

const LATENCY_CHART = {
  height: 200,
  scales: { y: { range: (_u, _min, max) => [0, Math.max(50, (max ?? 0) * 1.1)] } },
  axes: [{}, { label: 'latency', size: 70, values: (_u, ticks) => ticks.map(latency) }],
  series: [
    {},
    { label: 'p50', stroke: '#16a34a', width: 2, points: { show: true, size: 4 }, spanGaps: false },
    { label: 'p95', stroke: '#d97706', width: 2, points: { show: true, size: 4 }, spanGaps: false },
  ],
};

function LatencyChart({ minutes }) {
  const data = useMemo(() => minutes && [minutes.map((m) => m.minuteMs / 1000), minutes.map((m) => m.p50), minutes.map((m) => m.p95)], [minutes]);
  return html`<${Chart} options=${LATENCY_CHART} data=${data} testid="latency-chart" />`;
}

export function AgentsPage() {
  const [agents, agentsError] = usePoll('/api/agents', 5000);
  const [throughput, throughputError] = usePoll('/api/throughput', 10000);
  const now = agents?.nowMs ?? Date.now();
  const lastLatency = throughput?.latency?.filter((m) => m.count > 0).at(-1);
  const total = throughput?.minutes.reduce((t, m) => ({ stored: t.stored + m.stored, delivered: t.delivered + m.delivered }), { stored: 0, delivered: 0 });
  return html`
    <h1>Plants and agents</h1>
    ${agentsError && html`<p class="error">${agentsError}</p>`}
    ${agents && agents.agents.length === 0 && html`<p class="muted">No agents are registered in this relay's config.</p>`}
    <div class="cards">${agents && byPlant(agents.agents).map(([plant, list]) => html`<${PlantCard} plant=${plant} agents=${list} now=${now} />`)}</div>
    <section class="card">
      <h2>Throughput, last hour ${total && html`<span class="muted small">${total.stored} stored, ${total.delivered} delivered</span>`}</h2>
      ${throughputError && html`<p class="error">${throughputError}</p>`}
      <${ThroughputChart} minutes=${throughput?.minutes} />
    </section>
    <section class="card">
      <h2>Agent-to-CRM latency, last hour ${lastLatency && html`<span class="muted small" data-testid="latency-now">last minute with deliveries: p50 ${latency(lastLatency.p50)}, p95 ${latency(lastLatency.p95)}, ${lastLatency.count} delivered</span>`}</h2>
      <p class="muted small">From the moment the agent read the fact at its source (the event's readtime) to the sink confirming the write, per minute, all sinks.</p>
      <${LatencyChart} minutes=${throughput?.latency} />
    </section>
  `;
}
