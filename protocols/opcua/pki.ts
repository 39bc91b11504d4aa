/**
 * The OPC UA client's certificate store (PKI folder), in node-opcua's layout:
 *
 *   <pkiDir>/own/certs/client_certificate.pem   our application certificate
 *   <pkiDir>/own/private/private_key.pem        its private key (never logged, never copied)
 *   <pkiDir>/own/retired/                       our certificates replaced by a renewal
 *   <pkiDir>/trusted/certs/                     server certificates we trust
 *   <pkiDir>/rejected/                          server certificates we saw and refused,
 *                                               named `<CN>[<sha1 thumbprint>].pem`
 *
 * Invariants:
 * - Trust is explicit: nothing here (or in the client) moves a certificate into
 *   `trusted/` except `trustRejected`, which an operator runs (`plantlink agent trust`).
 * - Our certificate is created once, on first use of the folder, and reused after that;
 *   it is renewed (same key, new certificate, the old one kept in `own/retired/`) only
 *   when fewer than `renewBeforeDays` days of validity remain.
 * - Thumbprints are SHA-1 of the DER certificate, lowercase hex: what node-opcua puts in
 *   file names and what OPC UA servers show in their trust lists.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync } from 'node:fs';
import path from 'node:path';
import { getHostname, makeApplicationUrn, OPCUACertificateManager } from 'node-opcua';
import type { Logger } from '../log.js';

/** Where node-opcua's client looks for its certificate (relative to the PKI folder). */
export const OWN_CERTIFICATE = path.join('own', 'certs', 'client_certificate.pem');
export const TRUSTED_FOLDER = path.join('trusted', 'certs');
export const REJECTED_FOLDER = 'rejected';
const RETIRED_FOLDER = path.join('own', 'retired');
const DAY_MS = 24 * 60 * 60 * 1000;

export interface CertificateInfo {
  file: string;
  subject: string;
  /** SHA-1 of the DER certificate, lowercase hex. */
  thumbprint: string;
  notBefore: Date;
  notAfter: Date;
  /** The URI in subjectAltName (the OPC UA applicationUri), when present. */
  applicationUri?: string;
}

export interface OwnCertificate extends CertificateInfo {
  privateKeyFile: string;
  /** What happened at this call. */
  action: 'created' | 'reused' | 'renewed';
  daysLeft: number;
  /** When renewed: the certificate it replaced, now under own/retired/. */
  retired?: CertificateInfo;
}

export interface OwnCertificateOptions {
  pkiDir: string;
  /** Subject common name and application name of a new certificate. */
  applicationName: string;
  /** Validity of a new certificate. Default 3650 days (node-opcua's own default). */
  validityDays?: number;
  /** Renew when fewer days than this remain. Default 30. */
  renewBeforeDays?: number;
  logger?: Logger;
  /** For tests: the clock. */
  now?: () => number;
}

/** Reads DER certificates out of a PEM (or DER) file; a chain gives several, leaf first. */
export function readCertificates(file: string): Buffer[] {
  const raw = readFileSync(file);
  const text = raw.toString('latin1');
  if (!text.includes('-----BEGIN CERTIFICATE-----')) return [raw];
  const ders: Buffer[] = [];
  for (const m of text.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)) {
    ders.push(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'));
  }
  return ders;
}

export function thumbprintOf(der: Buffer): string {
  return new X509Certificate(der).fingerprint.replace(/:/g, '').toLowerCase();
}

/** Subject, thumbprint and validity of the (leaf) certificate in a file. */
export function describeCertificate(file: string): CertificateInfo {
  const der = readCertificates(file)[0];
  if (!der) throw new Error(`${file}: no certificate in it`);
  const x = new X509Certificate(der);
  const uri = /URI:([^,\s]+)/.exec(x.subjectAltName ?? '')?.[1];
  return {
    file,
    subject: x.subject.replace(/\n/g, ', '),
    thumbprint: x.fingerprint.replace(/:/g, '').toLowerCase(),
    notBefore: new Date(x.validFrom),
    notAfter: new Date(x.validTo),
    ...(uri ? { applicationUri: uri } : {}),
  };
}

export interface PkiListing {
  pkiDir: string;
  own: CertificateInfo | undefined;
  trusted: CertificateInfo[];
  rejected: CertificateInfo[];
  /** Files in trusted/ or rejected/ that are not readable certificates, with why. */
  unreadable: Array<{ file: string; error: string }>;
}

const CERT_FILE = /\.(pem|der|crt|cer)$/i;

