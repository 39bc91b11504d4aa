import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { FixedHeaderDecoder } from '../../../relay/ingress/mqtt/packet-size-guard.js';
import { startMqttRelay } from '../../helpers/mqtt-relay.js';
import { tempDir } from '../../helpers/temp.js';

const stops: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});

async function relayWith(mqtt: Parameters<typeof startMqttRelay>[1]) {
  const t = tempDir();
  stops.push(t.cleanup);
  const r = await startMqttRelay(join(t.dir, 'relay'), mqtt);
  stops.push(() => r.stop());
  return r;
}

/** MQTT's remaining-length varint. */
function varint(n: number): Buffer {
  const bytes: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    bytes.push(b);
  } while (n > 0);
  return Buffer.from(bytes);
}

const str = (s: string) => Buffer.concat([Buffer.from([s.length >> 8, s.length & 0xff]), Buffer.from(s)]);

/** An MQTT 3.1.1 CONNECT (clean session, username + password). */
function connectPacket(agent: string, token: string): Buffer {
  const body = Buffer.concat([str('MQTT'), Buffer.from([4, 0xc2, 0, 60]), str(agent), str(agent), str(token)]);
  return Buffer.concat([Buffer.from([0x10]), varint(body.length), body]);
}

const HUGE = 200 * 1024 * 1024;
/** Far beyond what loopback socket buffers hold, far below what the packets announce. */
const FLOOD_CAP = 32 * 1024 * 1024;
const filler = Buffer.alloc(64 * 1024, 0x61);

/**
 * Writes filler after whatever was sent until the relay closes the connection or FLOOD_CAP
 * bytes were written. Without a size limit the relay reads (and buffers) all of it.
 */
async function floodTcp(socket: Socket): Promise<{ closed: boolean; written: number }> {
  let closed = false;
  const gone = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  void gone.then(() => (closed = true));
  socket.on('error', () => undefined); // EPIPE / ECONNRESET once the relay hung up
  let written = 0;
  while (!closed && written < FLOOD_CAP) {
    written += filler.length;
    if (!socket.write(filler)) await Promise.race([new Promise((r) => socket.once('drain', r)), gone]);
  }
  const result = { closed, written };
  socket.destroy();
  return result;
}

function tcp(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

describe('embedded MQTT broker: packet size limit', () => {
  it('closes a connection whose CONNECT announces 200 MB, without reading the body', async () => {
    const relay = await relayWith({ listeners: { tcp: { host: '127.0.0.1', port: 0 } } });
    const socket = await tcp(relay.ports.tcp!);
    socket.write(Buffer.concat([Buffer.from([0x10]), varint(HUGE)]));
    expect(await floodTcp(socket)).toMatchObject({ closed: true });
  });

  it('closes an authenticated agent\'s connection once a PUBLISH announces more than the frame limit allows', async () => {
    const relay = await relayWith({ listeners: { tcp: { host: '127.0.0.1', port: 0 } } });
    const socket = await tcp(relay.ports.tcp!);
    const connack = new Promise<Buffer>((resolve) => socket.once('data', resolve));
    socket.write(connectPacket('agent-a', relay.tokens.a));
    expect([...(await connack).subarray(0, 4)]).toEqual([0x20, 2, 0, 0]); // accepted
    const topic = str('plantlink/v1/plant-a/agent-a/events');
    socket.write(Buffer.concat([Buffer.from([0x32]), varint(HUGE), topic, Buffer.from([0, 1])]));
    expect(await floodTcp(socket)).toMatchObject({ closed: true });
    expect(relay.inbox.counts().events).toBe(0);
  });

  it('closes an MQTT-over-WebSocket connection announcing 200 MB across many small messages', async () => {
    const relay = await relayWith({ listeners: { ws: { host: '127.0.0.1', port: 0, path: '/mqtt' } } });
    const ws = new WebSocket(`ws://127.0.0.1:${relay.ports.ws}/mqtt`, 'mqtt');
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    ws.on('error', () => undefined);
    ws.send(Buffer.concat([Buffer.from([0x10]), varint(HUGE)]));
    // The relay's hang-up shows as the socket ending (CLOSING): 'close' waits for our own buffered writes.
    let written = 0;
    while (ws.readyState === WebSocket.OPEN && written < FLOOD_CAP) {
      written += filler.length;
      await new Promise((r) => ws.send(filler, r));
    }
    const state = ws.readyState;
    ws.terminate();
    expect(state).not.toBe(WebSocket.OPEN);
  });
});

describe('MQTT fixed header decoder', () => {
  const packet = (type: number, length: number) => Buffer.concat([Buffer.from([type]), varint(length), Buffer.alloc(length)]);

  it('follows packets split anywhere, and reports the first one over the limit', () => {
    const stream = Buffer.concat([packet(0x10, 20), packet(0x30, 200), packet(0xc0, 0), packet(0x30, 16_384), packet(0x30, 16_385)]);
    const decoder = new FixedHeaderDecoder(() => 16_384);
    let first: { at: number; announced: number } | undefined;
    for (let i = 0; i < stream.length && !first; i++) {
      const err = decoder.push(stream.subarray(i, i + 1));
      if (err) first = { at: i, announced: err.announced };
    }
    // Caught at the header's last byte, before any of the body.
    expect(first).toEqual({ at: stream.length - 16_385 - 1, announced: 16_385 });
  });

  it('treats a remaining length of more than four bytes as too large', () => {
    expect(new FixedHeaderDecoder(() => 1e9).push(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]))).toBeDefined();
  });
});
