/**
 * The relay's web console, on the relay's port under /console/ (see README.md here):
 *
 *   GET  /console/login, POST /console/login    form: name + token of one of `api.tokens`
 *   POST /console/logout                        ends the session
 *   GET  /console/                              the single-page app (needs a session)
 *   GET  /console/app.js, /console/app.css      its bundle (no secrets; open)
 *   GET  /console/api/{session,agents,throughput,dead-letters,audit}   viewer
 *   GET  /console/api/trace?key=WO-1001[&plant=P1]                     viewer
 *   GET  /console/api/reconcile?day=YYYY-MM-DD[&plant=&lane=&verify=false]  viewer
 *   POST /console/api/reconcile/repair {day, plant?, lane?}            operator; audited in console.sqlite
 *   POST /console/api/replay                    operator; audited in console.sqlite
 *
 * Invariants
 * - Every POST carries a CSRF token: the session's, in the `x-csrf-token` header; the login
 *   form a double-submit token (cookie + hidden field), so nobody can log a browser in as
 *   someone else. Cookies are HttpOnly, SameSite=Strict, Path=/console, Secure under TLS.
 * - Roles come from `api.tokens`: viewers see; only operators replay, checked here on the
 *   server (the page merely hides the buttons).
 * - A replay writes its audit row (who, when, what, how many) before it answers.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import type { Logger } from '../../protocols/log.js';
import { isRepairable, reconcileFailure, reconcileOptionsFrom, RepairRequest, type Reconciler } from '../reconcile/reconcile.js';
import type { ApiConfig } from '../api/operator-api.js';
import type { RelayStore } from '../store/store.js';
import { consoleAssets } from './assets.js';
import { ReplayAudit } from './audit.js';
import type { ConsoleConfig } from './config.js';
import { causeOf, group, impactOf, listDeadLetters, matches, MAX_LISTED, type ConsoleFilter } from './dead-letters.js';
import { loginPage, shellPage } from './pages.js';
import { Sessions, safeEqual, type Session } from './sessions.js';
import type { LatencyMinute } from '../metrics/latency-window.js';
import { Throughput, type ThroughputTotals } from './throughput.js';
import { trace } from './trace.js';

export const CONSOLE_PREFIX = '/console';
const SESSION_COOKIE = 'plantlink_console';
const LOGIN_CSRF_COOKIE = 'plantlink_console_login';
const MAX_BODY_BYTES = 16 * 1024;

const Cause = z.enum(['validation', 'mapping', 'auth', 'rate_limit', 'other']);
const Impact = z.enum(['orders_blocked', 'shipments_not_reflected', 'other']);
const ReplayRequest = z.union([
  z.object({ items: z.array(z.object({ sink: z.string().min(1), seq: z.number().int().positive() }).strict()).min(1).max(1000) }).strict(),
  z
    .object({
      filter: z
        .object({ cause: Cause.optional(), impact: Impact.optional(), sink: z.string().optional(), code: z.string().optional(), plant: z.string().optional(), all: z.literal(true).optional() })
        .strict()
        .refine((f) => f.all || Object.values(f).some((v) => v !== undefined), 'an empty filter replays nothing; say `all: true` to replay every dead letter'),
    })
    .strict(),
]);

/** Reconciliation's request errors as 400, a target that refused or did not answer as 502. */
async function reconcileCall<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (e) {
    const failure = reconcileFailure(e);
    throw failure ? new HttpError(failure.status, failure.message) : e;
  }
}

