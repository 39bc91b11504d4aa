/**
 * Where bad data goes, so that nothing is ever silently dropped.
 *
 * Bad rows: appended to `<quarantine>/<stem>.rejected<ext>` (in the file's own encoding,
 * after the header / wrapper a fixed file needs to be dropped again) with one line per row in
 * `<stem>.rejected.reasons.txt`. Their byte lengths are committed with each batch's progress;
 * a resumed file first truncates both back to the committed lengths, so a row rejected
 * before a crash is not written twice. Bad files: moved to `<quarantine>/<name>` beside a
 * `<name>.reason.txt`.
 */
import { open, truncate, writeFile, type FileHandle } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { bomFor, encodeText, type ResolvedEncoding } from './decode.js';
import { exists, freeName, fsyncDir, moveFile } from './folder.js';

/** Bad rows held before they are written (without fsync) ahead of the batch's commit. */
const MAX_PENDING_BYTES = 1024 * 1024;

export interface RejectedSizes {
  rowsBytes: number;
  reasonsBytes: number;
}

/** The stem for a file's rejected rows: its name without extension, made unique in the folder. */
export async function pickRejectedStem(dir: string, name: string, hash: string): Promise<string> {
  const ext = extname(name);
  const base = ext === '' ? name : name.slice(0, -ext.length);
  const chosen = await freeName(base, hash.slice(0, 12), async (stem) =>
    (await exists(join(dir, `${stem}.rejected${ext}`))) || (await exists(join(dir, `${stem}.rejected.reasons.txt`))),
  );
  return chosen;
}

export class RejectedRows {
  readonly rowsPath: string;
  readonly reasonsPath: string;
  private rows: FileHandle | undefined;
  private reasons: FileHandle | undefined;
  private sizes: RejectedSizes;
  private pendingRows: Buffer[] = [];
  private pendingReasons: Buffer[] = [];
  private pendingBytes = 0;

  constructor(
    dir: string,
    stem: string,
    ext: string,
    private readonly encoding: ResolvedEncoding,
    private readonly splitter: { preamble(): string; epilogue(): string },
    committed: RejectedSizes,
  ) {
    this.rowsPath = join(dir, `${stem}.rejected${ext}`);
    this.reasonsPath = join(dir, `${stem}.rejected.reasons.txt`);
    this.sizes = { ...committed };
  }

  /** Cuts both files back to what was committed (drops rows written by a run that crashed before its commit). */
  async restore(): Promise<void> {
    for (const [path, size] of [
      [this.rowsPath, this.sizes.rowsBytes],
      [this.reasonsPath, this.sizes.reasonsBytes],
    ] as const) {
      if (await exists(path)) await truncate(path, size);
    }
  }

  get count(): RejectedSizes {
    return { ...this.sizes };
  }

  /** Queues a bad row; written by `sync` (one write per batch, not two per row), or early past 1 MiB. */
  async add(raw: string, reason: string): Promise<void> {
    let text = raw.endsWith('\n') ? raw : `${raw}\n`;
    let head: Buffer = Buffer.alloc(0);
    if (this.sizes.rowsBytes === 0) {
      head = bomFor(this.encoding);
      text = this.splitter.preamble() + text;
    }
    const bytes = Buffer.concat([head, encodeText(text, this.encoding)]);
    this.pendingRows.push(bytes);
    this.sizes.rowsBytes += bytes.length;
    const line = Buffer.from(`${reason.replace(/[\r\n]+/g, ' ')}\n`, 'utf8');
    this.pendingReasons.push(line);
    this.sizes.reasonsBytes += line.length;
    this.pendingBytes += bytes.length + line.length;
    if (this.pendingBytes > MAX_PENDING_BYTES) await this.write();
  }

  /** Appends the closing text (XML wrappers) if any row was rejected. */
  async finish(): Promise<void> {
    const epilogue = this.splitter.epilogue();
    if (this.sizes.rowsBytes === 0 || epilogue === '') return;
    const bytes = encodeText(epilogue, this.encoding);
    this.pendingRows.push(bytes);
    this.sizes.rowsBytes += bytes.length;
  }

  /** Makes what was appended durable; call before committing the progress that passes those rows. */
  async sync(): Promise<RejectedSizes> {
    await this.write();
    await this.rows?.sync();
    await this.reasons?.sync();
    return this.count;
  }

  private async write(): Promise<void> {
    if (this.pendingRows.length > 0) {
      this.rows ??= await open(this.rowsPath, 'a');
      await this.rows.appendFile(Buffer.concat(this.pendingRows));
      this.pendingRows = [];
    }
    if (this.pendingReasons.length > 0) {
      this.reasons ??= await open(this.reasonsPath, 'a');
      await this.reasons.appendFile(Buffer.concat(this.pendingReasons));
      this.pendingReasons = [];
    }
    this.pendingBytes = 0;
  }

  async close(): Promise<void> {
    await this.rows?.close();
    await this.reasons?.close();
    this.rows = undefined;
    this.reasons = undefined;
  }
}

/** Moves a bad file into quarantine with its reason beside it; returns where it went. */
export async function quarantineFile(from: string, dir: string, name: string, tag: string, reason: string): Promise<string> {
  const target = await freeName(name, tag, (candidate) => exists(join(dir, candidate)));
  // Reason first: a crash between the two leaves the file in processing/, to be judged again.
  await writeFile(join(dir, `${target}.reason.txt`), `${reason}\n`, 'utf8');
  await moveFile(from, join(dir, target));
  await fsyncDir(dir);
  return join(dir, target);
}
