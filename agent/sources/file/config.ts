/**
 * Configuration of the file drop source: the one source of truth for its options.
 * Types come from the schema; defaults live here and nowhere else.
 */
import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { RecordMapping } from '../../mapping/record-mapping.js';

const FieldChar = z.string().length(1).refine((c) => c !== '\r' && c !== '\n', 'must not be a line break');

const SkipLines = z
  .number()
  .int()
  .min(0)
  .max(1000)
  .default(0)
  .describe('Physical lines to skip at the top of the file before anything is parsed (banners, report titles).');

export const CsvFormat = z
  .object({
    type: z.literal('csv').describe('Delimited text (RFC 4180): quoted fields may hold delimiters, quotes (doubled) and line breaks.'),
    delimiter: FieldChar.default(',').describe('Field delimiter, one character (`,` `;` `|` or a tab).'),
    quote: FieldChar.default('"').describe('Quote character; inside a quoted field it is escaped by doubling it.'),
    header: z
      .boolean()
      .default(true)
      .describe('The first record (after `skipLines`) is a header row naming the columns. With `columns` set too, the header row is skipped and `columns` names the fields.'),
    columns: z
      .array(z.string().min(1).max(128))
      .min(1)
      .max(1000)
      .optional()
      .describe('Field names by column position (first name = first column). Required when `header` is false.'),
    skipLines: SkipLines,
  })
  .strict()
  .superRefine((f, ctx) => {
    if (!f.header && !f.columns) ctx.addIssue({ code: 'custom', path: ['columns'], message: 'set `header: true` or give `columns`' });
    if (f.delimiter === f.quote) ctx.addIssue({ code: 'custom', path: ['quote'], message: 'must differ from the delimiter' });
    if (f.columns && new Set(f.columns).size !== f.columns.length) ctx.addIssue({ code: 'custom', path: ['columns'], message: 'column names must be unique' });
  });

export const FixedWidthColumn = z
  .object({
    name: z.string().min(1).max(128).describe('Field name in the record.'),
    start: z.number().int().min(0).max(100_000).describe('0-based character offset of the field in the line (the first character is 0).'),
    length: z.number().int().min(1).max(100_000).describe('Field width in characters.'),
  })
  .strict();

export const FixedWidthFormat = z
  .object({
    type: z.literal('fixed-width').describe('One record per line, fields at fixed character positions.'),
    columns: z.array(FixedWidthColumn).min(1).max(1000).describe('The fields of a line. Characters past the end of a short line read as empty.'),
    trim: z.boolean().default(true).describe('Strip the padding (spaces) around each field.'),
    skipLines: SkipLines,
  })
  .strict()
  .superRefine((f, ctx) => {
    if (new Set(f.columns.map((c) => c.name)).size !== f.columns.length) {
      ctx.addIssue({ code: 'custom', path: ['columns'], message: 'column names must be unique' });
    }
  });

export type FixedWidthFormat = z.infer<typeof FixedWidthFormat>;

export const JsonLinesFormat = z
  .object({
    type: z.literal('jsonl').describe('JSON Lines: one JSON object per line; blank lines are skipped.'),
  })
  .strict();

export const XmlFormat = z
  .object({
    type: z.literal('xml').describe('An XML document holding repeated record elements. DOCTYPE declarations are refused (no entity expansion, no external entities).'),
    recordPath: z
      .string()
      .regex(/^[A-Za-z_][\w.:-]*$/, 'element names separated by "."')
      .describe('Element path from the root to a record, e.g. `Shipments.Shipment`. Each such element becomes one record.'),
    attributePrefix: z
      .string()
      .max(8)
      .default('')
      .describe('Prefix of attribute names in the record (`""`: `<Shipment No="1">` gives `No`). Set `@` when attributes and child elements share names.'),
  })
  .strict();

export const FileFormat = z
  .discriminatedUnion('type', [CsvFormat, FixedWidthFormat, JsonLinesFormat, XmlFormat])
  .describe('How a file is split into records.');
export type FileFormat = z.infer<typeof FileFormat>;

export const FILE_ENCODINGS = ['auto', 'utf-8', 'utf-16le', 'windows-1252'] as const;
export type FileEncoding = (typeof FILE_ENCODINGS)[number];

export const ReadyConfig = z
  .discriminatedUnion('mode', [
    z
      .object({
        mode: z.literal('size-stable').describe('A file is complete once its size and modification time stayed the same over `checks` looks, `intervalMs` apart.'),
        checks: z.number().int().min(1).max(100).default(3).describe('Consecutive unchanged looks needed.'),
        intervalMs: z.number().int().min(10).max(600_000).default(1000).describe('Time between two looks.'),
      })
      .strict(),
    z
      .object({
        mode: z.literal('done-marker').describe('A file is complete once a marker file `<name><suffix>` appears beside it (the writer creates it last). The marker is deleted after the file is claimed.'),
        suffix: z.string().regex(/^\.[\w.-]{1,32}$/, 'a suffix starting with "."').default('.done').describe('Marker suffix, e.g. `.done` or `.ok`.'),
      })
      .strict(),
    z
      .object({
        mode: z.literal('rename').describe('The writer writes under a name outside `pattern` (e.g. `x.csv.tmp`) and renames it into the pattern when complete: every matching file is complete.'),
      })
      .strict(),
  ])
  .describe('How the source knows the writer has finished a file. A file is never read before.');