function certificatesIn(folder: string, unreadable: PkiListing['unreadable']): CertificateInfo[] {
  if (!existsSync(folder)) return [];
  const out: CertificateInfo[] = [];
  for (const name of readdirSync(folder).sort()) {
    const file = path.join(folder, name);
    if (!CERT_FILE.test(name) || !statSync(file).isFile()) continue;
    try {
      out.push(describeCertificate(file));
    } catch (e) {
      unreadable.push({ file, error: e instanceof Error ? e.message : String(e) });
    }
  }
  return out;
}

/** What a PKI folder holds: our certificate, the trusted and the rejected ones. Read-only. */
export function listPki(pkiDir: string): PkiListing {
  const unreadable: PkiListing['unreadable'] = [];
  const ownFile = path.join(pkiDir, OWN_CERTIFICATE);
  let own: CertificateInfo | undefined;
  if (existsSync(ownFile)) {
    try {
      own = describeCertificate(ownFile);
    } catch (e) {
      unreadable.push({ file: ownFile, error: e instanceof Error ? e.message : String(e) });
    }
  }
  return {
    pkiDir,
    own,
    trusted: certificatesIn(path.join(pkiDir, TRUSTED_FOLDER), unreadable),
    rejected: certificatesIn(path.join(pkiDir, REJECTED_FOLDER), unreadable),
    unreadable,
  };
}

/** Finds the rejected certificate file of a thumbprint (the file node-opcua just wrote). */
export function rejectedFileOf(pkiDir: string, thumbprint: string): string | undefined {
  const folder = path.join(pkiDir, REJECTED_FOLDER);
  if (!existsSync(folder)) return undefined;
  const name = readdirSync(folder).find((n) => n.toLowerCase().includes(`[${thumbprint}]`));
  return name === undefined ? undefined : path.join(folder, name);
}

export type TrustSelection = { all: true } | { file: string };

/**
 * Moves rejected certificates into `trusted/certs` through node-opcua's certificate
 * manager (it holds the store's lock). `file` is a path to a certificate file (in
 * `rejected/` or anywhere: a copy handed over by the server's administrator), a file
 * name in `rejected/`, or a thumbprint (8 or more leading hex digits) of a rejected one.
 * Returns what is now trusted. A running client picks it up at its next attempt.
 */
export async function trustRejected(pkiDir: string, selection: TrustSelection): Promise<CertificateInfo[]> {
  if (!existsSync(pkiDir)) throw new Error(`no PKI folder at ${pkiDir}: has the agent run with this source (security Sign or SignAndEncrypt)?`);
  const rejected = listPki(pkiDir).rejected;
  let chosen: string[];
  if ('all' in selection) {
    chosen = rejected.map((c) => c.file);
  } else {
    const wanted = selection.file;
    const byThumb = /^[0-9a-f:]{8,}$/i.test(wanted) ? rejected.filter((c) => c.thumbprint.startsWith(wanted.replace(/:/g, '').toLowerCase())) : [];
    if (byThumb.length > 1) throw new Error(`thumbprint ${wanted} matches ${byThumb.length} rejected certificates; give more digits`);
    const inRejected = path.join(pkiDir, REJECTED_FOLDER, path.basename(wanted));
    const file = byThumb[0]?.file ?? (existsSync(wanted) ? wanted : existsSync(inRejected) ? inRejected : undefined);
    if (!file) {
      const names = rejected.map((c) => path.basename(c.file)).join(', ') || 'none';
      throw new Error(`no certificate "${wanted}" (not a file, not in ${path.join(pkiDir, REJECTED_FOLDER)}, not a rejected thumbprint); rejected: ${names}`);
    }
    chosen = [file];
  }
  if (chosen.length === 0) return [];
  const manager = new OPCUACertificateManager({ rootFolder: pkiDir, automaticallyAcceptUnknownCertificate: false, disableFileWatchers: true });
  try {
    await manager.initialize();
    const trusted: CertificateInfo[] = [];
    for (const file of chosen) {
      const chain = readCertificates(file);
      if (chain.length === 0) throw new Error(`${file}: no certificate in it`);
      await manager.trustCertificate(Buffer.concat(chain));
      const thumbprint = thumbprintOf(chain[0]!);
      const now = certificatesIn(path.join(pkiDir, TRUSTED_FOLDER), []).find((c) => c.thumbprint === thumbprint);
      if (!now) throw new Error(`${file}: not in ${path.join(pkiDir, TRUSTED_FOLDER)} after trusting it`);
      trusted.push(now);
    }
    return trusted;
  } finally {
    await manager.dispose();
  }
}

