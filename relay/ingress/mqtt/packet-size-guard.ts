/**
 * A packet size limit for the embedded broker, which has none of its own: aedes 1.2's parser
 * (mqtt-packet) buffers whatever remaining length a fixed header announces, up to MQTT's
 * 256 MB, before and after authentication.
 *
 * The guard watches the bytes aedes reads from a connection (a `data` listener: aedes reads
 * with `readable` + `read()`, which keeps control of the flow and emits each chunk read as
 * `data`), decodes every packet's fixed header as it goes by, and destroys the connection as
 * soon as a header announces more than the limit in force: one chunk at most reaches aedes
 * after that. The limit is asked for per packet, so it can be small until the client has
 * authenticated and the frame limit after.
 *
 * Invariant: it never buffers; its state is the header being decoded and how many body bytes
 * of the current packet are still to skip.
 */
import type { Duplex } from 'node:stream';

/** What a CONNECT (or anything before authentication) may announce. */
export const UNAUTHENTICATED_MAX_PACKET_BYTES = 64 * 1024;

export class PacketTooLargeError extends Error {
  constructor(
    readonly announced: number,
    readonly limit: number,
  ) {
    super(`MQTT packet of ${announced} bytes announced; the limit is ${limit}`);
    this.name = 'PacketTooLargeError';
  }
}

/**
 * Decodes fixed headers from a byte stream. `push` returns the first packet over `limit()`
 * (announced remaining length), or undefined while all are within it.
 */
export class FixedHeaderDecoder {
  /** Body bytes of the current packet still to skip. */
  private skip = 0;
  /** Position in the header: 0 = the type byte is next; 1..4 = remaining-length bytes read so far + 1. */
  private headerPos = 0;
  private length = 0;

  constructor(private readonly limit: () => number) {}

  push(chunk: Buffer): PacketTooLargeError | undefined {
    let i = 0;
    while (i < chunk.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - i);
        this.skip -= n;
        i += n;
        continue;
      }
      const byte = chunk[i++]!;
      if (this.headerPos === 0) {
        this.headerPos = 1;
        this.length = 0;
        continue;
      }
      this.length += (byte & 0x7f) * 128 ** (this.headerPos - 1);
      if (byte & 0x80) {
        // A fifth length byte is malformed; report it as over any limit (> 256 MB).
        if (++this.headerPos > 4) return new PacketTooLargeError(128 ** 4, this.limit());
        continue;
      }
      const limit = this.limit();
      if (this.length > limit) return new PacketTooLargeError(this.length, limit);
      this.skip = this.length;
      this.headerPos = 0;
    }
    return undefined;
  }
}

/**
 * Destroys `conn` once a packet's header announces more than `limit()` bytes. Call after
 * `broker.handle(conn)`, so aedes's `readable` listener (not this one) drives the reads.
 */
export function guardPacketSize(conn: Duplex, limit: () => number, onTooLarge: (err: PacketTooLargeError) => void): void {
  const decoder = new FixedHeaderDecoder(limit);
  const watch = (chunk: Buffer) => {
    const err = decoder.push(chunk);
    if (!err) return;
    conn.off('data', watch);
    onTooLarge(err);
    conn.destroy();
  };
  conn.on('data', watch);
}
