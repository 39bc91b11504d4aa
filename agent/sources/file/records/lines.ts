/**
 * Line-oriented formats (JSON Lines, fixed width): LF or CRLF, one record per line, blank
 * lines skipped. A line longer than `maxLineChars` is read to its end but only its first
 * characters are kept, and it becomes a bad row: memory stays bounded whatever the file holds.
 */
import type { FixedWidthFormat } from '../config.js';
import { clip, type ParsedRow, type RecordSplitter } from './types.js';

interface Line {
  text: string; // without its terminator
  raw: string; // with its terminator, clipped
  line: number;
  overLong: boolean;
}

export class LineReader {
  private pending = '';
  private overLong = false;
  private line: number;

  constructor(
    private readonly maxLineChars: number,
    firstLine = 1,
  ) {
    this.line = firstLine;
  }

  push(text: string): Line[] {
    const out: Line[] = [];
    let start = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
      this.take(out, text.slice(start, nl + 1));
      start = nl + 1;
    }
    this.append(text.slice(start));
    return out;
  }

  end(): Line[] {
    const out: Line[] = [];
    if (this.pending !== '') this.take(out, '');
    return out;
  }

  private append(text: string): void {
    if (this.overLong) return;
    this.pending += text;
    if (this.pending.length > this.maxLineChars) {
      this.overLong = true;
      this.pending = this.pending.slice(0, this.maxLineChars);
    }
  }

  private take(out: Line[], tail: string): void {
    this.append(tail);
    const raw = this.pending;
    const text = raw.endsWith('\r\n') ? raw.slice(0, -2) : raw.endsWith('\n') ? raw.slice(0, -1) : raw;
    if (this.overLong || text.trim() !== '') out.push({ text, raw: clip(raw, this.maxLineChars), line: this.line, overLong: this.overLong });
    this.line++;
    this.pending = '';
    this.overLong = false;
  }
}

abstract class LineSplitter implements RecordSplitter {
  private readonly reader: LineReader;

  constructor(
    protected readonly maxLineChars: number,
    firstLine: number,
  ) {
    this.reader = new LineReader(maxLineChars, firstLine);
  }

  push(text: string): ParsedRow[] {
    return this.reader.push(text).map((l) => this.row(l));
  }

  end(): ParsedRow[] {
    return this.reader.end().map((l) => this.row(l));
  }

  preamble(): string {
    return '';
  }

  epilogue(): string {
    return '';
  }

  private row(l: Line): ParsedRow {
    if (l.overLong) return { ok: false, reason: `line longer than maxLineBytes (${this.maxLineChars} characters)`, raw: l.raw, line: l.line };
    try {
      return { ok: true, record: this.parse(l.text), raw: l.raw, line: l.line };
    } catch (e) {
      return { ok: false, reason: (e as Error).message, raw: l.raw, line: l.line };
    }
  }

  /** Parses one line's text; throws with the reason when the line is bad. */
  protected abstract parse(text: string): unknown;
}

export class JsonLinesSplitter extends LineSplitter {
  protected parse(text: string): unknown {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      throw new Error(`not valid JSON: ${(e as Error).message}`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not a JSON object');
    return value;
  }
}

export class FixedWidthSplitter extends LineSplitter {
  constructor(
    private readonly format: FixedWidthFormat,
    maxLineChars: number,
    firstLine: number,
  ) {
    super(maxLineChars, firstLine);
  }

  protected parse(text: string): unknown {
    const record: Record<string, string> = {};
    for (const c of this.format.columns) {
      const value = text.slice(c.start, c.start + c.length);
      record[c.name] = this.format.trim ? value.trim() : value;
    }
    return record;
  }
}
