/**
 * The first pass over a claimed file, before any of it is committed: its content hash (the
 * file's identity in the ledger and in its progress state), its encoding, and whether it can
 * be read at all. A file that fails here is quarantined whole, with nothing committed: empty,
 * too large, undecodable, or (XML) not well formed, truncated, or carrying a DOCTYPE.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { FileSourceConfig } from './config.js';
import { BadFileError, createDecoder, resolveEncoding, type ResolvedEncoding, type StrictDecoder } from './decode.js';
import { CHUNK_BYTES, createSplitter, type RecordSplitter } from './records/index.js';

export interface ScannedFile {
  /** SHA-256 of the bytes, hex. */
  hash: string;
  bytes: number;
  encoding: ResolvedEncoding;
}

export async function scanFile(path: string, config: FileSourceConfig): Promise<ScannedFile> {
  const { size } = await stat(path);
  if (size === 0) throw new BadFileError('the file is empty (0 bytes)');
  if (size > config.maxFileBytes) throw new BadFileError(`the file is ${size} bytes; maxFileBytes is ${config.maxFileBytes}`);

  const hash = createHash('sha256');
  let decoder: StrictDecoder | undefined;
  // Only XML needs its structure checked up front: a truncated document must not be half committed.
  const checker: RecordSplitter | undefined =
    config.format.type === 'xml' ? createSplitter(config.format, config.maxLineBytes, { parseRecords: false }) : undefined;
  let bytes = 0;
  const stream = createReadStream(path, { highWaterMark: CHUNK_BYTES });
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      decoder ??= createDecoder(resolveEncoding(config.encoding, chunk));
      hash.update(chunk);
      bytes += chunk.length;
      if (bytes > config.maxFileBytes) throw new BadFileError(`the file grew past maxFileBytes (${config.maxFileBytes}) while being read`);
      const text = decoder.write(chunk);
      checker?.push(text);
    }
  } finally {
    stream.destroy();
  }
  if (!decoder || bytes === 0) throw new BadFileError('the file is empty (0 bytes)');
  const tail = decoder.end();
  if (checker) {
    checker.push(tail);
    checker.end();
  }
  return { hash: hash.digest('hex'), bytes, encoding: decoder.encoding };
}
