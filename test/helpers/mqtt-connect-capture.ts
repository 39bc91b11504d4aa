/**
 * A TCP server that reads the first MQTT packet a client sends (its CONNECT) and answers
 * nothing: what a client asks of the broker, seen on the wire. mqtt-packet is mqtt.js's own
 * parser (a dependency of mqtt).
 */
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { parser, type IConnectPacket } from 'mqtt-packet';

export async function captureConnect(): Promise<{ url: string; connect: Promise<IConnectPacket>; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  let resolve!: (p: IConnectPacket) => void;
  const connect = new Promise<IConnectPacket>((r) => (resolve = r));
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    const p = parser();
    p.on('packet', (packet) => {
      if (packet.cmd === 'connect') resolve(packet);
    });
    socket.on('data', (chunk) => p.parse(chunk));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`,
    connect,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}
