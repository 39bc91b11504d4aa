/**
 * A streaming RFC 4180 tokenizer, written here rather than taken from csv-parse because we
 * need, per record and in file order, its raw text, its line and its error, with the rows
 * after a bad one going on. csv-parse 7 reports skipped records out of band (`on_skip`), and
 * with `skip_records_with_error` plus `max_record_size` it silently drops the rest of the
 * chunk after an over-long record (reproduced: 'a,b\nxxxx…,y\nc,d\n' yields only a,b).
 *
 * Invariants: memory per record is bounded by `maxRecordChars` (an over-long record is read
 * to its end but only its first characters are kept, and it becomes a bad row); a record
 * ends at LF or CRLF outside quotes; a quoted field may hold delimiters, doubled quotes and
 * line breaks; a file that ends inside a quoted field yields that record as a bad row.
 */
import { BadFileError } from '../decode.js';
import { clip, type ParsedRow, type RecordSplitter } from './types.js';

export interface CsvToken {
  fields: string[];
  raw: string;
  line: number;
  error?: string;
}

const enum S {
  FieldStart,
  Unquoted,
  Quoted,
  QuoteInQuoted,
  SkipToEol,
}

export class CsvTokenizer {
  private fields: string[] = [];
  private field = '';
  private state = S.FieldStart;
  private raw = '';
  private overLong = false;
  private quotedAny = false;
  private error: string | undefined;
  private line: number;
  private recordLine: number;
  private pendingCR = false;

  constructor(
    private readonly delimiter: string,
    private readonly quote: string,
    private readonly maxRecordChars: number,
    firstLine = 1,
  ) {
    this.line = firstLine;
    this.recordLine = firstLine;
  }

  push(text: string): CsvToken[] {
    const out: CsvToken[] = [];
    let start = 0; // where the current record's raw text starts in `text`
    if (this.pendingCR) {
      this.pendingCR = false;
      // A CR that ended the previous chunk: a CRLF terminator, or a lone CR that is content.
      if (text[0] !== '\n' && this.state !== S.SkipToEol) this.appendChar('\r');
    }
    for (let i = 0; i < text.length; i++) {
      const ch = text[i]!;
      if (ch === '\n') this.line++;
      switch (this.state) {
        case S.Quoted:
          if (ch === this.quote) this.state = S.QuoteInQuoted;
          else this.appendChar(ch);
          continue;
        case S.SkipToEol:
          if (ch === '\n') {
            this.emit(out, text.slice(start, i + 1));
            start = i + 1;
          }
          continue;
        case S.QuoteInQuoted:
          if (ch === this.quote) {
            this.appendChar(ch);
            this.state = S.Quoted;
            continue;
          }
          if (ch !== this.delimiter && ch !== '\n' && ch !== '\r') {
            this.error = `unexpected character ${JSON.stringify(ch)} after a closing quote on line ${this.line}`;
            this.state = S.SkipToEol;
            continue;
          }
          break; // a delimiter or line end: handled below like after any field
        case S.FieldStart:
          if (ch === this.quote) {
            this.state = S.Quoted;
            this.quotedAny = true;
            continue;
          }
          break;
        case S.Unquoted:
          break;
      }
      // FieldStart, Unquoted or after a closing quote
      if (ch === this.delimiter) {
        this.endField();
      } else if (ch === '\n') {
        this.emit(out, text.slice(start, i + 1));
        start = i + 1;
      } else if (ch === '\r') {
        if (i + 1 === text.length) this.pendingCR = true;
        else if (text[i + 1] !== '\n') this.appendChar(ch);
      } else {
        this.appendChar(ch);
        this.state = S.Unquoted;
      }
    }
    this.raw += text.slice(start);
    if (this.raw.length > this.maxRecordChars) this.markOverLong();
    return out;
  }

  end(): CsvToken[] {
    const out: CsvToken[] = [];
    if (this.state === S.Quoted) this.error ??= `the file ends inside a quoted field that starts on line ${this.recordLine} (truncated?)`;
    if (this.raw !== '' && !(this.pendingCR && this.raw === '\r')) this.emit(out, '');
    return out;
  }

