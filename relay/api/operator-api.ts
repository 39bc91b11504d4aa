/**
 * The relay's operator HTTP API (same port as the agents' WebSocket ingress):
 *
 *   GET  /healthz                                   open: the process answers (200)
 *   GET  /readyz                                    open: 200 when inbox open and listening, else 503 {reason}
 *   GET  /metrics                                   Prometheus text; open or viewer (metrics.requireToken)
 *   GET  /v1/status                                 viewer   agents, sinks, counts
 *   GET  /v1/agents                                 viewer   each agent: connected, last seen, backlog, lag
 *   GET  /v1/dead-letters?sink=&code=&subject=&plant=&correlationId=&limit=
 *                                                   viewer   list
 *   GET  /v1/dead-letters/{sink}/{seq}              viewer   one, with its event
 *   POST /v1/dead-letters/replay {sink?, seq?, code?, subject?, plant?, correlationId?, all?}
 *                                                   operator replay (audited in the log)
 *   GET  /v1/trace?key=WO-1001[&plant=P1]           viewer   an event's path, hop by hop (relay/console/trace.ts)
 *   GET  /v1/reconcile?day=YYYY-MM-DD[&plant=&lane=&verify=false]
 *                                                   viewer   reconciliation report (relay/reconcile)
 *   POST /v1/reconcile/repair {day, plant?, lane?}  operator reconcile, then re-send what is missing or stale and
 *                                                            delete duplicates (audited in the log)
 *
 * Access is by bearer token from `api.tokens` (stored as SHA-256 hashes, each with a role);
 * with no tokens configured only the health endpoints (and an open /metrics) answer. Request
 * bodies are capped.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import type { Logger } from '../../protocols/log.js';
import { trace } from '../console/trace.js';
import { reconcileFailure, reconcileOptionsFrom, RepairRequest, type Reconciler } from '../reconcile/reconcile.js';
import type { DeadLetterFilter, RelayStore } from '../store/store.js';

export const ApiToken = z
  .object({
    name: z.string().min(1).max(64).describe('Who holds this token; written to the audit log on every replay.'),
    role: z.enum(['viewer', 'operator']).describe('viewer: read status and dead letters; operator: also replay.'),
    tokenHash: z.string().regex(/^sha256:[0-9a-f]{64}$/).describe('sha256:<hex> of the token (`plantlink relay add-api-token`).'),
  })
  .strict();

export const ApiConfig = z
  .object({ tokens: z.array(ApiToken).default([]).describe('Tokens for the operator API. None: only /healthz and /readyz answer.') })
  .strict()
  .describe('Operator HTTP API.');
export type ApiConfig = z.infer<typeof ApiConfig>;

const MAX_BODY_BYTES = 16 * 1024;

const ReplayRequest = z
  .object({
    sink: z.string().optional(),
    seq: z.number().int().positive().optional(),
    code: z.string().optional(),
    subject: z.string().optional(),
    plant: z.string().optional(),
    correlationId: z.string().optional(),
    all: z.literal(true).optional(),
  })
  .strict();

export interface OperatorApiDeps {
  config: ApiConfig;
  store: RelayStore;
  status: () => unknown;
  /** For /readyz: why the relay cannot take work, if it cannot. */
  ready: () => { ready: true } | { ready: false; reason: string };
  /** For /v1/agents. */
  agents?: () => unknown;
  /** Prometheus exposition for /metrics; absent: 404. */
  metrics?: { requireToken: boolean; scrape: () => Promise<{ contentType: string; body: string }> };
  /** Called after a replay so the delivery workers pick the events up at once. */
  onReplay: (replayed: number) => void;
  /** Reconciliation; absent: 404. */
  reconciler?: Reconciler;
  /** Called after a repair re-sent deliveries, so the workers take them at once. */
  onResend?: () => void;
  logger: Logger;
}

