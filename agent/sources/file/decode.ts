/**
 * Strict streaming text decoding. Bytes that are not valid in the configured encoding make
 * the whole file bad (`BadFileError`): we never turn them into replacement characters, which
 * would commit mangled names and numbers as facts. A byte order mark is stripped, and one
 * that contradicts the configured encoding is a clear reason rather than a garbled first field.
 */
import iconv from 'iconv-lite';
import type { FileEncoding } from './config.js';

export type ResolvedEncoding = 'utf-8' | 'utf-16le' | 'windows-1252';

/** The file as a whole cannot be read: it goes to quarantine with this reason. */
export class BadFileError extends Error {
  override readonly name = 'BadFileError';
}

const BOM_UTF8 = Buffer.from([0xef, 0xbb, 0xbf]);
const BOM_UTF16LE = Buffer.from([0xff, 0xfe]);
const BOM_UTF16BE = Buffer.from([0xfe, 0xff]);

function bomOf(head: Buffer): ResolvedEncoding | 'utf-16be' | undefined {
  if (head.subarray(0, 3).equals(BOM_UTF8)) return 'utf-8';
  if (head.subarray(0, 2).equals(BOM_UTF16LE)) return 'utf-16le';
  if (head.subarray(0, 2).equals(BOM_UTF16BE)) return 'utf-16be';
  return undefined;
}

/** Picks the encoding from the configured one and the file's first bytes; throws BadFileError on a contradiction. */
export function resolveEncoding(configured: FileEncoding, head: Buffer): ResolvedEncoding {
  const bom = bomOf(head);
  if (bom === 'utf-16be') throw new BadFileError('the file starts with a UTF-16BE byte order mark; UTF-16BE is not supported');
  if (configured === 'auto') return bom ?? 'utf-8';
  if (bom !== undefined && bom !== configured) {
    throw new BadFileError(`the file starts with a ${bom.toUpperCase()} byte order mark but the configured encoding is ${configured}`);
  }
  return configured;
}

/** Decodes one file chunk by chunk; `write` and `end` throw BadFileError on undecodable bytes. */
export interface StrictDecoder {
  readonly encoding: ResolvedEncoding;
  write(chunk: Buffer): string;
  end(): string;
}

export function createDecoder(encoding: ResolvedEncoding): StrictDecoder {
  let offset = 0;
  const check = (text: string, at: number): string => {
    // NUL never occurs in the text formats we read; it is the mark of UTF-16 read as 8-bit.
    if (text.includes('\u0000')) throw new BadFileError(`NUL characters near byte ${at}: not ${encoding} text (is it UTF-16? set \`encoding\`)`);
    return text;
  };
  if (encoding === 'windows-1252') {
    const decoder = iconv.getDecoder('windows-1252');
    return {
      encoding,
      write(chunk) {
        const at = offset;
        offset += chunk.length;
        const text = decoder.write(chunk);
        // iconv-lite maps the five bytes Windows-1252 leaves undefined to U+FFFD.
        if (text.includes('\uFFFD')) throw new BadFileError(`a byte near ${at} is undefined in windows-1252`);
        return check(text, at);
      },
      end: () => check(decoder.end() ?? '', offset),
    };
  }
  // TextDecoder strips the BOM itself (ignoreBOM: false) and, with fatal: true, throws on bad sequences.
  const decoder = new TextDecoder(encoding, { fatal: true, ignoreBOM: false });
  const name = encoding === 'utf-8' ? 'UTF-8' : 'UTF-16LE';
  return {
    encoding,
    write(chunk) {
      const at = offset;
      offset += chunk.length;
      let text: string;
      try {
        text = decoder.decode(chunk, { stream: true });
      } catch {
        throw new BadFileError(`not valid ${name}: undecodable bytes between byte ${at} and ${offset}`);
      }
      return check(text, at);
    },
    end() {
      try {
        return check(decoder.decode(), offset);
      } catch (e) {
        if (e instanceof BadFileError) throw e;
        throw new BadFileError(`not valid ${name}: the file ends inside a character (truncated?)`);
      }
    },
  };
}

/** Encodes text for the rejected-rows file, in the encoding of the file it came from. */
export function encodeText(text: string, encoding: ResolvedEncoding): Buffer {
  if (encoding === 'utf-8') return Buffer.from(text, 'utf8');
  if (encoding === 'utf-16le') return Buffer.from(text, 'utf16le');
  return iconv.encode(text, 'windows-1252');
}

/** The byte order mark a new file in this encoding starts with (UTF-16LE only; UTF-8 files go without). */
export function bomFor(encoding: ResolvedEncoding): Buffer {
  return encoding === 'utf-16le' ? BOM_UTF16LE : Buffer.alloc(0);
}
