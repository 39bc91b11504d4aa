/**
 * Message security and user identity of the OPC UA client, and what its failures mean.
 *
 * Invariants:
 * - An unknown server certificate is never accepted: the client's certificate manager
 *   runs with `automaticallyAcceptUnknownCertificate: false`, so node-opcua files the
 *   certificate under `<pkiDir>/rejected/` and the connection fails until an operator
 *   trusts it (`trustRejected`, `plantlink agent trust`).
 * - A failure is classified once, here, into a `SecurityProblem` that names the file to
 *   act on; the password never appears in one (node-opcua's errors do not carry it, and
 *   nothing here reads it).
 *
 * What node-opcua 2.182 reports (found against its own server, see the tests):
 * - server certificate not trusted: `connect()` rejects with "server Certificate
 *   verification failed with err BadCertificateUntrusted (0x801a0000)" after the
 *   certificate manager has written `rejected/<CN>[<sha1>].pem`;
 * - our certificate not trusted by the server: `connect()` rejects with "The connection
 *   has been rejected by server: BadSecurityChecksFailed (0x80130000)" (the server files
 *   our certificate in ITS rejected folder);
 * - wrong user name or password: `createSession()` rejects with "BadUserAccessDenied
 *   (0x801f0000)"; the secure channel itself was fine.
 */
import { X509Certificate } from 'node:crypto';
import path from 'node:path';
import { MessageSecurityMode, OPCUACertificateManager, SecurityPolicy, type StatusCode } from 'node-opcua';
import { TransientError } from '../errors.js';
import { rejectedFileOf, thumbprintOf, TRUSTED_FOLDER, type OwnCertificate } from './pki.js';

export {
  SECURITY_MODES,
  SECURITY_POLICIES,
  type OpcUaIdentity,
  type OpcUaSecurity,
  type OpcUaSecurityModeName,
  type OpcUaSecurityPolicyName,
} from './security-names.js';
import type { OpcUaIdentity, OpcUaSecurity } from './security-names.js';

export function messageSecurityMode(security: OpcUaSecurity): MessageSecurityMode {
  return MessageSecurityMode[security.mode];
}

export function securityPolicy(security: OpcUaSecurity): SecurityPolicy {
  return security.mode === 'None' ? SecurityPolicy.None : SecurityPolicy[security.policy];
}

/** A failure the operator must act on, with what to act on. */
export type SecurityProblem =
  | {
      kind: 'server-certificate-untrusted';
      status: string;
      subject: string;
      thumbprint: string;
      /** Where node-opcua filed it (rejected/...), when found. */
      file: string | undefined;
      trustedFolder: string;
    }
  | { kind: 'server-certificate-invalid'; status: string; subject: string; thumbprint: string; file: string | undefined }
  | { kind: 'client-certificate-refused'; status: string; ownCertificateFile: string; thumbprint: string }
  | { kind: 'user-refused'; status: string; userName: string };

/** The last server certificate our manager refused, to say which file to trust. */
export interface RefusedCertificate {
  der: Buffer;
  status: string;
}

/**
 * A client certificate manager that remembers what it refused. node-opcua only says
 * "verification failed with err BadCertificateUntrusted"; the certificate itself (hence
 * its thumbprint and rejected file) is known only to the manager.
 */
export class RecordingCertificateManager extends OPCUACertificateManager {
  refused: RefusedCertificate | undefined;

  override checkCertificate(chain: Buffer | Buffer[]): Promise<StatusCode>;
  override checkCertificate(chain: Buffer | Buffer[], callback: (err: Error | null, status?: StatusCode) => void): void;
  override checkCertificate(chain: Buffer | Buffer[], callback?: (err: Error | null, status?: StatusCode) => void): Promise<StatusCode> | void {
    const result = super.checkCertificate(chain).then((status) => {
      if (status.isNotGood()) {
        const leaf = Array.isArray(chain) ? chain[0] : chain;
        if (leaf) this.refused = { der: leaf, status: status.name };
      }
      return status;
    });
    if (!callback) return result;
    result.then(
      (status) => callback(null, status),
      (err: unknown) => callback(err instanceof Error ? err : new Error(String(err))),
    );
  }
}

