/** Picks the splitter for a format and streams a file through decoder and splitter. */
import { createReadStream } from 'node:fs';
import type { FileFormat } from '../config.js';
import { createDecoder, type ResolvedEncoding } from '../decode.js';
import { CsvSplitter } from './csv.js';
import { FixedWidthSplitter, JsonLinesSplitter } from './lines.js';
import type { ParsedRow, RecordSplitter } from './types.js';
import { XmlSplitter } from './xml.js';

export type { ParsedRow, RecordSplitter } from './types.js';

/** Read size; with `maxLineBytes` it bounds what one file costs in memory. */
export const CHUNK_BYTES = 64 * 1024;

export function createSplitter(format: FileFormat, maxRecordChars: number, options: { parseRecords?: boolean } = {}): RecordSplitter {
  switch (format.type) {
    case 'csv':
      return skippingLines(
        format.skipLines,
        new CsvSplitter({ ...format, maxRecordChars, firstLine: format.skipLines + 1 }),
      );
    case 'fixed-width':
      return skippingLines(format.skipLines, new FixedWidthSplitter(format, maxRecordChars, format.skipLines + 1));
    case 'jsonl':
      return new JsonLinesSplitter(maxRecordChars, 1);
    case 'xml':
      return new XmlSplitter({ ...format, maxRecordChars, parseRecords: options.parseRecords ?? true });
  }
}

/** Drops the first `count` physical lines before the splitter sees the text. */
function skippingLines(count: number, inner: RecordSplitter): RecordSplitter {
  if (count === 0) return inner;
  let left = count;
  return {
    push(text) {
      while (left > 0 && text !== '') {
        const nl = text.indexOf('\n');
        if (nl === -1) return [];
        text = text.slice(nl + 1);
        left--;
      }
      return text === '' ? [] : inner.push(text);
    },
    end: () => inner.end(),
    preamble: () => inner.preamble(),
    epilogue: () => inner.epilogue(),
  };
}

/**
 * The rows of a file, in order. Memory: one chunk, the splitter's current record and the rows
 * of one chunk. Throws BadFileError when the file cannot be decoded or split.
 */
export async function* readRows(path: string, encoding: ResolvedEncoding, splitter: RecordSplitter): AsyncGenerator<ParsedRow> {
  const decoder = createDecoder(encoding);
  const stream = createReadStream(path, { highWaterMark: CHUNK_BYTES });
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      yield* splitter.push(decoder.write(chunk));
    }
    yield* splitter.push(decoder.end());
    yield* splitter.end();
  } finally {
    stream.destroy();
  }
}
