/**
 * What `plantlink agent trust` and `plantlink agent pki` do, without the CLI around it:
 * find the PKI folder of each OPC UA source of an agent config, list its certificates,
 * and move refused server certificates into its trust list.
 *
 * A source's folder is its `pkiDir`, else `<agent.dataDir>/pki` (as `createSource` in
 * agent/agent.ts sets it), so sources without their own `pkiDir` share one folder.
 */
import path from 'node:path';
import { listPki, trustRejected, type CertificateInfo, type PkiListing, type TrustSelection } from '../../../protocols/opcua/pki.js';

/** The part of a source config this needs (any kind; non-OPC UA sources are skipped). */
export interface SourceRef {
  name: string;
  kind: string;
  pkiDir?: string | undefined;
}

export interface PkiFolder {
  pkiDir: string;
  /** The OPC UA sources that use it. */
  sources: string[];
}

export function opcuaPkiFolders(sources: readonly SourceRef[], dataDir: string, only?: string): PkiFolder[] {
  const opcua = sources.filter((s) => s.kind === 'opcua');
  if (only !== undefined && !opcua.some((s) => s.name === only)) {
    const names = opcua.map((s) => s.name).join(', ') || 'none';
    throw new Error(`no OPC UA source "${only}" in this config (OPC UA sources: ${names})`);
  }
  const folders = new Map<string, PkiFolder>();
  for (const s of opcua) {
    if (only !== undefined && s.name !== only) continue;
    const pkiDir = path.resolve(s.pkiDir ?? path.join(dataDir, 'pki'));
    const folder = folders.get(pkiDir) ?? { pkiDir, sources: [] };
    folder.sources.push(s.name);
    folders.set(pkiDir, folder);
  }
  return [...folders.values()];
}

export function listFolders(folders: readonly PkiFolder[]): Array<PkiFolder & { listing: PkiListing }> {
  return folders.map((f) => ({ ...f, listing: listPki(f.pkiDir) }));
}

/**
 * Trusts rejected server certificates in the given folders: all of them, or the one
 * named by `file` (a path, a file name in rejected/, or a thumbprint prefix). With
 * `file` and several folders, the folder whose rejected/ holds it is used.
 */
export async function trustInFolders(folders: readonly PkiFolder[], selection: TrustSelection): Promise<Array<{ pkiDir: string; trusted: CertificateInfo[] }>> {
  if (folders.length === 0) throw new Error('this config has no OPC UA source');
  if ('all' in selection) {
    const out = [];
    for (const f of folders) out.push({ pkiDir: f.pkiDir, trusted: await trustRejected(f.pkiDir, selection) });
    return out;
  }
  const errors: string[] = [];
  for (const f of folders) {
    try {
      return [{ pkiDir: f.pkiDir, trusted: await trustRejected(f.pkiDir, selection) }];
    } catch (e) {
      errors.push(e instanceof Error ? e.message : String(e));
    }
  }
  throw new Error(errors.join('\n'));
}

const day = (d: Date) => d.toISOString().slice(0, 10);

function row(kind: string, c: CertificateInfo, now: number): string {
  const days = Math.floor((c.notAfter.getTime() - now) / 86_400_000);
  const expiry = days < 0 ? `EXPIRED ${day(c.notAfter)}` : `expires ${day(c.notAfter)} (${days} days)`;
  return `  ${kind.padEnd(9)}${c.thumbprint}  ${expiry}  ${c.subject}\n            ${c.file}\n`;
}

/** Human-readable listing for `plantlink agent pki`. */
export function formatListing(folders: ReadonlyArray<PkiFolder & { listing: PkiListing }>, now = Date.now()): string {
  let out = '';
  for (const { pkiDir, sources, listing } of folders) {
    out += `${pkiDir} (source${sources.length > 1 ? 's' : ''} ${sources.join(', ')})\n`;
    out += listing.own ? row('own', listing.own, now) : '  own      none yet (made on the first start with security Sign or SignAndEncrypt)\n';
    for (const c of listing.trusted) out += row('trusted', c, now);
    for (const c of listing.rejected) out += row('rejected', c, now);
    for (const u of listing.unreadable) out += `  unreadable ${u.file}: ${u.error}\n`;
    if (listing.rejected.length > 0) {
      out += `  -> to trust a rejected certificate (check its thumbprint with the server's administrator first):\n`;
      out += `     plantlink agent trust --config <this config> --file '<file name or thumbprint>'   (or --all-rejected)\n`;
    }
  }
  return out;
}