  private appendChar(ch: string): void {
    if (!this.overLong) this.field += ch;
  }

  private endField(): void {
    if (!this.overLong) this.fields.push(this.field);
    this.field = '';
    this.state = S.FieldStart;
  }

  private markOverLong(): void {
    this.overLong = true;
    this.raw = this.raw.slice(0, this.maxRecordChars);
    this.fields = [];
    this.field = '';
  }

  private emit(out: CsvToken[], tail: string): void {
    let raw = this.raw + tail;
    if (raw.length > this.maxRecordChars && !this.overLong) this.markOverLong();
    if (this.overLong) raw = this.raw;
    const blank = !this.quotedAny && this.fields.length === 0 && this.field.trim() === '' && !this.overLong && this.error === undefined;
    if (!blank) {
      const token: CsvToken = { fields: [...this.fields, this.field], raw, line: this.recordLine };
      if (this.overLong) token.error = `record longer than maxLineBytes (${this.maxRecordChars} characters)`;
      else if (this.error !== undefined) token.error = this.error;
      out.push(token);
    }
    this.fields = [];
    this.field = '';
    this.raw = '';
    this.state = S.FieldStart;
    this.overLong = false;
    this.quotedAny = false;
    this.error = undefined;
    this.recordLine = this.line;
  }
}

export interface CsvOptions {
  delimiter: string;
  quote: string;
  header: boolean;
  columns?: string[] | undefined;
  maxRecordChars: number;
  firstLine: number;
}

/** CSV records as objects keyed by the header row's names or the configured `columns`. */
export class CsvSplitter implements RecordSplitter {
  private readonly tokenizer: CsvTokenizer;
  private names: string[] | undefined;
  private headerPending: boolean;
  private headerRaw = '';

  constructor(private readonly options: CsvOptions) {
    this.tokenizer = new CsvTokenizer(options.delimiter, options.quote, options.maxRecordChars, options.firstLine);
    this.names = options.columns;
    this.headerPending = options.header;
  }

  push(text: string): ParsedRow[] {
    return this.rows(this.tokenizer.push(text));
  }

  end(): ParsedRow[] {
    return this.rows(this.tokenizer.end());
  }

  preamble(): string {
    return this.headerRaw === '' || this.headerRaw.endsWith('\n') ? this.headerRaw : `${this.headerRaw}\n`;
  }

  epilogue(): string {
    return '';
  }

  private rows(tokens: CsvToken[]): ParsedRow[] {
    const rows: ParsedRow[] = [];
    for (const token of tokens) {
      if (this.headerPending) {
        this.header(token);
        continue;
      }
      const names = this.names!;
      const base = { raw: clip(token.raw, this.options.maxRecordChars), line: token.line };
      if (token.error !== undefined) rows.push({ ok: false, reason: token.error, ...base });
      else if (token.fields.length !== names.length) {
        rows.push({ ok: false, reason: `expected ${names.length} fields, got ${token.fields.length}`, ...base });
      } else {
        const record: Record<string, string> = {};
        names.forEach((name, i) => (record[name] = token.fields[i]!));
        rows.push({ ok: true, record, ...base });
      }
    }
    return rows;
  }

  private header(token: CsvToken): void {
    this.headerPending = false;
    this.headerRaw = token.raw;
    if (this.names) return; // `columns` names the fields; the header row is only skipped
    if (token.error !== undefined) throw new BadFileError(`the header row (line ${token.line}) is unreadable: ${token.error}`);
    const names = token.fields.map((f) => f.trim());
    const empty = names.findIndex((n) => n === '');
    if (empty >= 0) throw new BadFileError(`the header row (line ${token.line}) has an empty name in column ${empty + 1}`);
    const dup = names.find((n, i) => names.indexOf(n) !== i);
    if (dup !== undefined) throw new BadFileError(`the header row (line ${token.line}) names column "${dup}" twice`);
    this.names = names;
  }
}
