/** The console's two server-rendered pages: the login form and the app's HTML shell. */

const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const head = (title: string, version: string) =>
  `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">` +
  `<title>${escape(title)}</title><link rel="stylesheet" href="/console/app.css?v=${escape(version)}"></head>`;

export function loginPage(p: { csrf: string; error?: string | undefined; noUsers: boolean }): string {
  return `${head('plantlink relay console: log in', 'login')}<body class="login-body">
<main class="login-card">
  <h1><span class="brand">plantlink</span> relay console</h1>
  ${p.noUsers ? '<p class="error" role="alert">No one can log in: this relay has no <code>api.tokens</code> configured.</p>' : ''}
  ${p.error ? `<p class="error" role="alert">${escape(p.error)}</p>` : ''}
  <form method="post" action="/console/login" autocomplete="off">
    <input type="hidden" name="csrf" value="${escape(p.csrf)}">
    <label>Name <input name="name" required maxlength="64" autofocus></label>
    <label>Token <input name="token" type="password" required></label>
    <button type="submit">Log in</button>
  </form>
  <p class="hint">Use the name and token of one of the relay's <code>api.tokens</code>.</p>
</main></body></html>`;
}

export function shellPage(version: string): string {
  return `${head('plantlink relay console', version)}<body><div id="app"></div><script src="/console/app.js?v=${escape(version)}"></script></body></html>`;
}
