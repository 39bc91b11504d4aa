/**
 * A streaming XML record splitter: walks the document's markup without building it, checks
 * that it is well formed enough to trust (one root, matching end tags, not truncated) and cuts
 * out each element at `recordPath`, which fast-xml-parser then turns into a record.
 *
 * Security: a DOCTYPE anywhere makes the file bad, so entity definitions (the "billion
 * laughs" bomb) and external entities (XXE) are refused before anything expands them; the
 * parser runs with entity processing off, and only the five predefined entities and numeric
 * character references are decoded, by us. Memory: only the current record (at most
 * `maxRecordChars`) and the current markup construct are held.
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { BadFileError } from '../decode.js';
import type { ParsedRow, RecordSplitter } from './types.js';

const PREDEFINED: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
const REFERENCE = /&(#x[0-9A-Fa-f]+|#[0-9]+|[A-Za-z_][\w.-]*);/g;

/** Decodes predefined entities and character references; throws on any other entity. */
export function decodeXmlText(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(REFERENCE, (_m, ref: string) => {
    if (ref.startsWith('#')) {
      const code = ref[1] === 'x' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
      if (!Number.isFinite(code) || code < 1 || code > 0x10ffff) throw new Error(`invalid character reference &${ref};`);
      return String.fromCodePoint(code);
    }
    const value = PREDEFINED[ref];
    if (value === undefined) throw new Error(`undefined entity &${ref}; (DOCTYPE entities are not supported)`);
    return value;
  });
}

const escapeText = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export interface XmlOptions {
  recordPath: string;
  attributePrefix: string;
  maxRecordChars: number;
  /** false: only check the document (first pass); records are not parsed. */
  parseRecords: boolean;
}

export class XmlSplitter implements RecordSplitter {
  private buf = '';
  private pos = 0;
  private line = 1;
  private readonly stack: string[] = [];
  private readonly path: string[];
  private rootSeen = false;
  private rootClosed = false;
  private capture: { start: number; line: number } | undefined;
  private readonly parser: XMLParser;

  constructor(private readonly options: XmlOptions) {
    this.path = options.recordPath.split('.');
    this.parser = new XMLParser({
      processEntities: false,
      htmlEntities: false,
      ignoreAttributes: false,
      attributeNamePrefix: options.attributePrefix,
      parseTagValue: false,
      parseAttributeValue: false,
      trimValues: true,
      ignoreDeclaration: true,
      ignorePiTags: true,
      tagValueProcessor: (_name, value) => decodeXmlText(value),
      attributeValueProcessor: (_name, value) => decodeXmlText(value),
    });
  }

  preamble(): string {
    return this.path
      .slice(0, -1)
      .map((name) => `<${name}>\n`)
      .join('');
  }

  epilogue(): string {
    return this.path
      .slice(0, -1)
      .reverse()
      .map((name) => `</${name}>\n`)
      .join('');
  }

  push(text: string): ParsedRow[] {
    this.buf += text;
    const rows: ParsedRow[] = [];
    this.scan(rows);
    // Keep only what is still needed: the current record, or an unfinished construct.
    const keep = this.capture ? this.capture.start : this.pos;
    if (this.capture) this.capture.start = 0;
    this.buf = this.buf.slice(keep);
    this.pos -= keep;
    const held = this.buf.length;
    if (held > this.options.maxRecordChars) {
      throw new BadFileError(
        this.capture
          ? `the record element starting on line ${this.capture.line} is longer than maxLineBytes (${this.options.maxRecordChars} characters)`
          : `a markup construct near line ${this.line} is longer than maxLineBytes (${this.options.maxRecordChars} characters)`,
      );
    }
    return rows;
  }

  end(): ParsedRow[] {
    const rest = this.buf.slice(this.pos);
    if (rest.trim() !== '') {
      throw new BadFileError(`the file ends inside markup on line ${this.line} (truncated?)`);
    }
    if (this.stack.length > 0) throw new BadFileError(`the file ends inside <${this.stack.join('><')}> (truncated?)`);
    if (!this.rootSeen) throw new BadFileError('no root element');
    return [];
  }

  private advance(to: number): void {
    for (let i = this.buf.indexOf('\n', this.pos); i !== -1 && i < to; i = this.buf.indexOf('\n', i + 1)) this.line++;
    this.pos = to;
  }

  private textUntil(end: number): void {
    if (this.stack.length === 0 && this.buf.slice(this.pos, end).trim() !== '') {
      throw new BadFileError(`text outside the root element on line ${this.line}`);
    }
    this.advance(end);
  }