export interface WebConsoleDeps {
  config: ConsoleConfig;
  tokens: ApiConfig['tokens'];
  tls: boolean;
  /** console.sqlite (the replay audit) goes here. */
  dataDir: string;
  store: RelayStore;
  agents: () => Promise<unknown>;
  /** Running totals of events stored, delivered and dead-lettered (RelayMetrics.totals). */
  totals: () => ThroughputTotals;
  /** Agent-to-sink latency per minute, last hour (RelayMetrics.agentToSink). */
  latency: () => LatencyMinute[];
  /** After a replay, so the delivery workers pick the events up at once. */
  onReplay: (replayed: number) => void;
  reconciler?: Reconciler;
  /** After a repair re-sent deliveries. */
  onResend?: () => void;
  logger: Logger;
  now?: () => number;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function cookies(req: IncomingMessage): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out.set(part.slice(0, i).trim(), part.slice(i + 1).trim());
  }
  return out;
}

async function readBody(req: IncomingMessage): Promise<string> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `body over ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export class WebConsole {
  private readonly sessions: Sessions;
  private readonly throughput: Throughput;
  private audit: ReplayAudit | undefined;

  constructor(private readonly deps: WebConsoleDeps) {
    this.sessions = new Sessions(deps.tokens, deps.config, deps.now);
    this.throughput = new Throughput(deps.totals, deps.now);
    if (deps.config.enabled) this.throughput.start();
  }

  /** Whether this request is the console's (the relay's handler asks before the operator API). */
  handles(req: IncomingMessage): boolean {
    if (!this.deps.config.enabled) return false;
    const path = (req.url ?? '/').split('?')[0]!;
    return path === CONSOLE_PREFIX || path.startsWith(`${CONSOLE_PREFIX}/`);
  }

  close(): void {
    this.throughput.stop();
    this.audit?.close();
  }

  /** Opened on first use, so a relay whose console nobody opens never creates the file. */
  private auditLog(): ReplayAudit {
    this.audit ??= new ReplayAudit(this.deps.dataDir, this.deps.now);
    return this.audit;
  }

  private cookie(name: string, value: string, maxAgeS: number): string {
    return `${name}=${value}; Path=${CONSOLE_PREFIX}; HttpOnly; SameSite=Strict; Max-Age=${maxAgeS}${this.deps.tls ? '; Secure' : ''}`;
  }

  private send(res: ServerResponse, status: number, type: string, body: string, headers: Record<string, string | string[]> = {}): void {
    res.writeHead(status, {
      'content-type': type,
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      'x-frame-options': 'DENY',
      'referrer-policy': 'no-referrer',
      'content-security-policy':
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
      ...headers,
    });
    res.end(body);
  }

  private json(res: ServerResponse, status: number, body: unknown): void {
    this.send(res, status, 'application/json', JSON.stringify(body));
  }

  private redirect(res: ServerResponse, to: string, headers: Record<string, string | string[]> = {}): void {
    this.send(res, 303, 'text/plain', `see ${to}`, { location: to, ...headers });
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      await this.route(req, res);
    } catch (e) {
      if (!(e instanceof HttpError)) throw e;
      this.json(res, e.status, { error: e.message });
    }
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://relay');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    const jar = cookies(req);
    const session = this.sessions.get(jar.get(SESSION_COOKIE));

    if (method === 'GET' && path === CONSOLE_PREFIX) return this.redirect(res, `${CONSOLE_PREFIX}/`);
    if (method === 'GET' && (path === `${CONSOLE_PREFIX}/app.js` || path === `${CONSOLE_PREFIX}/app.css`)) {
      const assets = await consoleAssets();
      const js = path.endsWith('.js');
      return this.send(res, 200, js ? 'text/javascript; charset=utf-8' : 'text/css; charset=utf-8', js ? assets.js : assets.css, { 'cache-control': 'no-cache', etag: `"${assets.version}"` });
    }
    if (path === `${CONSOLE_PREFIX}/login`) {
      if (method === 'GET') return this.showLogin(res, session);
      if (method === 'POST') return this.login(req, res, jar);
    }
    if (method === 'GET' && path === `${CONSOLE_PREFIX}/`) {
      if (!session) return this.redirect(res, `${CONSOLE_PREFIX}/login`);
      const { version } = await consoleAssets();
      return this.send(res, 200, 'text/html; charset=utf-8', shellPage(version));
    }

    // Everything below needs a session; every POST its CSRF token.
    if (!session) throw new HttpError(401, 'not logged in (or the session expired): log in at /console/login');
    if (method === 'POST') {
      const sent = req.headers['x-csrf-token'];
      if (typeof sent !== 'string' || !safeEqual(sent, session.csrf)) throw new HttpError(403, 'missing or wrong CSRF token (x-csrf-token)');
    }
    if (method === 'POST' && path === `${CONSOLE_PREFIX}/logout`) {
      this.sessions.logout(session.id);
      return this.send(res, 200, 'application/json', JSON.stringify({ loggedOut: true }), { 'set-cookie': this.cookie(SESSION_COOKIE, '', 0) });
    }
    if (method === 'GET' && path === `${CONSOLE_PREFIX}/api/session`) {
      return this.json(res, 200, { name: session.name, role: session.role, csrf: session.csrf, expiresMs: session.expiresMs });
    }
    if (method === 'GET' && path === `${CONSOLE_PREFIX}/api/agents`) return this.json(res, 200, { agents: await this.deps.agents(), nowMs: Date.now() });
    if (method === 'GET' && path === `${CONSOLE_PREFIX}/api/throughput`) return this.json(res, 200, { minutes: this.throughput.lastHour(), latency: this.deps.latency() });
    if (method === 'GET' && path === `${CONSOLE_PREFIX}/api/trace`) {
      return this.json(res, 200, await trace(this.deps.store, url.searchParams.get('key') ?? '', url.searchParams.get('plant') || undefined));
    }
    if (method === 'GET' && path === `${CONSOLE_PREFIX}/api/dead-letters`) return this.json(res, 200, group(await listDeadLetters(this.deps.store)));
    if (method === 'GET' && path === `${CONSOLE_PREFIX}/api/audit`) return this.json(res, 200, { audit: this.auditLog().list(100) });
    if (method === 'POST' && path === `${CONSOLE_PREFIX}/api/replay`) return this.replay(req, res, session);
    if (this.deps.reconciler && method === 'GET' && path === `${CONSOLE_PREFIX}/api/reconcile`) {
      const reconciler = this.deps.reconciler;
      return this.json(res, 200, await reconcileCall(() => reconciler.reconcile(reconcileOptionsFrom(url.searchParams))));
    }
    if (this.deps.reconciler && method === 'POST' && path === `${CONSOLE_PREFIX}/api/reconcile/repair`) return this.repair(req, res, session, this.deps.reconciler);
    throw new HttpError(404, 'not found');
  }

  private showLogin(res: ServerResponse, session: Session | undefined, error?: string, status = 200): void {
    if (session && !error) return this.redirect(res, `${CONSOLE_PREFIX}/`);
    const csrf = randomBytes(24).toString('base64url');
    this.send(res, status, 'text/html; charset=utf-8', loginPage({ csrf, error, noUsers: !this.sessions.usersConfigured }), {
      'set-cookie': this.cookie(LOGIN_CSRF_COOKIE, csrf, 600),
    });
  }

  private async login(req: IncomingMessage, res: ServerResponse, jar: Map<string, string>): Promise<void> {
    const form = new URLSearchParams(await readBody(req));
    const expected = jar.get(LOGIN_CSRF_COOKIE);
    const sent = form.get('csrf') ?? '';
    if (!expected || !safeEqual(sent, expected)) return this.showLogin(res, undefined, 'The login form expired; please try again.', 403);
    const remote = req.socket.remoteAddress ?? 'unknown';
    const name = form.get('name') ?? '';
    const result = this.sessions.login(remote, name, form.get('token') ?? '');
    if (!result.ok) {
      this.deps.logger.warn({ audit: 'console-login-failed', name: name.slice(0, 64), remote, reason: result.reason }, 'console login refused');
      if (result.reason === 'rate_limited') return this.showLogin(res, undefined, `Too many failed logins from your address; try again in ${result.retryAfterS ?? 60} s.`, 429);
      return this.showLogin(res, undefined, 'Name or token not accepted.', 401);
    }
    const s = result.session;
    this.deps.logger.info({ audit: 'console-login', by: s.name, role: s.role, remote }, 'console login');
    this.redirect(res, `${CONSOLE_PREFIX}/`, {
      'set-cookie': [this.cookie(SESSION_COOKIE, s.id, Math.floor((s.expiresMs - s.createdMs) / 1000)), this.cookie(LOGIN_CSRF_COOKIE, '', 0)],
    });
  }

  private async replay(req: IncomingMessage, res: ServerResponse, session: Session): Promise<void> {
    if (session.role !== 'operator') throw new HttpError(403, `${session.name} is a viewer; replay needs the operator role`);
    let body: z.infer<typeof ReplayRequest>;
    try {
      body = ReplayRequest.parse(JSON.parse((await readBody(req)) || '{}'));
    } catch (e) {
      if (e instanceof HttpError) throw e;
      throw new HttpError(400, `bad replay request: ${e instanceof z.ZodError ? e.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') : (e as Error).message}`);
    }
    const targets = 'items' in body ? body.items : await this.select(body.filter);
    let replayed = 0;
    // One (sink, seq) at a time: the store's replay takes a filter, and a cause or impact is a
    // set of codes and types, not one column.
    for (const t of targets) replayed += await this.deps.store.replayDead({ sink: t.sink, inboxSeq: t.seq });
    const row = this.auditLog().record({ by: session.name, role: session.role, request: body, matched: targets.length, replayed });
    this.deps.logger.warn({ audit: 'replay', via: 'console', by: session.name, request: body, matched: targets.length, replayed }, 'dead letters replayed');
    if (replayed > 0) this.deps.onReplay(replayed);
    this.json(res, 200, { replayed, matched: targets.length, audit: row });
  }

  private async repair(req: IncomingMessage, res: ServerResponse, session: Session, reconciler: Reconciler): Promise<void> {
    if (session.role !== 'operator') throw new HttpError(403, `${session.name} is a viewer; repair needs the operator role`);
    let request: RepairRequest;
    try {
      request = RepairRequest.parse(JSON.parse((await readBody(req)) || '{}'));
    } catch (e) {
      if (e instanceof HttpError) throw e;
      throw new HttpError(400, `bad repair request: ${e instanceof z.ZodError ? e.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') : (e as Error).message}`);
    }
    const { report, repair } = await reconcileCall(() => reconciler.reconcileAndRepair(request));
    const resent = repair.resent.reduce((n, r) => n + r.events, 0);
    const deleted = repair.deleted.reduce((n, d) => n + d.ids.length, 0);
    const row = this.auditLog().record({ by: session.name, role: session.role, request: { repair: request }, matched: report.findings.filter(isRepairable).length, replayed: resent + deleted });
    this.deps.logger.warn({ audit: 'reconcile-repair', via: 'console', by: session.name, request, resent: repair.resent, deleted: repair.deleted, errors: repair.errors }, 'reconciliation repair');
    if (resent > 0) this.deps.onResend?.();
    this.json(res, 200, { report, repair, audit: row });
  }

  private async select(filter: ConsoleFilter & { all?: true | undefined }): Promise<{ sink: string; seq: number }[]> {
    const rows = await this.deps.store.listDeliveries({ status: 'dead', limit: MAX_LISTED, sink: filter.sink, code: filter.code, plant: filter.plant });
    return rows
      .filter((r) => matches({ cause: causeOf(r.errorCode), impact: impactOf(r.type), sink: r.sink, code: r.errorCode, plant: r.plant }, filter))
      .map((r) => ({ sink: r.sink, seq: r.inboxSeq }));
  }
}