/** One creation or renewal at a time per folder in this process (sources share the agent's folder). */
const ownLocks = new Map<string, Promise<unknown>>();

/**
 * Our application certificate: created on first use of the folder, reused after that,
 * renewed when fewer than `renewBeforeDays` days remain (or it already expired). Logs a
 * warning with `alarm: 'opcua_certificate_expiring'` on renewal, because servers that
 * trusted the old certificate by thumbprint must now be told to trust the new one.
 */
export function ensureOwnCertificate(options: OwnCertificateOptions): Promise<OwnCertificate> {
  const key = path.resolve(options.pkiDir);
  const previous = ownLocks.get(key) ?? Promise.resolve();
  const next = previous.catch(() => undefined).then(() => ensureOwnCertificateNow(options));
  ownLocks.set(key, next);
  void next.finally(() => {
    if (ownLocks.get(key) === next) ownLocks.delete(key);
  }).catch(() => undefined);
  return next;
}

async function ensureOwnCertificateNow(o: OwnCertificateOptions): Promise<OwnCertificate> {
  const now = o.now?.() ?? Date.now();
  const validityDays = o.validityDays ?? 3650;
  const renewBeforeDays = o.renewBeforeDays ?? 30;
  const certificateFile = path.join(o.pkiDir, OWN_CERTIFICATE);
  const log = o.logger;
  const daysLeftOf = (c: CertificateInfo) => Math.floor((c.notAfter.getTime() - now) / DAY_MS);

  let existing: CertificateInfo | undefined;
  if (existsSync(certificateFile)) {
    try {
      existing = describeCertificate(certificateFile);
    } catch (e) {
      log?.error({ file: certificateFile, err: e instanceof Error ? e.message : String(e) }, 'our OPC UA certificate is unreadable; creating a new one');
    }
  }
  const manager = new OPCUACertificateManager({ rootFolder: o.pkiDir, automaticallyAcceptUnknownCertificate: false, disableFileWatchers: true });
  try {
    await manager.initialize(); // folders, and the private key if there is none yet
    if (existing && daysLeftOf(existing) >= renewBeforeDays) {
      return { ...existing, privateKeyFile: manager.privateKey, action: 'reused', daysLeft: daysLeftOf(existing) };
    }
    let retired: CertificateInfo | undefined;
    if (existsSync(certificateFile)) {
      const folder = path.join(o.pkiDir, RETIRED_FOLDER);
      mkdirSync(folder, { recursive: true });
      const stamp = existing ? `${existing.notAfter.toISOString().slice(0, 10)}-${existing.thumbprint.slice(0, 12)}` : `unreadable-${now}`;
      const target = path.join(folder, `client_certificate.${stamp}.pem`);
      renameSync(certificateFile, target);
      if (existing) retired = { ...existing, file: target };
    }
    const hostname = getHostname();
    await manager.createSelfSignedCertificate({
      applicationUri: existing?.applicationUri ?? makeApplicationUrn(hostname, o.applicationName),
      dns: [hostname],
      // not makeSubject(): that appends node-opcua's own organisation and locality
      subject: `/CN=${o.applicationName}@${hostname}/O=plantlink`,
      startDate: new Date(now - DAY_MS), // a day back: a server whose clock lags must not see it as "not yet valid"
      validity: validityDays + 1,
      outputFile: certificateFile,
    });
    const made = describeCertificate(certificateFile);
    const result: OwnCertificate = {
      ...made,
      privateKeyFile: manager.privateKey,
      action: existing ? 'renewed' : 'created',
      daysLeft: daysLeftOf(made),
      ...(retired ? { retired } : {}),
    };
    if (retired) {
      log?.warn(
        {
          alarm: 'opcua_certificate_expiring',
          file: made.file,
          thumbprint: made.thumbprint,
          notAfter: made.notAfter.toISOString(),
          previousThumbprint: retired.thumbprint,
          previousNotAfter: retired.notAfter.toISOString(),
          previousDaysLeft: daysLeftOf(retired),
          retiredFile: retired.file,
        },
        'our OPC UA certificate was about to expire and has been renewed; servers that trust certificates one by one must now trust the new one',
      );
    } else {
      log?.info({ file: made.file, thumbprint: made.thumbprint, notAfter: made.notAfter.toISOString() }, 'created our OPC UA application certificate');
    }
    return result;
  } finally {
    await manager.dispose();
  }
}
