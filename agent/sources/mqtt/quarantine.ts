/**
 * Where messages that cannot become events go: one JSON line per message in
 * `<dir>/<YYYY-MM-DD>.jsonl` (UTC day), with the topic, the payload in base64 and the
 * reason. The line is fsynced before the message is acknowledged to the broker, so a
 * message is always either in the broker, in the outbox, or here.
 */
import { mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';

export interface QuarantinedMessage {
  atMs: number;
  topic: string;
  /** The raw payload, base64. */
  payload: string;
  reason: string;
}

export class MessageQuarantine {
  private made = false;

  constructor(readonly dir: string) {}

  async add(topic: string, payload: Uint8Array, reason: string, atMs = Date.now()): Promise<QuarantinedMessage> {
    const entry: QuarantinedMessage = { atMs, topic, payload: Buffer.from(payload).toString('base64'), reason };
    if (!this.made) {
      await mkdir(this.dir, { recursive: true });
      this.made = true;
    }
    const file = await open(join(this.dir, `${new Date(atMs).toISOString().slice(0, 10)}.jsonl`), 'a');
    try {
      await file.appendFile(`${JSON.stringify(entry)}\n`, 'utf8');
      await file.sync();
    } finally {
      await file.close();
    }
    return entry;
  }
}
