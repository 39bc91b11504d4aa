/**
 * stripAuthenticode (installers/sea/pe.ts) on synthetic PE files; the real Windows executable's
 * result is checked in sea.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { stripAuthenticode } from '../../installers/sea/pe.js';

const E_LFANEW = 0x80;
const OPTIONAL = E_LFANEW + 24;
const SECURITY = OPTIONAL + 112 + 4 * 8;

/** A minimal PE32+ image: headers, `body` bytes, then a certificate table of `certBytes` (0: unsigned). */
function pe({ body = 512, certBytes = 0, checksum = 0x1234 } = {}): Buffer {
  const head = Buffer.alloc(OPTIONAL + 240 + body);
  head.write('MZ', 0, 'latin1');
  head.writeUInt32LE(E_LFANEW, 0x3c);
  head.write('PE\0\0', E_LFANEW, 'latin1');
  head.writeUInt16LE(0x8664, E_LFANEW + 4);
  head.writeUInt16LE(0x20b, OPTIONAL);
  head.writeUInt32LE(checksum, OPTIONAL + 64);
  head.writeUInt32LE(16, OPTIONAL + 108); // NumberOfRvaAndSizes
  if (certBytes === 0) return head;
  head.writeUInt32LE(head.length, SECURITY);
  head.writeUInt32LE(certBytes, SECURITY + 4);
  return Buffer.concat([head, Buffer.alloc(certBytes, 0xcc)]);
}

describe('stripAuthenticode', () => {
  it('cuts the certificate table and clears its directory entry and the checksum', () => {
    const signed = pe({ certBytes: 4096 });
    const out = stripAuthenticode(signed);
    expect(out.length).toBe(signed.length - 4096);
    expect([out.readUInt32LE(SECURITY), out.readUInt32LE(SECURITY + 4), out.readUInt32LE(OPTIONAL + 64)]).toEqual([0, 0, 0]);
    // Everything else is byte for byte the same.
    for (const [from, to] of [[0, OPTIONAL + 64], [OPTIONAL + 68, SECURITY], [SECURITY + 8, out.length]] as const) {
      expect(out.subarray(from, to).equals(signed.subarray(from, to)), `bytes ${from}..${to}`).toBe(true);
    }
    expect(out.includes(Buffer.alloc(16, 0xcc))).toBe(false);
  });

  it('leaves an unsigned file as it is', () => {
    const unsigned = pe();
    expect(stripAuthenticode(unsigned)).toBe(unsigned);
  });

  it('refuses a certificate table that is not at the end of the file (it would cut code)', () => {
    const odd = pe({ certBytes: 64 });
    odd.writeUInt32LE(E_LFANEW, SECURITY);
    expect(() => stripAuthenticode(odd)).toThrow(/is not at the end/);
  });

  it('refuses what is not a PE file', () => {
    expect(() => stripAuthenticode(Buffer.from('\x7fELF and more bytes than the header needs, surely enough of them', 'latin1'))).toThrow(/not a PE file/);
  });
});
