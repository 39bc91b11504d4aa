// The relay console's single-page app: preact + htm, hash routes, polling the console API.
import { render } from 'preact';
import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { api, setCsrf } from './api.js';
import { AgentsPage } from './agents.js';
import { DeadLettersPage } from './dead-letters.js';
import { AuditPage } from './audit.js';
import { TracePage } from './trace.js';
import { ReconcilePage } from './reconcile.js';
import './styles.css';

const PAGES = [
  { path: '#/agents', title: 'Plants and agents', component: AgentsPage },
  { path: '#/trace', title: 'Event trace', component: TracePage },
  { path: '#/dead-letters', title: 'Dead letters', component: DeadLettersPage },
  { path: '#/reconcile', title: 'Reconciliation', component: ReconcilePage },
  { path: '#/audit', title: 'Audit', component: AuditPage },
];

function useHash() {
  const [hash, setHash] = useState(window.location.hash || '#/agents');
  useEffect(() => {
    const on = () => setHash(window.location.hash || '#/agents');
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return hash;
}

function App() {
  const [session, setSession] = useState(undefined);
  const [error, setError] = useState(undefined);
  const hash = useHash();
  useEffect(() => {
    api('/api/session')
      .then((s) => {
        setCsrf(s.csrf);
        setSession(s);
      })
      .catch((e) => setError(e.message));
  }, []);
  if (error) return html`<p class="error">${error}</p>`;
  if (!session) return html`<p class="muted pad">Loading…</p>`;
  // A page's own query (#/trace?key=WO-1) does not change the page.
  const page = PAGES.find((p) => p.path === hash.split('?')[0]) ?? PAGES[0];
  const logout = async () => {
    await api('/logout', { method: 'POST', body: {} }).catch(() => undefined);
    window.location.assign('/console/login');
  };
  return html`
    <header class="top">
      <span class="brand">plantlink</span><span class="product">relay console</span>
      <nav>${PAGES.map((p) => html`<a href=${p.path} class=${p === page ? 'active' : ''}>${p.title}</a>`)}</nav>
      <span class="who" data-testid="who">${session.name} <span class=${`role role-${session.role}`}>${session.role}</span></span>
      <button class="link" onClick=${logout} data-testid="logout">Log out</button>
    </header>
    <main class="content"><${page.component} session=${session} /></main>
  `;
}

render(html`<${App} />`, document.getElementById('app'));