  /** Consumes complete constructs from `buf`; stops at the first incomplete one. */
  private scan(rows: ParsedRow[]): void {
    const b = this.buf;
    for (;;) {
      const lt = b.indexOf('<', this.pos);
      if (lt === -1) {
        // Text up to the end; a trailing "&..." or text is fine to consume.
        return this.textUntil(b.length);
      }
      this.textUntil(lt);
      let end: number;
      if (b.startsWith('<?', lt)) {
        end = b.indexOf('?>', lt + 2);
        if (end === -1) return;
        this.advance(end + 2);
      } else if (b.startsWith('<!--', lt)) {
        end = b.indexOf('-->', lt + 4);
        if (end === -1) return;
        this.advance(end + 3);
      } else if (b.startsWith('<![CDATA[', lt)) {
        if (this.stack.length === 0) throw new BadFileError(`CDATA outside the root element on line ${this.line}`);
        end = b.indexOf(']]>', lt + 9);
        if (end === -1) return;
        this.advance(end + 3);
      } else if (b.startsWith('<!', lt)) {
        if (b.length - lt < 9) return; // not enough to tell what it is yet
        if (/^<!DOCTYPE/i.test(b.slice(lt, lt + 9))) {
          throw new BadFileError(`DOCTYPE declaration on line ${this.line} refused: entity definitions (entity expansion, external entities) are not accepted`);
        }
        throw new BadFileError(`unexpected markup "${b.slice(lt, lt + 9)}" on line ${this.line}`);
      } else if (b.startsWith('</', lt)) {
        end = b.indexOf('>', lt);
        if (end === -1) return;
        const name = b.slice(lt + 2, end).trim();
        const open = this.stack.pop();
        if (name !== open) throw new BadFileError(`</${name}> on line ${this.line} does not close <${open ?? ''}>`);
        this.advance(end + 1);
        if (this.capture && this.stack.length === this.path.length - 1) this.emit(rows, b.slice(this.capture.start, end + 1));
        if (this.stack.length === 0) this.rootClosed = true;
      } else {
        end = tagEnd(b, lt + 1);
        if (end === -1) return;
        const name = /^<([^\s/>]+)/.exec(b.slice(lt, Math.min(end + 1, lt + 1024)))?.[1];
        if (!name) throw new BadFileError(`malformed start tag on line ${this.line}`);
        if (this.stack.length === 0) {
          if (this.rootClosed) throw new BadFileError(`a second root element <${name}> on line ${this.line}`);
          this.rootSeen = true;
        }
        this.stack.push(name);
        const startsRecord = !this.capture && this.isRecordPath();
        if (startsRecord) this.capture = { start: lt, line: this.line };
        this.advance(end + 1);
        if (b[end - 1] === '/') {
          this.stack.pop();
          if (startsRecord) this.emit(rows, b.slice(lt, end + 1));
          if (this.stack.length === 0) this.rootClosed = true;
        }
      }
    }
  }

  private isRecordPath(): boolean {
    return this.stack.length === this.path.length && this.stack.every((n, i) => n === this.path[i]);
  }

  private emit(rows: ParsedRow[], raw: string): void {
    const line = this.capture!.line;
    this.capture = undefined;
    if (raw.length > this.options.maxRecordChars) {
      throw new BadFileError(`the record element starting on line ${line} is longer than maxLineBytes (${this.options.maxRecordChars} characters)`);
    }
    if (!this.options.parseRecords) return;
    rows.push(this.parse(raw, line));
  }

  private parse(raw: string, line: number): ParsedRow {
    // CDATA becomes escaped text, so that entity decoding applies uniformly to all text.
    const normalized = raw.replace(/<!\[CDATA\[([\s\S]*?)\]\]>/g, (_m, content: string) => escapeText(content));
    const valid = XMLValidator.validate(normalized);
    if (valid !== true) return { ok: false, reason: `malformed record element: ${valid.err.msg} (line ${line + valid.err.line - 1})`, raw, line };
    try {
      const doc = this.parser.parse(normalized) as Record<string, unknown>;
      return { ok: true, record: doc[this.path[this.path.length - 1]!], raw, line };
    } catch (e) {
      return { ok: false, reason: (e as Error).message, raw, line };
    }
  }
}

/** Index of the `>` closing a start tag whose name begins at `from`, skipping quoted attribute values; -1 if not there yet. */
function tagEnd(b: string, from: number): number {
  let quote = '';
  for (let i = from; i < b.length; i++) {
    const ch = b[i];
    if (quote !== '') {
      if (ch === quote) quote = '';
    } else if (ch === '"' || ch === "'") quote = ch;
    else if (ch === '>') return i;
  }
  return -1;
}
