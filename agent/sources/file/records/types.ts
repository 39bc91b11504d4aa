/**
 * What every format's splitter produces: rows in file order, each either a record or a bad
 * row with the reason, always with its raw text and line, so a bad row can be quarantined
 * and the rows around it go on. Row numbering is deterministic for the same content, which
 * is what lets a resumed file skip exactly the rows it already committed.
 */
export type ParsedRow =
  | { ok: true; record: unknown; raw: string; line: number }
  | { ok: false; reason: string; raw: string; line: number };

export interface RecordSplitter {
  /** Feeds decoded text; returns the rows it completed. Throws BadFileError when the file as a whole is unusable. */
  push(text: string): ParsedRow[];
  /** End of file: the last rows, or BadFileError (e.g. truncated XML). */
  end(): ParsedRow[];
  /** Text a rejected-rows file starts with so it can be fixed and dropped again (CSV header, XML wrapper elements). */
  preamble(): string;
  /** Text a rejected-rows file ends with (closing XML wrapper elements). */
  epilogue(): string;
}

/** Keeps at most `max` characters of a bad row's raw text for the rejected file. */
export function clip(raw: string, max: number): string {
  return raw.length <= max ? raw : `${raw.slice(0, max)}\n`;
}
