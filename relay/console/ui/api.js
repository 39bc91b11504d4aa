// Talks to the console's JSON API; every POST carries the session's CSRF token.
let csrf = '';

export function setCsrf(token) {
  csrf = token;
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function api(path, init = {}) {
  const headers = { accept: 'application/json' };
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  if ((init.method ?? 'GET') !== 'GET') headers['x-csrf-token'] = csrf;
  const res = await fetch(`/console${path}`, { method: init.method ?? 'GET', headers, body: init.body === undefined ? undefined : JSON.stringify(init.body), credentials: 'same-origin' });
  if (res.status === 401) {
    window.location.assign('/console/login');
    throw new ApiError(401, 'session ended');
  }
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new ApiError(res.status, body.error ?? `HTTP ${res.status}`);
  return body;
}

export function ago(ms, now = Date.now()) {
  if (ms === undefined || ms === null) return 'never';
  return `${duration(now - ms)} ago`;
}

export function duration(ms) {
  if (ms === undefined || ms === null) return '-';
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

export function time(ms) {
  return new Date(ms).toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
}
