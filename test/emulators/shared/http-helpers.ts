/**
 * Small request/answer helpers the emulators share.
 *
 * Invariants:
 * - `readBodyDrained` never holds more than `maxBytes` of a body, yet reads the request
 *   to its end before refusing it with RequestTooLarge, so the client has finished
 *   sending when the 413 arrives.
 * - `sendJson` always writes Content-Length, and Content-Type only with a body.
 * - Control-plane answers (`replyControl`) are never counted in an emulator's stats.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export class RequestTooLarge extends Error {}

export function readBodyDrained(req: IncomingMessage, maxBytes: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on('end', () => (tooLarge ? reject(new RequestTooLarge()) : resolve(Buffer.concat(chunks).toString('utf8'))));
    req.on('error', reject);
  });
}

/** Counts `status` in a stats map of answers by status. */
export function countStatus(counts: Record<number, number>, status: number): void {
  counts[status] = (counts[status] ?? 0) + 1;
}

/** A JSON answer (`body` undefined: an empty one) with the emulated service's content type. */
export function sendJson(res: ServerResponse, status: number, body: unknown, contentType: string, headers: Record<string, string> = {}): void {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, { ...(text ? { 'Content-Type': contentType } : {}), 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** An answer of the `/__emulator/*` control plane. */
export function replyControl(res: ServerResponse, status: number, body?: unknown): void {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, text ? { 'Content-Type': 'application/json' } : {}).end(text);
}

/**
 * The JSON body of a control request (`what`: "tamper", "faults"), or undefined once a 400
 * naming the problem has been answered.
 */
export async function controlJson<T>(body: Promise<string>, what: string, reply: (status: number, body?: unknown) => void): Promise<T | undefined> {
  try {
    const value: unknown = JSON.parse(await body);
    if (typeof value !== 'object' || value === null) throw new Error('expected a JSON object');
    return value as T;
  } catch (error) {
    reply(400, { error: `invalid ${what} request: ${(error as Error).message}` });
    return undefined;
  }
}
