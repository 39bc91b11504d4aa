/**
 * Console logins and sessions, in memory (a relay restart logs everyone out).
 *
 * - A person logs in with the name and token of one of `api.tokens`; the token is hashed and
 *   compared with every configured hash in constant time, and the name must match too, so a
 *   token alone (or a name alone) does not say which one was wrong.
 * - A session is a random 256-bit id (the cookie) with its own CSRF token (sent by the page in
 *   the `x-csrf-token` header of every POST); both expire together.
 * - Failed logins are counted per remote address in a fixed window; over the limit, logins from
 *   that address are refused before the token is even checked.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ApiConfig } from '../api/operator-api.js';
import type { ConsoleConfig } from './config.js';

export type Role = 'viewer' | 'operator';

export interface Session {
  id: string;
  name: string;
  role: Role;
  csrf: string;
  createdMs: number;
  expiresMs: number;
}

export type LoginResult = { ok: true; session: Session } | { ok: false; reason: 'refused' | 'rate_limited'; retryAfterS?: number };

/** Constant-time string equality (lengths may leak; contents do not). */
export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export class Sessions {
  private readonly sessions = new Map<string, Session>();
  private readonly failures = new Map<string, { count: number; windowStartMs: number }>();
  private readonly users: { name: string; role: Role; hash: string }[];

  constructor(
    tokens: ApiConfig['tokens'],
    private readonly config: ConsoleConfig,
    private readonly now: () => number = Date.now,
  ) {
    this.users = tokens.map((t) => ({ name: t.name, role: t.role, hash: t.tokenHash }));
  }

  get usersConfigured(): boolean {
    return this.users.length > 0;
  }

  login(remote: string, name: string, token: string): LoginResult {
    const now = this.now();
    const windowMs = this.config.failedLoginWindowMinutes * 60_000;
    const f = this.failures.get(remote);
    if (f && now - f.windowStartMs < windowMs && f.count >= this.config.maxFailedLogins) {
      return { ok: false, reason: 'rate_limited', retryAfterS: Math.ceil((f.windowStartMs + windowMs - now) / 1000) };
    }
    const hash = `sha256:${createHash('sha256').update(token).digest('hex')}`;
    // Compare against every user (no early exit) so timing does not tell which name exists.
    let match: (typeof this.users)[number] | undefined;
    for (const u of this.users) {
      const both = safeEqual(u.hash, hash) && safeEqual(u.name, name);
      if (both && !match) match = u;
    }
    if (!match || token.length === 0) {
      if (!f || now - f.windowStartMs >= windowMs) this.failures.set(remote, { count: 1, windowStartMs: now });
      else f.count++;
      if (this.failures.size > 10_000) this.sweep(now);
      return { ok: false, reason: 'refused' };
    }
    this.failures.delete(remote);
    this.sweep(now);
    const session: Session = {
      id: randomBytes(32).toString('base64url'),
      name: match.name,
      role: match.role,
      csrf: randomBytes(32).toString('base64url'),
      createdMs: now,
      expiresMs: now + this.config.sessionTtlMinutes * 60_000,
    };
    this.sessions.set(session.id, session);
    return { ok: true, session };
  }

  get(id: string | undefined): Session | undefined {
    if (!id) return undefined;
    const s = this.sessions.get(id);
    if (!s) return undefined;
    if (s.expiresMs <= this.now()) {
      this.sessions.delete(id);
      return undefined;
    }
    return s;
  }

  logout(id: string): void {
    this.sessions.delete(id);
  }

  /** Drops expired sessions and stale failure counts (on each login, so memory stays bounded by live use). */
  private sweep(now: number): void {
    for (const [id, s] of this.sessions) if (s.expiresMs <= now) this.sessions.delete(id);
    const windowMs = this.config.failedLoginWindowMinutes * 60_000;
    for (const [remote, f] of this.failures) if (now - f.windowStartMs >= windowMs) this.failures.delete(remote);
  }
}
