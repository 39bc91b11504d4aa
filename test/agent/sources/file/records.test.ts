/**
 * The splitters against chunk boundaries: the same text fed whole, one character at a time
 * and in odd-sized pieces must give the same rows (a CRLF, a doubled quote, a tag or a
 * multi-byte character cut in two is the normal case when streaming, not an edge case).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileSourceConfig } from '../../../../agent/sources/file/config.js';
import { BadFileError, createDecoder } from '../../../../agent/sources/file/decode.js';
import { createSplitter, type ParsedRow } from '../../../../agent/sources/file/records/index.js';
import { SHIPMENT_MAP } from './helpers.js';

const FIXTURES = join(import.meta.dirname, '../../../fixtures/file');

function formatOf(format: unknown) {
  return FileSourceConfig.parse({ name: 'x', kind: 'file', folder: '/tmp/x', format, map: SHIPMENT_MAP }).format;
}

function split(format: unknown, text: string, piece: number, max = 1024): ParsedRow[] {
  const splitter = createSplitter(formatOf(format), max);
  const rows: ParsedRow[] = [];
  for (let i = 0; i < text.length; i += piece) rows.push(...splitter.push(text.slice(i, i + piece)));
  rows.push(...splitter.end());
  return rows;
}

const CASES: [string, unknown][] = [
  ['csv-header/shipments.csv', { type: 'csv' }],
  ['csv-quoted-crlf/shipments.csv', { type: 'csv' }],
  ['csv-truncated/shipments.csv', { type: 'csv' }],
  ['csv-columns/shipments.txt', { type: 'csv', delimiter: ';', header: false, columns: ['a', 'b', 'c', 'd', 'e'], skipLines: 1 }],
  ['jsonl/shipments.jsonl', { type: 'jsonl' }],
  ['fixed-width/shipments.dat', { type: 'fixed-width', columns: [{ name: 'a', start: 0, length: 10 }, { name: 'b', start: 40, length: 20 }] }],
  ['xml/shipments.xml', { type: 'xml', recordPath: 'Shipments.Shipment' }],
];

describe('record splitters', () => {
  it.each(CASES)('%s splits the same whatever the chunk size', (file, format) => {
    const text = readFileSync(join(FIXTURES, file), 'utf8');
    const whole = split(format, text, text.length);
    expect(whole.length).toBeGreaterThan(1);
    for (const piece of [1, 2, 3, 7, 64]) expect(split(format, text, piece)).toEqual(whole);
  });

  it('keeps a CSV quoted field with delimiters, doubled quotes and line breaks in one field', () => {
    const rows = split({ type: 'csv', header: false, columns: ['a', 'b'] }, 'x,"1, ""2""\n3"\r\ny,z', 1);
    expect(rows.map((r) => (r.ok ? r.record : r.reason))).toEqual([{ a: 'x', b: '1, "2"\n3' }, { a: 'y', b: 'z' }]);
    expect(rows.map((r) => r.line)).toEqual([1, 3]);
  });

  it('turns an over-long CSV record into a bad row and reads on after it (csv-parse would drop the rest of the chunk)', () => {
    const long = 'x'.repeat(500);
    const rows = split({ type: 'csv', header: false, columns: ['a', 'b'] }, `a,b\n${long},y\nc,d\ne,f\n`, 4096, 100);
    expect(rows.map((r) => (r.ok ? r.record : r.reason))).toEqual([
      { a: 'a', b: 'b' },
      'record longer than maxLineBytes (100 characters)',
      { a: 'c', b: 'd' },
      { a: 'e', b: 'f' },
    ]);
    expect(rows[1]!.raw.length).toBeLessThanOrEqual(101);
  });

  it('quarantines a CSV record whose quote never closes, with all the text it swallowed', () => {
    const rows = split({ type: 'csv' }, 'A,B\n1,2\n3,"4\n5,6\n', 3);
    expect(rows[1]).toMatchObject({ ok: false, reason: expect.stringMatching(/ends inside a quoted field/), raw: '3,"4\n5,6\n' });
  });

  it('refuses an XML DOCTYPE, a mismatched end tag, a second root and text outside the root', () => {
    const xml = { type: 'xml', recordPath: 'R.S' };
    expect(() => split(xml, '<!DOCTYPE R SYSTEM "file:///etc/passwd"><R><S/></R>', 5)).toThrow(BadFileError);
    expect(() => split(xml, '<R><S></T></R>', 5)).toThrow(/does not close/);
    expect(() => split(xml, '<R><S/></R><R/>', 5)).toThrow(/second root/);
    expect(() => split(xml, 'junk<R><S/></R>', 5)).toThrow(/outside the root/);
    expect(() => split(xml, '', 5)).toThrow(/no root/);
  });

  it('reads XML attributes with ">" in quotes, and decodes entities only from the predefined set', () => {
    const rows = split({ type: 'xml', recordPath: 'R.S', attributePrefix: '@' }, '<R><S a="x > y"><V>&lt;&#228;&amp;</V></S><S><V>&ext;</V></S></R>', 2);
    expect(rows[0]).toMatchObject({ ok: true, record: { '@a': 'x > y', V: '<ä&' } });
    expect(rows[1]).toMatchObject({ ok: false, reason: expect.stringMatching(/undefined entity &ext;/) });
  });

  it('decodes strictly: a UTF-8 character split across chunks survives, invalid bytes throw', () => {
    const bytes = Buffer.from('Müller', 'utf8');
    const d = createDecoder('utf-8');
    const text = [...bytes].map((b) => d.write(Buffer.from([b]))).join('') + d.end();
    expect(text).toBe('Müller');
    expect(() => createDecoder('utf-8').write(Buffer.from([0x4d, 0xfc, 0x6c]))).toThrow(BadFileError);
    expect(() => createDecoder('windows-1252').write(Buffer.from([0x81]))).toThrow(/undefined in windows-1252/);
    const u16 = createDecoder('utf-16le');
    u16.write(Buffer.from([0x41, 0x00, 0x42]));
    expect(() => u16.end()).toThrow(/truncated/);
  });
});