export const WatchConfig = z
  .object({
    mode: z
      .enum(['events', 'poll'])
      .default('events')
      .describe('`events`: file-system notifications (fs.watch), with a rescan every `pollIntervalMs` in case one is missed; `poll`: rescan every `pollIntervalMs` only (network shares, where notifications are unreliable).'),
    pollIntervalMs: z.number().int().min(10).max(3_600_000).default(5000).describe('Rescan interval.'),
  })
  .strict();

export const FileSourceConfig = z
  .object({
    name: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'letters, digits, ".", "_" and "-", at most 64')
      .describe('Source name; goes into the event source and into every event id, so never rename a source in use.'),
    kind: z.literal('file').describe('Source kind.'),
    folder: z.string().min(1).describe('The drop folder the ERP / MES writes files into. Claimed files move to its `processing/` subfolder while they are read.'),
    pattern: z
      .string()
      .min(1)
      .max(256)
      .regex(/^[^/\\]+$/, 'a file name pattern, without folders')
      .default('*')
      .describe('File names to read: `*` any characters, `?` one character, `{csv,txt}` alternatives; case-insensitive; names starting with "." only match a pattern starting with ".".'),
    format: FileFormat,
    encoding: z
      .enum(FILE_ENCODINGS)
      .default('auto')
      .describe('Text encoding. `auto`: by byte order mark (UTF-8 or UTF-16LE), UTF-8 without one. A BOM is always stripped. Bytes that are not valid in the encoding make the file bad (quarantined), never replacement characters.'),
    ready: ReadyConfig.default({ mode: 'size-stable', checks: 3, intervalMs: 1000 }),
    watch: WatchConfig.default({ mode: 'events', pollIntervalMs: 5000 }).describe('How new files are noticed.'),
    archiveFolder: z.string().min(1).default('archive').describe('Where a file goes once all its rows are committed (relative paths are inside `folder`).'),
    quarantineFolder: z
      .string()
      .min(1)
      .default('quarantine')
      .describe('Where bad files (with `<file>.reason.txt`) and bad rows (`<name>.rejected.<ext>` plus `<name>.rejected.reasons.txt`) go (relative paths are inside `folder`).'),
    batchRows: z.number().int().min(1).max(100_000).default(500).describe('Rows per outbox commit; the file\'s progress is committed with each batch.'),
    maxFileBytes: z
      .number()
      .int()
      .min(1)
      .default(2 * 1024 ** 3)
      .describe('Larger files are quarantined unread (default 2 GiB). Files are streamed, so this bounds time, not memory.'),
    maxLineBytes: z
      .number()
      .int()
      .min(64)
      .max(64 * 1024 ** 2)
      .default(1024 ** 2)
      .describe('Longest record (a line, a CSV record, an XML record element), counted in decoded characters. A longer CSV / line record is quarantined as a bad row (truncated in the rejected file); a longer XML record makes the file bad.'),
    ledgerSize: z
      .number()
      .int()
      .min(1)
      .max(1_000_000)
      .default(10_000)
      .describe('Content hashes of processed files remembered, so a file dropped again is archived without re-sending (event ids dedupe beyond that).'),
    map: RecordMapping,
  })
  .strict()
  .superRefine((c, ctx) => {
    const folder = resolve(c.folder);
    for (const key of ['archiveFolder', 'quarantineFolder'] as const) {
      const target = resolve(folder, c[key]);
      if (target === folder || target === resolve(folder, 'processing')) {
        ctx.addIssue({ code: 'custom', path: [key], message: 'must not be the drop folder or its processing/ subfolder' });
      }
    }
    if (resolve(folder, c.archiveFolder) === resolve(folder, c.quarantineFolder)) {
      ctx.addIssue({ code: 'custom', path: ['quarantineFolder'], message: 'must differ from archiveFolder' });
    }
  });

export type FileSourceConfig = z.infer<typeof FileSourceConfig>;
export type FileSourceConfigInput = z.input<typeof FileSourceConfig>;

/** The folders a source works with, absolute. */
export interface FileSourceFolders {
  drop: string;
  processing: string;
  archive: string;
  quarantine: string;
}

export function foldersOf(c: FileSourceConfig): FileSourceFolders {
  const drop = resolve(c.folder);
  const inside = (p: string) => (isAbsolute(p) ? p : resolve(drop, p));
  return { drop, processing: resolve(drop, 'processing'), archive: inside(c.archiveFolder), quarantine: inside(c.quarantineFolder) };
}
