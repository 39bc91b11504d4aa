/**
 * The emulator's side of the OAuth 2.0 JWT bearer flow: checks an assertion against the
 * apps (consumer key, uploaded certificate, approved users) it was given, independently
 * of the sink's signer (RS256 verification here is plain node:crypto `verify`).
 *
 * Check order, first failure answers: decodable JWS with `alg: RS256`; `iss` a known
 * consumer key; signature by that app's certificate; `aud` one of the accepted
 * audiences; `exp` a number (or numeric string) in the future and at most 3 minutes
 * ahead; `sub` (or `prn`, which wins when both are set) a user approved for the app.
 * See README.md for which answers are documented and which assumed.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { decodeJwt } from '../netsuite/jwt.js';

export interface JwtBearerClient {
  /** Consumer key: the assertion's `iss`. */
  clientId: string;
  /** The certificate uploaded to the app (PEM), its public key (PEM), or either as a KeyObject (a private key is reduced to its public half). */
  certificate: string | KeyObject;
  /** Usernames pre-authorized for the app (admin-approved profile or permission set); others get "user hasn't approved this consumer". */
  users: string[];
}

/** One assertion as received: header and claims as decoded, and the answer it got. */
export interface ReceivedAssertion {
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
  /** Emulator clock when it arrived, ms since the epoch. */
  receivedAt: number;
  /** `accepted`, or the OAuth error as `error: description`. */
  verdict: string;
}

export type JwtBearerVerdict = { ok: true; clientId: string; username: string } | { ok: false; error: string; description: string };

/** Written out here, not imported from the sink, so a typo there cannot be mirrored. */
export const JWT_BEARER_GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

/** Documented: "the expiration time of the assertion within 3 minutes". */
export const MAX_ASSERTION_LIFETIME_S = 180;

const refuse = (error: string, description: string): JwtBearerVerdict => ({ ok: false, error, description });
const INVALID_ASSERTION = refuse('invalid_grant', 'invalid assertion');

export class JwtBearerVerifier {
  private readonly clients = new Map<string, { key: KeyObject; users: Set<string> }>();
  private readonly received: ReceivedAssertion[] = [];

  constructor(
    clients: JwtBearerClient[],
    private readonly audiences: () => readonly string[],
  ) {
    for (const c of clients) {
      const key = typeof c.certificate === 'string' ? createPublicKey(c.certificate) : c.certificate.type === 'private' ? createPublicKey(c.certificate) : c.certificate;
      this.clients.set(c.clientId, { key, users: new Set(c.users) });
    }
  }

  /** Every decodable assertion received so far, oldest first. */
  assertions(): ReceivedAssertion[] {
    return this.received.map((a) => ({ ...a, header: { ...a.header }, claims: { ...a.claims } }));
  }

  /** Approves (or revokes approval of) `username` for the app, as an admin editing its profiles would. */
  setApproved(clientId: string, username: string, approved: boolean): void {
    const client = this.clients.get(clientId);
    if (!client) throw new Error(`no JWT bearer client ${clientId}`);
    if (approved) client.users.add(username);
    else client.users.delete(username);
  }

  verify(assertion: string | null, now: number): JwtBearerVerdict {
    const jwt = assertion ? decodeJwt(assertion) : undefined;
    if (!jwt) return INVALID_ASSERTION;
    const verdict = this.check(jwt, now);
    this.received.push({
      header: jwt.header,
      claims: jwt.payload,
      receivedAt: now,
      verdict: verdict.ok ? 'accepted' : `${verdict.error}: ${verdict.description}`,
    });
    return verdict;
  }

  private check(jwt: NonNullable<ReturnType<typeof decodeJwt>>, now: number): JwtBearerVerdict {
    const { header, payload } = jwt;
    if (header.alg !== 'RS256') return INVALID_ASSERTION;
    const client = typeof payload.iss === 'string' ? this.clients.get(payload.iss) : undefined;
    if (!client) return refuse('invalid_client_id', 'client identifier invalid');
    if (!verifyRs256(jwt.signingInput, jwt.signature, client.key)) return INVALID_ASSERTION;
    if (typeof payload.aud !== 'string' || !this.audiences().includes(payload.aud)) return refuse('invalid_grant', 'audience is invalid');
    // The documented example carries exp as a numeric string.
    const exp = typeof payload.exp === 'number' ? payload.exp : typeof payload.exp === 'string' && /^\d+$/.test(payload.exp) ? Number(payload.exp) : NaN;
    if (!Number.isFinite(exp)) return INVALID_ASSERTION;
    if (exp * 1000 <= now) return refuse('invalid_grant', 'expired authorization code');
    if (exp * 1000 > now + MAX_ASSERTION_LIFETIME_S * 1000) return INVALID_ASSERTION;
    const subject = typeof payload.prn === 'string' ? payload.prn : payload.sub;
    if (typeof subject !== 'string' || !client.users.has(subject)) return refuse('invalid_grant', "user hasn't approved this consumer");
    return { ok: true, clientId: payload.iss as string, username: subject };
  }
}

function verifyRs256(signingInput: string, signature: Buffer, key: KeyObject): boolean {
  if (key.asymmetricKeyType !== 'rsa') return false;
  try {
    return verify('sha256', Buffer.from(signingInput, 'utf8'), key, signature);
  } catch {
    return false;
  }
}
