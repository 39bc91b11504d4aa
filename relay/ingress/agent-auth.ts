/**
 * Per-agent credentials. A token is `<agentId>.<secret>` with a 256-bit random secret; the
 * relay config stores only `sha256:<hex>` of the whole token. A fast hash is right here
 * because the secret is random and long, not a password a person chose (the same reasoning
 * as API tokens stored by GitHub or Stripe); comparison is constant-time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';

export const AgentCredential = z
  .object({
    id: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'letters, digits, _ and - only').describe('Agent id; also the token prefix.'),
    plant: z.string().min(1).max(64).describe('The one plant this agent may send events for.'),
    tokenHash: z.string().regex(/^sha256:[0-9a-f]{64}$/, 'must be sha256:<64 hex>, as printed by `plantlink relay add-agent`').describe('Hash of the agent token.'),
  })
  .strict();
export type AgentCredential = z.infer<typeof AgentCredential>;

export function hashToken(token: string): string {
  return `sha256:${createHash('sha256').update(token, 'utf8').digest('hex')}`;
}

export function issueToken(agentId: string): { token: string; tokenHash: string } {
  const token = `${agentId}.${randomBytes(32).toString('base64url')}`;
  return { token, tokenHash: hashToken(token) };
}

export class AgentDirectory {
  private readonly byId: Map<string, AgentCredential>;
  constructor(agents: readonly AgentCredential[]) {
    this.byId = new Map(agents.map((a) => [a.id, a]));
  }

  /** The registered agent with this id (its plant binding), whatever transport it uses. */
  get(id: string): AgentCredential | undefined {
    return this.byId.get(id);
  }

  all(): AgentCredential[] {
    return [...this.byId.values()];
  }

  /** The agent a bearer token belongs to, or a reason it does not authenticate. */
  authenticate(authorization: string | undefined): { ok: true; agent: AgentCredential } | { ok: false; reason: string } {
    if (!authorization?.startsWith('Bearer ')) return { ok: false, reason: 'missing bearer token' };
    return this.authenticateToken(authorization.slice('Bearer '.length).trim());
  }

  /** The agent a token belongs to (an MQTT password, for example), or a reason it does not authenticate. */
  authenticateToken(token: string): { ok: true; agent: AgentCredential } | { ok: false; reason: string } {
    const dot = token.indexOf('.');
    if (dot <= 0) return { ok: false, reason: 'malformed token' };
    const agent = this.byId.get(token.slice(0, dot));
    const expected = Buffer.from(agent?.tokenHash ?? hashToken('no-such-agent'), 'utf8');
    const actual = Buffer.from(hashToken(token), 'utf8');
    // Always compare, so an unknown agent id costs the same time as a wrong secret.
    const match = expected.length === actual.length && timingSafeEqual(expected, actual);
    if (!agent || !match) return { ok: false, reason: 'unknown agent or wrong token' };
    return { ok: true, agent };
  }
}
