/**
 * Shared pieces of the MQTT source tests: a real aedes broker on an ephemeral port, a real
 * SQLite outbox behind a SourceContext (as the agent wires it), an edge publisher, and waiting
 * on the source's own `message` events (no timing thresholds).
 */
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { Aedes } from 'aedes';
import { connectAsync, type MqttClient } from 'mqtt';
import { Outbox } from '../../../../agent/outbox/outbox.js';
import type { MessageOutcome, MqttSource } from '../../../../agent/sources/mqtt/index.js';
import type { SourceContext } from '../../../../agent/sources/source.js';
import { testLogger } from '../../../helpers/temp.js';

export interface TestBroker {
  url: string;
  /** Payloads (as text) the broker holds for `clientId` without its PUBACK: in flight or queued. */
  unacked(clientId: string): Promise<string[]>;
  close(): Promise<void>;
}

export async function startBroker(): Promise<TestBroker> {
  const broker = await Aedes.createBroker({ id: 'plant-broker' });
  const server: Server = createServer((conn) => broker.handle(conn));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    unacked: async (clientId) => {
      // aedes's persistence is untyped (`any`); outgoingStream yields its stored packets.
      const stream = (broker as unknown as { persistence: { outgoingStream(c: { id: string }): AsyncIterable<{ payload: Buffer | string }> } }).persistence.outgoingStream({ id: clientId });
      const out: string[] = [];
      for await (const packet of stream) out.push(packet.payload.toString());
      return out;
    },
    close: async () => {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The agent's SourceContext over a real outbox in `dataDir`. */
export function outboxContext(dataDir: string, limits: { maxEvents?: number } = {}) {
  const outbox = new Outbox({
    path: join(dataDir, 'outbox.sqlite'),
    plant: 'plant-a',
    maxBytes: 1024 ** 3,
    maxEvents: limits.maxEvents ?? 1_000_000,
    onFull: 'pause',
  });
  const listeners = new Set<() => void>();
  outbox.on('resumed', () => {
    for (const l of listeners) l();
  });
  const ctx = (name: string): SourceContext => ({
    plant: 'plant-a',
    logger: testLogger(),
    commit: (events, state) => outbox.append(name, events, state),
    loadState: <T>(key: string) => outbox.loadState<T>(name, key),
    onResume: (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
  });
  /** The pending events' data, in outbox order. */
  const pending = () => outbox.readPending(0, 100_000, 1024 ** 3).map((p) => ({ seq: p.seq, id: p.id, ...(JSON.parse(p.body) as { data: Record<string, unknown>; type: string }) }));
  return { outbox, ctx, pending };
}

export async function edgeClient(url: string, clientId = `edge-${Math.random().toString(16).slice(2)}`): Promise<MqttClient> {
  return connectAsync(url, { clientId, clean: true, reconnectPeriod: 0 });
}

/** Collects the source's message outcomes; `until(n)` resolves once n have been seen in all. */
export function outcomes(source: MqttSource) {
  const seen: MessageOutcome[] = [];
  const waiters: { n: number; filter: (o: MessageOutcome) => boolean; resolve: () => void }[] = [];
  source.on('message', (o) => {
    seen.push(o);
    for (const w of [...waiters]) {
      if (seen.filter(w.filter).length >= w.n) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  });
  return {
    seen,
    until(n: number, filter: (o: MessageOutcome) => boolean = () => true): Promise<void> {
      if (seen.filter(filter).length >= n) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ n, filter, resolve }));
    },
  };
}

export const committed = (o: MessageOutcome) => o.outcome === 'committed';

export async function waitFor(check: () => boolean, everyMs = 10): Promise<void> {
  while (!check()) await new Promise((r) => setTimeout(r, everyMs));
}