const statusIn = (message: string) => /\b(Bad[A-Za-z]+)\b/.exec(message)?.[1];

function subjectOf(der: Buffer): string {
  try {
    const cn = /CN=([^\n,]+)/.exec(new X509Certificate(der).subject)?.[1];
    return cn ?? 'unknown subject';
  } catch {
    return 'unparsable certificate';
  }
}

/**
 * Classifies a failed connect / create-session. `phase` is where it failed. Returns
 * undefined for failures that are not about security (network, timeouts, ...).
 */
export function classifySecurityFailure(
  error: string,
  context: {
    phase: 'connecting' | 'creating a session';
    security: OpcUaSecurity;
    identity: OpcUaIdentity;
    pkiDir: string;
    refused: RefusedCertificate | undefined;
    own: OwnCertificate | undefined;
  },
): SecurityProblem | undefined {
  const status = statusIn(error);
  if (context.phase === 'connecting') {
    if (context.refused && /server certificate verification failed/i.test(error)) {
      const thumbprint = thumbprintOf(context.refused.der);
      const base = { status: context.refused.status, subject: subjectOf(context.refused.der), thumbprint, file: rejectedFileOf(context.pkiDir, thumbprint) };
      return context.refused.status === 'BadCertificateUntrusted'
        ? { kind: 'server-certificate-untrusted', ...base, trustedFolder: path.join(context.pkiDir, TRUSTED_FOLDER) }
        : { kind: 'server-certificate-invalid', ...base };
    }
    if (context.security.mode !== 'None' && context.own && status && /^Bad(SecurityChecksFailed|CertificateUntrusted|CertificateInvalid|CertificateUriInvalid|CertificateTimeInvalid|CertificateUseNotAllowed|CertificateRevoked|CertificateIssuerRevoked)$/.test(status)) {
      return { kind: 'client-certificate-refused', status, ownCertificateFile: context.own.file, thumbprint: context.own.thumbprint };
    }
    return undefined;
  }
  if (context.identity.type === 'username' && status && /^Bad(UserAccessDenied|IdentityTokenInvalid|IdentityTokenRejected|UserSignatureInvalid)$/.test(status)) {
    return { kind: 'user-refused', status, userName: context.identity.userName };
  }
  return undefined;
}

/** One sentence an operator can act on. Never contains the password. */
export function describeSecurityProblem(p: SecurityProblem): string {
  switch (p.kind) {
    case 'server-certificate-untrusted':
      return (
        `the server certificate is not trusted (${p.status}): "${p.subject}", SHA-1 thumbprint ${p.thumbprint}, ` +
        `saved as ${p.file ?? '(not found in the rejected folder)'}; once its thumbprint is confirmed with the server's administrator, ` +
        `trust it with "plantlink agent trust" or by moving that file into ${p.trustedFolder}`
      );
    case 'server-certificate-invalid':
      return `the server certificate was refused (${p.status}): "${p.subject}", SHA-1 thumbprint ${p.thumbprint}${p.file ? `, saved as ${p.file}` : ''}; the server needs a valid certificate`;
    case 'client-certificate-refused':
      return (
        `the server refused our secure channel (${p.status}): most likely it does not trust our certificate ${p.ownCertificateFile} ` +
        `(SHA-1 thumbprint ${p.thumbprint}); have the server's administrator trust it (node-opcua and most servers file it under their rejected certificates)`
      );
    case 'user-refused':
      return `the server refused user "${p.userName}" (${p.status}): check identity.userName and identity.password`;
  }
}

/** A connect or session failure the operator must fix; retried with backoff all the same (the fix needs no restart). */
export class OpcUaSecurityError extends TransientError {
  constructor(readonly problem: SecurityProblem, options?: { cause?: unknown }) {
    super(describeSecurityProblem(problem), options);
  }
}
