/**
 * Removes the Authenticode signature from a PE file (what `signtool remove /s` does): zeroes the
 * security data directory and cuts the certificate table from the end of the file. Node's
 * Windows binary is signed by the Node.js project; once the SEA blob is injected that signature
 * no longer matches, so the built exe is left unsigned for the publisher to sign.
 *
 * Layout (PE/COFF spec): e_lfanew at 0x3c -> "PE\0\0", 20-byte COFF header, then the optional
 * header; its data directories start at offset 96 (PE32) or 112 (PE32+), 8 bytes each, and entry
 * 4 (security) holds a file offset (not an RVA) and a size.
 */

const SECURITY_DIRECTORY = 4;

export function stripAuthenticode(file: Buffer): Buffer {
  if (file.length < 0x40 || file.toString('latin1', 0, 2) !== 'MZ') throw new Error('not a PE file (no MZ header)');
  const pe = file.readUInt32LE(0x3c);
  if (file.toString('latin1', pe, pe + 4) !== 'PE\0\0') throw new Error('not a PE file (no PE signature)');
  const optional = pe + 4 + 20;
  const magic = file.readUInt16LE(optional);
  const directories = magic === 0x20b ? optional + 112 : magic === 0x10b ? optional + 96 : undefined;
  if (directories === undefined) throw new Error(`unknown PE optional header magic 0x${magic.toString(16)}`);
  const numberOfDirectories = file.readUInt32LE(directories - 4);
  if (numberOfDirectories <= SECURITY_DIRECTORY) return file;
  const entry = directories + SECURITY_DIRECTORY * 8;
  const offset = file.readUInt32LE(entry);
  const size = file.readUInt32LE(entry + 4);
  if (offset === 0 || size === 0) return file; // not signed
  // The certificate table is the last thing in a signed file (padding to 8 bytes aside).
  if (offset + size < file.length - 7 || offset + size > file.length) throw new Error(`certificate table at ${offset}+${size} is not at the end of the ${file.length}-byte file`);
  const out = Buffer.from(file.subarray(0, offset));
  out.writeUInt32LE(0, entry);
  out.writeUInt32LE(0, entry + 4);
  out.writeUInt32LE(0, optional + 64); // CheckSum: covered the certificate; 0 = not set (not checked for user-mode programs)
  return out;
}