export function operatorApi(deps: OperatorApiDeps) {
  const tokens = deps.config.tokens.map((t) => ({ ...t, hash: Buffer.from(t.tokenHash) }));

  function who(req: IncomingMessage): (typeof tokens)[number] | undefined {
    const header = req.headers.authorization;
    if (!header?.startsWith('Bearer ')) return undefined;
    const hash = Buffer.from(`sha256:${createHash('sha256').update(header.slice(7).trim()).digest('hex')}`);
    return tokens.find((t) => t.hash.length === hash.length && timingSafeEqual(t.hash, hash));
  }

  function send(res: ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  function unauthorized(res: ServerResponse): void {
    res.setHeader('www-authenticate', 'Bearer');
    send(res, 401, { error: tokens.length ? 'missing or unknown bearer token' : 'the operator API is off: no api.tokens configured' });
  }

  async function readJson(req: IncomingMessage): Promise<unknown> {
    let size = 0;
    const chunks: Buffer[] = [];
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY_BYTES) throw new Error(`body over ${MAX_BODY_BYTES} bytes`);
      chunks.push(chunk as Buffer);
    }
    return chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : {};
  }

  return async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://relay');
    const path = url.pathname;
    if (req.method === 'GET' && path === '/healthz') return send(res, 200, { status: 'ok' });
    if (req.method === 'GET' && path === '/readyz') {
      const r = deps.ready();
      return r.ready ? send(res, 200, { status: 'ready' }) : send(res, 503, { status: 'not ready', reason: r.reason });
    }
    if (req.method === 'GET' && path === '/metrics' && deps.metrics) {
      if (deps.metrics.requireToken && !who(req)) return unauthorized(res);
      const { contentType, body } = await deps.metrics.scrape();
      res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
      return void res.end(body);
    }
    if (!path.startsWith('/v1/')) return send(res, 404, { error: 'not found' });

    const caller = who(req);
    if (!caller) return unauthorized(res);
    const q = url.searchParams;
    const filter = (): DeadLetterFilter => ({
      sink: q.get('sink') ?? undefined,
      code: q.get('code') ?? undefined,
      subject: q.get('subject') ?? undefined,
      plant: q.get('plant') ?? undefined,
      correlationId: q.get('correlationId') ?? undefined,
    });

    if (req.method === 'GET' && path === '/v1/status') return send(res, 200, await deps.status());
    if (req.method === 'GET' && path === '/v1/agents' && deps.agents) return send(res, 200, { agents: await deps.agents() });
    if (req.method === 'GET' && path === '/v1/dead-letters') {
      const limit = Math.min(1000, Math.max(1, Number(q.get('limit') ?? 100) || 100));
      return send(res, 200, { deadLetters: await deps.store.listDeliveries({ ...filter(), status: 'dead', limit }) });
    }
    const one = /^\/v1\/dead-letters\/([^/]+)\/(\d+)$/.exec(path);
    if (req.method === 'GET' && one) {
      const row = await deps.store.getDelivery(decodeURIComponent(one[1]!), Number(one[2]));
      return row && row.status === 'dead' ? send(res, 200, row) : send(res, 404, { error: 'no such dead letter' });
    }
    if (req.method === 'POST' && path === '/v1/dead-letters/replay') {
      if (caller.role !== 'operator') return send(res, 403, { error: `${caller.name} is a viewer; replay needs the operator role` });
      let body;
      try {
        body = ReplayRequest.parse(await readJson(req));
      } catch (e) {
        return send(res, 400, { error: `bad replay request: ${e instanceof z.ZodError ? e.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') : (e as Error).message}` });
      }
      const { seq, ...rest } = body;
      const replayed = await deps.store.replayDead({ ...rest, ...(seq === undefined ? {} : { inboxSeq: seq }) });
      deps.logger.warn({ audit: 'replay', by: caller.name, request: body, replayed }, 'dead letters replayed');
      if (replayed > 0) deps.onReplay(replayed);
      return send(res, 200, { replayed });
    }
    if (req.method === 'GET' && path === '/v1/trace') {
      return send(res, 200, await trace(deps.store, q.get('key') ?? '', q.get('plant') || undefined));
    }
    if (deps.reconciler && req.method === 'GET' && path === '/v1/reconcile') {
      const reconciler = deps.reconciler;
      return answer(res, () => reconciler.reconcile(reconcileOptionsFrom(q)));
    }
    if (deps.reconciler && req.method === 'POST' && path === '/v1/reconcile/repair') {
      if (caller.role !== 'operator') return send(res, 403, { error: `${caller.name} is a viewer; repair needs the operator role` });
      let body;
      try {
        body = RepairRequest.parse(await readJson(req));
      } catch (e) {
        return send(res, 400, { error: `bad repair request: ${e instanceof z.ZodError ? e.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') : (e as Error).message}` });
      }
      const reconciler = deps.reconciler;
      const request = body;
      return answer(res, async () => {
        const { report, repair } = await reconciler.reconcileAndRepair(request);
        deps.logger.warn({ audit: 'reconcile-repair', by: caller.name, request, resent: repair.resent, deleted: repair.deleted, errors: repair.errors }, 'reconciliation repair');
        if (repair.resent.some((r) => r.events > 0)) deps.onResend?.();
        return { report, repair };
      });
    }
    return send(res, 404, { error: 'not found' });
  };

  /** Runs `work` and answers its result; a bad request is 400, a target that cannot be reached 502. */
  async function answer(res: ServerResponse, work: () => Promise<unknown>): Promise<void> {
    try {
      send(res, 200, await work());
    } catch (e) {
      const failure = reconcileFailure(e);
      if (!failure) throw e;
      send(res, failure.status, { error: failure.message });
    }
  }
}
